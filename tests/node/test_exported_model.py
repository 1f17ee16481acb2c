"""The node running an exported model (model_format onnx) in its own process: same topics, the same labels
as the checkpoint it was exported from; a truncated artefact fails configure naming the file and the node
stays up; the vocabulary is the artefact's own. load_model's format and normalisation checks, without a
node."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import rclpy
from node_harness import (
    TEST_TEMPLATES,
    TEST_VOCABULARY,
    NodeClient,
    child_env,
    load_sample,
    sample_cloud,
    string_array,
    write_params,
)
from rclpy.serialization import deserialize_message
from test_node_integration import START_TIMEOUT, node_command, stop

from blendclip.msg import LabelledObjectArray
from blendclip_core.checkpoint import CheckpointError
from blendclip_ros.conversions import boxes_to_msg
from blendclip_ros.node import params as P
from blendclip_ros.node.model import load_model


@pytest.fixture(scope='module')
def onnx_artefact(tiny_checkpoint, tmp_path_factory):
    """The tiny node-test checkpoint exported to ONNX with the test vocabulary (seconds on the CPU)."""
    from blendclip_core.export import export_artefact

    return export_artefact(tiny_checkpoint, 'onnx', tmp_path_factory.mktemp('exported') / 'onnx',
                           labels=TEST_VOCABULARY, templates=TEST_TEMPLATES)


def _params(checkpoint, **values) -> P.NodeParams:
    return P.from_values({'checkpoint': str(checkpoint), 'device': 'cpu', 'vocabulary': TEST_VOCABULARY,
                          'prompt_templates': TEST_TEMPLATES, **values})


def _start(tmp_path, artefact, name: str = 'blendclip', **overrides) -> tuple[subprocess.Popen, object]:
    params = write_params(tmp_path / f'{name}.yaml', artefact, **overrides)
    command = [a.replace('__node:=blendclip', f'__node:={name}') for a in node_command(params)]
    log_path = tmp_path / f'{name}.log'
    with open(log_path, 'wb') as log:
        return subprocess.Popen(command, env=child_env(), stdout=log, stderr=subprocess.STDOUT), log_path


@pytest.fixture(scope='module')
def onnx_node(onnx_artefact, tmp_path_factory):
    proc, log_path = _start(tmp_path_factory.mktemp('onnx_node'), onnx_artefact, model_format='onnx')
    context = rclpy.Context()
    rclpy.init(context=context)
    client = NodeClient(context)
    try:
        if not client.wait_active(START_TIMEOUT):
            pytest.fail(f'node not active (alive={proc.poll() is None}):\n{log_path.read_text()[-3000:]}')
        yield client
    finally:
        client.close()
        rclpy.shutdown(context=context)
        code = stop(proc)
        print(log_path.read_text()[-3000:])
        assert code == 0, f'node exit code {code}'


def test_onnx_node_labels_the_sample_frame_as_the_checkpoint(onnx_node, tiny_checkpoint):
    from blendclip_ros.bag.label_bag import OfflineLabeller

    points, boxes, _ = load_sample()
    got = onnx_node.frame(sample_cloud(points), boxes)
    assert got is not None, 'frame not answered'
    vocab = onnx_node.vocabularies[-1]
    assert list(vocab.labels) == TEST_VOCABULARY and vocab.text_space.startswith('minilm')
    # the checkpoint's labels for the same frame, through the node's own per-frame work
    reference = OfflineLabeller(_params(tiny_checkpoint, model_format='checkpoint'))
    expected = deserialize_message(reference.label(sample_cloud(points), boxes_to_msg(boxes)).labels_cdr,
                                   LabelledObjectArray)
    assert [o.label for o in got.objects] == [o.label for o in expected.objects]
    assert [o.num_points for o in got.objects] == [o.num_points for o in expected.objects]
    np.testing.assert_allclose([o.score for o in got.objects], [o.score for o in expected.objects],
                               atol=1e-4)  # NaN (no points) where the checkpoint's is NaN
    assert sum(o.label != '' for o in got.objects) >= 25  # the sweep's boxes with >= 5 points got one


def test_onnx_node_keeps_to_the_artefacts_vocabulary(onnx_node):
    bad = onnx_node.set_parameter('vocabulary', string_array(['car', 'submarine']))
    assert not bad.successful and 'submarine' in bad.reason and 'export again' in bad.reason
    ok = onnx_node.set_parameter('vocabulary', string_array(['car', 'pedestrian']))
    assert ok.successful
    assert onnx_node.spin_until(lambda: list(onnx_node.vocabularies[-1].labels) == ['car', 'pedestrian'], 30)
    points, boxes, _ = load_sample()
    got = onnx_node.frame(sample_cloud(points), boxes)
    assert got is not None and {o.label for o in got.objects} <= {'car', 'pedestrian', ''}


def test_truncated_artefact_fails_configure_naming_the_file_and_the_node_stays_up(onnx_artefact, tmp_path):
    broken = shutil.copytree(onnx_artefact, tmp_path / 'broken')
    model = broken / 'encoder.onnx'
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    proc, log_path = _start(tmp_path, broken, name='blendclip_broken', model_format='onnx')
    context = rclpy.Context()
    rclpy.init(context=context)
    client = NodeClient(context, node='/blendclip_broken')
    try:
        assert client.spin_until(lambda: 'encoder.onnx' in client.counters().get('last_error', ''),
                                 START_TIMEOUT), log_path.read_text()[-3000:]
        assert 'truncated' in client.counters()['last_error'] and proc.poll() is None
    finally:
        client.close()
        rclpy.shutdown(context=context)
        assert stop(proc) == 0, log_path.read_text()[-3000:]


def test_model_format_is_checked_against_the_path(onnx_artefact, tiny_checkpoint):
    with pytest.raises(ValueError, match=f"'aoti' but {onnx_artefact} holds a onnx"):
        load_model(_params(onnx_artefact, model_format='aoti'))
    with pytest.raises(ValueError, match='holds a checkpoint model'):
        load_model(_params(tiny_checkpoint, model_format='onnx'))
    model = load_model(_params(onnx_artefact))  # auto: read from the folder
    assert model.model_format == 'onnx' and model.labels == tuple(TEST_VOCABULARY)
    assert model.vocabulary_reason(['car']) is None and 'submarine' in model.vocabulary_reason(['submarine'])
    with pytest.raises(ValueError, match=r"no class embeddings for \['submarine'\]"):
        load_model(_params(onnx_artefact, vocabulary=['car', 'submarine']))
    with pytest.raises(ValueError, match='model_format'):
        _params(onnx_artefact, model_format='tensorrt')


def test_input_normalization_parameter_loads_a_card_without_it(tiny_checkpoint, tmp_path):
    import json

    import torch

    from blendclip_core.checkpoint import read_checkpoint, seal

    payload = read_checkpoint(tiny_checkpoint)
    card = json.loads(payload['card'])
    del card['input_normalization']  # a checkpoint from before cards recorded it
    payload['card'] = json.dumps(card)
    old = tmp_path / 'old.pt'
    torch.save(seal({k: v for k, v in payload.items() if k != 'content_sha256'}), old)
    with pytest.raises(CheckpointError, match='does not record its input normalisation'):
        load_model(_params(old))
    model = load_model(_params(old, input_normalization='unit_sphere'))
    assert model.classifier.input_normalization == 'unit_sphere'
    assert load_model(_params(tiny_checkpoint)).classifier.input_normalization == 'metric'
    with pytest.raises(ValueError, match='input_normalization'):
        _params(old, input_normalization='sphere')
