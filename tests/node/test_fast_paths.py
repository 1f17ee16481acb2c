"""The node's per-frame fast paths give exactly what the plain ways give: cloud -> xyz (incl. 0 points),
slot-filled LabelledObjects vs the generated constructors (equal messages, same bytes on the wire)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from hostile import big_endian_box_array, broken_box_messages
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from blendclip.msg import LabelHypothesis, LabelledObject, LabelledObjectArray
from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions import boxes as conv
from blendclip_ros.conversions import cdr, fastmsg
from blendclip_ros.conversions import pointcloud as pc


def _wire(msg: PointCloud2) -> PointCloud2:
    return deserialize_message(serialize_message(msg), PointCloud2)


@pytest.mark.parametrize('shape', [(1, 0), (0, 0), (0, 16)])
def test_cloud_to_xyz_reads_zero_point_clouds(shape):
    """Used to raise `ValueError: cannot reshape array of size 0` (the node worked around it)."""
    dtype = np.dtype([('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('intensity', 'f4'), ('rgb', 'u1', 3),
                      ('t', '<f8')])
    msg = _wire(pc.array_to_cloud(np.zeros(shape, dtype=dtype), frame_id='lidar'))
    assert msg.width * msg.height == 0
    points, dropped = pc.cloud_to_xyz(msg)
    assert points.shape == (0, 3) and points.dtype == np.float32 and dropped == 0
    points, dropped = pc.cloud_to_xyz(msg, extra_fields=('intensity', 'rgb', 't'))
    assert points.shape == (0, 8) and dropped == 0
    with pytest.raises(pc.MissingFieldError):  # checks still apply to an empty cloud
        pc.cloud_to_xyz(msg, extra_fields=('ring',))


@pytest.mark.parametrize('nan_fraction', [0.0, 0.2])
def test_cloud_to_xyz_matches_a_per_point_reference(nan_fraction):
    rng = np.random.default_rng(3)
    dtype = np.dtype({'names': ['x', 'y', 'z', 'intensity', 'ring'],
                      'formats': ['<f4', '<f4', '<f4', '<f4', '<u2'], 'offsets': [0, 4, 8, 16, 20],
                      'itemsize': 24})
    arr = np.zeros(3000, dtype=dtype)
    for name in dtype.names:
        arr[name] = rng.normal(scale=30, size=len(arr)) if name != 'ring' else rng.integers(0, 32, len(arr))
    bad = rng.random(len(arr)) < nan_fraction
    arr['intensity'][bad] = np.nan  # an extra column's NaN drops the point only when that column is read
    arr['y'][bad & (rng.random(len(arr)) < 0.5)] = np.inf
    msg = _wire(pc.array_to_cloud(arr))
    for extra in ((), ('intensity', 'ring')):
        rows = np.stack([arr[n].astype(np.float32) for n in ('x', 'y', 'z', *extra)], axis=1)
        keep = np.isfinite(rows).all(axis=1)
        points, dropped = pc.cloud_to_xyz(msg, extra_fields=extra)
        np.testing.assert_array_equal(points, rows[keep])
        assert dropped == np.count_nonzero(~keep)
        assert all(points[:, j].flags.c_contiguous for j in range(points.shape[1]))  # column-major


def test_cloud_layout_cache_follows_layout_changes():
    """The per-layout dtype cache never answers for another layout, and never caches a bad one."""
    arr = np.zeros(4, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('i', '<f4')])
    arr['x'], arr['y'], arr['z'], arr['i'] = [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 0, 0]
    msg = _wire(pc.array_to_cloud(arr))
    np.testing.assert_array_equal(pc.cloud_to_xyz(msg).points[:, 0], [1, 2, 3, 4])
    msg.fields[0].offset, msg.fields[3].offset = 12, 0  # same bytes, x and i swapped: x reads the zeros
    np.testing.assert_array_equal(pc.cloud_to_xyz(msg).points[:, 0], [0, 0, 0, 0])
    msg.fields[1].offset = 8  # y on top of z: a layout error every time, not a cached dtype
    for _ in range(2):
        with pytest.raises(pc.FieldLayoutError):
            pc.cloud_to_xyz(msg)
    for step in range(200):  # many layouts: the cache stays bounded and right
        grown = _wire(pc.array_to_cloud(np.zeros(2, dtype={'names': ['x', 'y', 'z'], 'formats': ['<f4'] * 3,
                                                           'offsets': [0, 4, 8], 'itemsize': 12 + 4 * step})))
        assert pc.cloud_to_xyz(grown).points.shape == (2, 3)
    assert len(pc._DTYPES) <= pc._DTYPES_MAX


def _predictions(n: int, k: int, vocab: tuple[str, ...], rng) -> Predictions:
    status = rng.choice([s.value for s in ObjectStatus], size=n)
    indices = np.stack([rng.permutation(len(vocab))[:k] for _ in range(n)]).astype(np.int64)
    scores = np.sort(rng.random((n, k)).astype(np.float32), axis=1)[:, ::-1].copy()
    unlabelled = (status == ObjectStatus.NO_POINTS) | (status == ObjectStatus.INVALID_BOX)
    indices[unlabelled], scores[unlabelled] = -1, np.nan
    indices[0, 1:] = -1  # a classified object with fewer hypotheses than k
    status[0] = ObjectStatus.OK
    status[1] = ObjectStatus.OK
    indices[1] = -1  # OK without any hypothesis: label '' and score NaN
    if n > 2:  # a hole first: the label is the first hypothesis that is there
        status[2], indices[2, 0] = ObjectStatus.OK, -1
        indices[2, 1:] = np.arange(1, k)
    num_points = rng.integers(-1, 5000, size=n)
    return Predictions(indices, scores, num_points, status, vocab, 'v7:test')


def _boxes(n: int, rng) -> Boxes:
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scores = rng.random(n)
    scores[::5] = np.nan
    return Boxes(rng.normal(size=(n, 3)) * 30, rng.uniform(0.1, 9, (n, 3)), quats,
                 tuple(f'id-{i}' for i in range(n)), 'LIDAR_TOP',
                 tuple(f'det{i % 3}' if i % 4 else '' for i in range(n)), scores)


def _reference_objects(predictions: Predictions, boxes: Boxes) -> list:
    """The builder as it was before the fast path (generated constructors, per-element numpy reads)."""
    objects = []
    for i in range(len(boxes)):
        status = ObjectStatus(int(predictions.status[i]))
        top = predictions.top_labels(i) if status in conv.CLASSIFIED else []
        ok = status == ObjectStatus.OK and bool(top)
        obj = LabelledObject()
        obj.id = boxes.ids[i]
        conv._fill_pose(obj.pose, boxes.centers[i], boxes.quaternions[i])
        conv._fill_vector(obj.size, boxes.sizes[i])
        obj.label = top[0][0] if ok else ''
        obj.score = float(top[0][1]) if ok else math.nan
        obj.top_k = [LabelHypothesis(label=label, score=float(score)) for label, score in top]
        obj.num_points = max(int(predictions.num_points[i]), 0)
        obj.status = int(status)
        obj.detector_label = boxes.detector_labels[i]
        obj.detector_score = float(boxes.detector_scores[i])
        objects.append(obj)
    return objects


def _plain(msg):
    """A message as nested tuples of (field, value), NaN as a marker (so equal messages compare equal)."""
    if hasattr(msg, 'get_fields_and_field_types'):
        return tuple((name, _plain(getattr(msg, name))) for name in msg.get_fields_and_field_types())
    if isinstance(msg, (list, tuple)):
        return tuple(_plain(v) for v in msg)
    if isinstance(msg, float) and math.isnan(msg):
        return 'nan'
    assert isinstance(msg, (str, int, float)), type(msg)  # plain Python values, as the constructors take
    return (type(msg).__name__, msg)


@pytest.mark.parametrize('n, k', [(0, 5), (1, 1), (64, 5), (300, 10)])
def test_slot_filled_objects_equal_constructor_built(n, k):
    rng = np.random.default_rng(n + k)
    vocab = tuple(f'label {i}' for i in range(12))
    preds, boxes = _predictions(max(n, 2), k, vocab, rng), _boxes(max(n, 2), rng)
    preds = Predictions(preds.indices[:n], preds.scores[:n], preds.num_points[:n], preds.status[:n], vocab,
                        preds.vocabulary_version)
    boxes = boxes.subset(slice(0, n))
    header = Header(frame_id='LIDAR_TOP', stamp=Time(sec=3, nanosec=4))
    assert conv._fast_objects() is not None  # the installed message classes allow the fast path
    fast = conv.labelled_objects_to_msg(preds, boxes, header=header, model='m')
    reference = LabelledObjectArray(header=header, objects=_reference_objects(preds, boxes),
                                    vocabulary_version='v7:test', model='m')
    constructed = LabelledObjectArray(header=header, objects=conv._objects_by_constructor(preds, boxes),
                                      vocabulary_version='v7:test', model='m')
    assert _plain(fast) == _plain(reference) == _plain(constructed)
    on_wire = deserialize_message(serialize_message(fast), LabelledObjectArray)
    assert _plain(on_wire) == _plain(deserialize_message(serialize_message(reference), LabelledObjectArray))
    assert len(on_wire.objects) == n
    if n:  # slot-filled instances behave like any other: readable, settable, printable, comparable
        first = fast.objects[0]
        assert first.pose.position.x == boxes.centers[0, 0] and first.size.z == boxes.sizes[0, 2]
        assert first.top_k[0] == reference.objects[0].top_k[0]
        first.label = 'changed'
        first.top_k = [LabelHypothesis(label='x', score=0.5)]
        assert 'changed' in repr(first) and first != reference.objects[0]


@pytest.mark.parametrize('n, k', [(0, 5), (1, 1), (7, 3), (64, 5), (300, 10)])
def test_cdr_bytes_are_what_rclpy_would_send(n, k):
    rng = np.random.default_rng(100 + n + k)
    # odd lengths, multi-byte UTF-8, empty strings and an embedded NUL: every string alignment case
    vocab = ('car', 'kick scooter', 'Fußgänger', 'x', '', 'traffic cone', 'ab', 'abc', 'abcd', 'bus\0tail',
             'wheelchair', 'pram')
    preds, boxes = _predictions(max(n, 2), k, vocab, rng), _boxes(max(n, 2), rng)
    preds = Predictions(preds.indices[:n], preds.scores[:n], preds.num_points[:n], preds.status[:n], vocab,
                        f'v{n}:{"é" * k}')
    ids = tuple('' if i % 7 == 0 else f'track-{"z" * (i % 5)}' for i in range(n))
    boxes = Boxes(boxes.centers[:n], boxes.sizes[:n], boxes.quaternions[:n], ids, 'LIDAR_TOP',
                  boxes.detector_labels[:n], boxes.detector_scores[:n])
    for frame, model in (('LIDAR_TOP', 'pointbert-tiny'), ('', ''), ('ab', 'abc')):
        header = Header(frame_id=frame, stamp=Time(sec=-3 if n == 1 else 1_700_000_000, nanosec=999_999_999))
        ours = cdr.labelled_objects_cdr(preds, boxes, header, model)
        reference = LabelledObjectArray(header=header, objects=_reference_objects(preds, boxes),
                                        vocabulary_version=preds.vocabulary_version, model=model)
        theirs = serialize_message(reference)
        back = deserialize_message(ours, LabelledObjectArray)
        assert _plain(back) == _plain(deserialize_message(theirs, LabelledObjectArray))
        assert len(back.objects) == n and back.header.frame_id == frame and back.model == model
        assert len(ours) == len(theirs)
        # byte for byte, except padding, which rclpy leaves uninitialised (ours is zero there)
        differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
        assert all(ours[i] == 0 for i in differ), differ[:10]


def test_cdr_labels_follow_a_vocabulary_change():
    """The writer caches the vocabulary's strings: alternating vocabularies (same size, other words, a
    list instead of a tuple) each give rclpy's bytes."""
    rng = np.random.default_rng(21)
    boxes = _boxes(9, rng)
    header = Header(frame_id='LIDAR_TOP', stamp=Time(sec=1, nanosec=2))
    base = _predictions(9, 3, ('a', 'b', 'c', 'd'), rng)
    car = ('car', 'bus', 'van', 'cat')
    for vocab in (car, ['kick scooter', 'é', '', 'pram'], car):
        preds = Predictions(base.indices, base.scores, base.num_points, base.status, vocab, 'v')
        ours = cdr.labelled_objects_cdr(preds, boxes, header, 'm')
        reference = LabelledObjectArray(header=header, objects=_reference_objects(preds, boxes),
                                        vocabulary_version='v', model='m')
        theirs = deserialize_message(serialize_message(reference), LabelledObjectArray)
        assert _plain(deserialize_message(ours, LabelledObjectArray)) == _plain(theirs)
        assert {o.label for o in theirs.objects} & set(vocab)  # the labels really come from this vocabulary


