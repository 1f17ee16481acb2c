"""The offline tools take an exported artefact folder where they take a checkpoint, and label alike:
blendclip-label-frames' label_files (through load_point_classifier) and blendclip-label-bag (the node's
model_format parameter, `-p model_format:=onnx`)."""

import json
from pathlib import Path

import numpy as np

from blendclip_core.label_frames import label_files

SAMPLE = Path(__file__).resolve().parents[2] / 'data' / 'nuscenes_sample'


def test_label_files_with_an_artefact_labels_as_the_checkpoint(tiny_checkpoint, exported, tmp_path):
    ref = label_files(SAMPLE, None, tmp_path / 'ref', str(tiny_checkpoint), device='cpu')
    got = label_files(SAMPLE, None, tmp_path / 'onnx', str(exported['onnx']), device='cpu')
    assert len(got) == 69 and sum(r.status == 'OK' for r in got) >= 25
    assert [(r.box, r.label, r.status) for r in got] == [(r.box, r.label, r.status) for r in ref]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in ref], atol=1e-3)
    written = json.loads((tmp_path / 'onnx' / 'labels.json').read_text())
    assert written['model'] == str(exported['onnx']) and len(written['vocabulary']) == 16


def _labels_in(bag) -> list:
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == '/blendclip/objects']
        (msg,) = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    return [(o.id, o.label, o.status, round(float(o.score), 3)) for o in msg.objects]


def test_label_bag_with_model_format_onnx_labels_as_the_checkpoint(tiny_checkpoint, exported, tmp_path,
                                                                    capsys):
    from blendclip_ros.bag import label_bag, nuscenes2bag

    src = tmp_path / 'sample'
    assert nuscenes2bag.main(['--out', str(src), '--sample-dir', str(SAMPLE), '--no-progress']) == 0

    def run(out, *params):
        args = [str(src), str(tmp_path / out), '--no-progress', '--no-markers', '-p', 'device:=cpu']
        return label_bag.main([*args, *[a for p in params for a in ('-p', p)]])

    assert run('ref', f'checkpoint:={tiny_checkpoint}') == 0
    assert run('onnx', f'checkpoint:={exported["onnx"]}', 'model_format:=onnx') == 0
    ref, got = _labels_in(tmp_path / 'ref'), _labels_in(tmp_path / 'onnx')
    assert [o[:3] for o in got] == [o[:3] for o in ref] and sum(o[2] == 0 for o in got) >= 25
    assert run('aoti', f'checkpoint:={exported["onnx"]}', 'model_format:=aoti') == 2
    assert "model_format is 'aoti'" in capsys.readouterr().err


def test_node_loader_runs_an_aoti_export_as_the_eager_model(exported, eager):
    """The node's load_model on the AOTInductor package (compiled once per session by the fixture)."""
    from blendclip_core.types import ObjectBatch
    from blendclip_ros.node import params as P
    from blendclip_ros.node.model import load_model

    model = load_model(P.from_values({'checkpoint': str(exported['aoti']), 'device': 'cpu'}))
    assert model.model_format == 'aoti' and model.own_labels == eager.labels
    rng = np.random.default_rng(3)
    batch = ObjectBatch.from_list([rng.normal(size=(n, 3)).astype(np.float32) * 2 for n in (1, 9, 200, 2000)])
    np.testing.assert_array_equal(model.classifier.classify(batch, top_k=1).indices,
                                  eager.classify(batch, top_k=1).indices)
