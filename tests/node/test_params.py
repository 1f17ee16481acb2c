"""Node parameters: descriptors, validation with reasons, static transforms."""

import math

import numpy as np
import pytest

from blendclip_ros.node import params as P


def test_every_field_has_a_spec_and_defaults_validate():
    import dataclasses

    assert {f.name for f in dataclasses.fields(P.NodeParams)} == set(P.SPEC_BY_NAME)
    assert P.validate(P.NodeParams()) is None
    for spec in P.SPECS:
        d = P.descriptor(spec)
        assert d.description and d.read_only == (spec.kind == P.READ_ONLY)
        assert bool(d.floating_point_range) == (spec.float_range is not None)
    for name in ('checkpoint', 'device', 'text_space', 'autostart'):
        assert P.SPEC_BY_NAME[name].kind == P.READ_ONLY
    assert {'vocabulary', 'prompt_templates', 'top_k', 'score_threshold', 'min_points',
            'box_margin'} == P.DYNAMIC_NAMES


@pytest.mark.parametrize('name, value, needle', [
    ('vocabulary', [], 'at least one'),
    ('vocabulary', ['car', ' '], 'empty'),
    ('vocabulary', ['car', 'Car'], 'twice'),
    ('vocabulary', ['x' * 300], 'longer'),
    ('prompt_templates', ['a {} and {}'], "exactly one '{}'"),
    ('prompt_templates', ['no placeholder'], "exactly one '{}'"),
    ('prompt_templates', ['a {0} {}'], 'not a format string'),
    ('prompt_templates', ['{x} {}'], 'not a format string'),
    ('prompt_templates', [f'a {{}} {i}' for i in range(65)], 'at most 64'),
    ('prompt_templates', ['a {} ' + 'x' * 200], 'longer than 200'),
    ('vocabulary', [f'label {i}' for i in range(4097)], 'at most 4096'),
    ('top_k', 0, 'outside'),
    ('score_threshold', 1.5, 'outside'),
    ('score_threshold', math.nan, 'finite'),
    ('box_margin', -0.1, 'outside'),
])
def test_invalid_dynamic_values_have_reasons(name, value, needle):
    reason = P.validate_dynamic(name, value)
    assert reason and needle in reason


def test_valid_dynamic_values_pass():
    assert P.validate_dynamic('vocabulary', ['car', 'kick scooter']) is None
    assert P.validate_dynamic('prompt_templates', ['a {}.', 'lidar of a {}']) is None
    assert P.validate_dynamic('prompt_templates', [f'a {{}} {i}' for i in range(64)]) is None
    assert P.validate_dynamic('vocabulary', [f'label {i}' for i in range(4096)]) is None


def test_template_limits_are_the_classifiers():
    from blendclip_core.classifier import VocabularyError, validate_vocabulary

    with pytest.raises(VocabularyError, match='at most 64'):
        validate_vocabulary(['car'], [f'a {{}} {i}' for i in range(65)])
    with pytest.raises(VocabularyError, match='at most 200'):
        validate_vocabulary(['car'], ['a {} ' + 'x' * 200])
    assert P.validate_dynamic('top_k', 3) is None


def test_static_transforms_quaternion_rpy_and_inverse():
    tfs = P.parse_static_transforms([
        'base_link->LIDAR_TOP: 1 2 3 0 0 0.7071067811865476 0.7071067811865476',
        'a->b: 0 0 1 0 0 1.5707963267948966',
    ])
    fwd, inv = tfs[('base_link', 'LIDAR_TOP')], tfs[('LIDAR_TOP', 'base_link')]
    p_child = np.array([1.0, 0.0, 0.0])
    p_parent = fwd.rotation @ p_child + fwd.translation
    np.testing.assert_allclose(p_parent, [1, 3, 3], atol=1e-9)  # +90 deg yaw then shift
    np.testing.assert_allclose(inv.rotation @ p_parent + inv.translation, p_child, atol=1e-9)
    np.testing.assert_allclose(tfs[('a', 'b')].rotation, fwd.rotation, atol=1e-9)


@pytest.mark.parametrize('entry', ['no arrow: 1 2 3 0 0 0 1', 'a->b 1 2 3 0 0 0 1', 'a->b: 1 2 3',
                                   'a->b: 1 2 3 0 0 0 0', 'a->b: 1 2 x 0 0 0 1', 'a->b: 1 2 nan 0 0 0 1',
                                   '->b: 1 2 3 0 0 0 1'])
def test_bad_static_transforms_raise_with_reason(entry):
    with pytest.raises(ValueError, match='static transform'):
        P.parse_static_transforms([entry])


def test_topic_names_are_validated_before_use():
    assert P.validate(P.NodeParams(cloud_topic='/sensing/lidar/top/points')) is None
    reason = P.validate(P.NodeParams(boxes_topic='bad topic'))
    assert reason.startswith('boxes_topic:') and 'bad topic' in reason
    assert 'empty' in P.validate_topic('labels_topic', '')


def test_from_values_converts_and_validates():
    params = P.from_values({'vocabulary': ['a', 'b'], 'top_k': 2, 'sync_slop': 0.02,
                            'static_transforms': None})
    assert params.vocabulary == ('a', 'b') and params.sync_slop_ns == 20_000_000
    assert params.static_transforms == ()
    with pytest.raises(ValueError, match='outside'):
        P.from_values({'max_boxes': 0})


def test_declare_and_read_on_a_real_node():
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=['--ros-args', '-p', 'top_k:=3', '-p',
                                  "static_transforms:=['a->b: 0 0 0 0 0 0 1']"])
    try:
        node = Node('params_test', context=ctx)
        P.declare(node)
        params = P.read(node)
        assert params.top_k == 3 and params.static_transforms == ('a->b: 0 0 0 0 0 0 1',)
        assert params.vocabulary == P.NodeParams().vocabulary
        # rclpy enforces the descriptor: read-only and ranges
        res = node.set_parameters([Parameter('device', value='cuda')])[0]
        assert not res.successful
        res = node.set_parameters([Parameter('top_k', value=1000)])[0]
        assert not res.successful
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_static_transforms_unset_reads_as_empty():
    import rclpy
    from rclpy.node import Node

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    try:
        node = Node('params_test_empty', context=ctx)
        P.declare(node)
        assert P.read(node).static_transforms == ()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_parameter_policy_is_a_pure_function():
    from blendclip_ros.node.param_policy import review

    vocab, templates = ('car', 'bus'), ('a {}.',)
    ok = review([('top_k', 3), ('vocabulary', ['car', 'van'])], True, vocab, templates)
    assert ok.accepted and ok.updates == {'top_k': 3, 'vocabulary': ('car', 'van')}
    assert review([('sync_slop', 0.1)], False, vocab, templates).accepted  # unconfigured: allowed
    assert 'applied at configure' in review([('sync_slop', 0.1)], True, vocab, templates).reason
    assert 'cloud_topic' in review([('cloud_topic', 'a b')], False, vocab, templates).reason
    assert 'static transform' in review([('static_transforms', ['x'])], False, vocab, templates).reason
    # labels are checked with the core rules as the classifier applies them (whitespace normalised)
    assert 'twice' in review([('vocabulary', ['a  b', 'a b'])], True, vocab, templates).reason