@pytest.mark.parametrize('n', [0, 1, 5, 64])
def test_box_arrays_read_from_cdr_as_rclpy_reads_them(n):
    from blendclip.msg import DetectedBoxArray
    from blendclip_ros.node import frame

    rng = np.random.default_rng(n)
    boxes = _boxes(max(n, 1), rng).subset(slice(0, n))
    ids = tuple(['', 'é', 'ab', 'abc', 'abcd'][i % 5] + str(i) * (i % 3) for i in range(n))
    boxes = Boxes(boxes.centers, boxes.sizes, boxes.quaternions, ids, 'base_link',
                  tuple('' if i % 2 else 'Fußgänger' * (i % 4) for i in range(n)), boxes.detector_scores)
    data = serialize_message(conv.boxes_to_msg(boxes, stamp=Time(sec=1_700_000_123, nanosec=456)))
    ours, header = frame.boxes_and_header(data)
    typed = deserialize_message(data, DetectedBoxArray)
    theirs = conv.boxes_from_msg(typed)
    assert ours.ids == theirs.ids and ours.detector_labels == theirs.detector_labels
    assert ours.frame_id == theirs.frame_id == 'base_link' == header.frame_id
    for name in ('centers', 'sizes', 'quaternions', 'detector_scores'):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    assert (header.stamp.sec, header.stamp.nanosec) == (1_700_000_123, 456) == (typed.header.stamp.sec, 456)
    assert cdr.cdr_stamp_ns(data) == 1_700_000_123_000_000_456
    with pytest.raises(cdr.CdrLayoutError):
        cdr.detected_boxes_from_cdr(data[:len(data) - 3] if n else data[:14])

    # the same message from a big-endian platform: read by us exactly as rclpy reads it
    big_endian = big_endian_box_array(boxes, 1_700_000_123, 456)
    assert _plain(deserialize_message(big_endian, DetectedBoxArray)) == _plain(typed)  # the encoder is right
    assert cdr.cdr_stamp_ns(big_endian) == 1_700_000_123_000_000_456
    be_boxes, header = frame.boxes_and_header(big_endian)
    assert be_boxes.ids == theirs.ids and be_boxes.detector_labels == theirs.detector_labels
    assert header.frame_id == 'base_link' and (header.stamp.sec, header.stamp.nanosec) == (1_700_000_123, 456)
    for name in ('centers', 'sizes', 'quaternions', 'detector_scores'):
        np.testing.assert_array_equal(getattr(be_boxes, name), getattr(theirs, name))
        assert getattr(be_boxes, name).dtype.isnative
    for cut in (len(big_endian) - 3, 14, 8):
        with pytest.raises(cdr.CdrLayoutError):
            cdr.detected_boxes_from_cdr(big_endian[:cut])


def test_box_bytes_that_are_no_box_array_are_layout_errors_quickly():
    """Whatever arrives on the box topic ends in CdrLayoutError (the node counts and skips it), in time
    bounded by the message size (a huge count is refused before any loop), never another exception."""
    import time

    from blendclip_ros.node import frame

    rng = np.random.default_rng(5)
    valid = serialize_message(conv.boxes_to_msg(_boxes(3, rng), stamp=Time(sec=1, nanosec=2)))
    for kind, data in broken_box_messages(valid).items():
        start = time.perf_counter()
        with pytest.raises(cdr.CdrLayoutError):
            frame.boxes_and_header(data)
        assert time.perf_counter() - start < 0.05, kind
    assert cdr.cdr_stamp_ns(valid[:8]) is None and cdr.cdr_stamp_ns(b'\x00\x07' + valid[2:]) is None
    # more boxes than the limit: refused from the count, before the boxes are read
    with pytest.raises(cdr.TooManyBoxesError) as err:
        cdr.detected_boxes_from_cdr(valid, max_boxes=2)
    assert err.value.count == 3
    assert len(cdr.detected_boxes_from_cdr(valid, max_boxes=3)[0]) == 3


def test_box_array_cdr_every_truncation_and_bad_length_is_a_layout_error():
    """Any strict prefix (the message ends with its last score: no trailing padding) and any string length
    pointing past the end is a CdrLayoutError (the node counts and skips it), never another error."""
    rng = np.random.default_rng(11)
    boxes = _boxes(4, rng)
    boxes = Boxes(boxes.centers, boxes.sizes, boxes.quaternions, ('', 'a', 'abcd', 'é' * 3), 'LIDAR_TOP',
                  ('car', '', 'ab', 'Fußgänger'), boxes.detector_scores)
    data = serialize_message(conv.boxes_to_msg(boxes, stamp=Time(sec=9, nanosec=10)))
    full, *_ = cdr.detected_boxes_from_cdr(memoryview(data))
    assert full.ids == boxes.ids and full.detector_labels == boxes.detector_labels
    for cut in range(len(data)):
        with pytest.raises(cdr.CdrLayoutError):
            cdr.detected_boxes_from_cdr(data[:cut])
    for at in range(12, len(data) - 3, 4):  # every 4-aligned word set to a huge count/length in turn
        bad = data[:at] + (0xFFFFFFF0).to_bytes(4, 'little') + data[at + 4:]
        try:
            cdr.detected_boxes_from_cdr(bad)
        except cdr.CdrLayoutError:
            pass  # a count or a string length: caught; anything else is a number, read as such


def test_cdr_string_padding():
    for text in ('', 'a', 'ab', 'abc', 'abcd', 'é'):
        data = cdr.cdr_string(text)
        assert len(data) % 4 == 0 and data[:4] == (len(text.encode()) + 1).to_bytes(4, 'little')
        assert data[4:4 + len(text.encode())] == text.encode() and data[4 + len(text.encode())] == 0


def test_unknown_status_is_an_error():
    rng = np.random.default_rng(0)
    preds = _predictions(4, 3, ('a', 'b', 'c'), rng)
    preds.status[2] = 9
    with pytest.raises(ValueError):
        conv.labelled_objects_to_msg(preds, _boxes(4, rng))
    with pytest.raises(ValueError):
        cdr.labelled_objects_cdr(preds, _boxes(4, rng), Header())


def test_maker_refuses_classes_it_cannot_fill_safely():
    assert fastmsg.maker(LabelledObject) is not None and fastmsg.maker(LabelHypothesis) is not None
    blank = fastmsg.maker(LabelHypothesis)()
    blank._label, blank._score = 'car', 0.25
    assert blank == LabelHypothesis(label='car', score=0.25)

    class ExtraSlot:  # a layout the module note does not cover
        __slots__ = ['_label', '_cache', '_check_fields']

        @classmethod
        def get_fields_and_field_types(cls):
            return {'label': 'string'}

    class Checked:  # ROS_PYTHON_CHECK_FIELDS=1: the setters must run
        __slots__ = ['_label', '_check_fields']

        def __init__(self):
            self._check_fields = True

        @classmethod
        def get_fields_and_field_types(cls):
            return {'label': 'string'}

    assert fastmsg.maker(ExtraSlot) is None and fastmsg.maker(Checked) is None and fastmsg.maker(int) is None
