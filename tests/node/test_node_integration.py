"""The node in its own process (its console script with the --ros-args launch_ros would give it; real
`ros2 launch` is in test_ros2_launch.py), talking real rclpy to this test process.

One node process serves every test of this module (starting torch + the text model costs seconds);
tests run in file order and each leaves the node active with the test vocabulary.
"""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from node_harness import (
    EGO_FRAME,
    TEST_VOCABULARY,
    NodeClient,
    child_env,
    double,
    integer,
    load_sample,
    sample_cloud,
    string,
    string_array,
    write_params,
)

from blendclip_core.geometry import Boxes
from blendclip_core.pipeline import PipelineConfig
from blendclip_core.types import ObjectStatus
from blendclip_ros.conversions.stamps import ns_to_stamp, split_ns, stamp_to_ns

START_TIMEOUT = 120.0  # torch + MiniLM import on a busy 2-core machine


def node_command(params) -> list[str]:
    """What launch/blendclip.launch.py makes launch_ros run (checked for real in test_ros2_launch.py)."""
    return [str(Path(sys.executable).with_name('blendclip_node')), '--ros-args', '-r', '__node:=blendclip',
            '--params-file', str(params), '-p', 'autostart:=true', '-p', 'device:=cpu']


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """SIGINT (what launch sends on Ctrl-C), then SIGKILL."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


@contextlib.contextmanager
def running_node(params: Path, log_path: Path, env: dict[str, str] | None = None):
    """The node process (output in `log_path`); stopped with SIGINT at the end, which must exit 0."""
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(node_command(params), env=env or child_env(), stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        code = stop(proc)
        print(log_path.read_text()[-3000:])
    assert code == 0, f'node exit code {code}'


@pytest.fixture(scope='module')
def node_process(tiny_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('node')
    with running_node(write_params(tmp / 'params.yaml', tiny_checkpoint), tmp / 'node.log') as proc:
        yield proc, tmp / 'node.log'


@pytest.fixture(scope='module')
def client(node_process):
    proc, log_path = node_process
    context = rclpy.Context()
    rclpy.init(context=context)
    c = NodeClient(context)
    try:
        if not c.wait_active(START_TIMEOUT):
            pytest.fail(f'node did not become active (alive={proc.poll() is None}):\n'
                        f'{log_path.read_text()[-3000:]}')
        yield c
    finally:
        c.close()
        rclpy.shutdown(context=context)


@pytest.fixture(scope='module')
def sample():
    return load_sample()


def _settled_counters(client: NodeClient) -> dict:
    """The node's counters once what was sent before has been processed and reported."""
    client.spin_until(lambda: False, 1.0)  # diagnostics every 0.2 s
    assert client.spin_until(lambda: 'boxes_malformed' in client.counters(), 20)
    return dict(client.counters())


def _wait_worker_idle(client: NodeClient, boxes_received: int) -> None:
    """Until the node has taken `boxes_received` box messages and its worker has nothing pending."""
    def idle() -> bool:
        c = client.counters()
        done = c.get('worker_processed', 0) + c.get('worker_dropped_busy', 0) + c.get('worker_failed', 0)
        return c.get('boxes_received', 0) >= boxes_received and done >= c.get('worker_submitted', 0)
    assert client.spin_until(idle, 20), client.counters()


def _assert_answers_boxes(labels, boxes: Boxes, header_stamp: int | None = None):
    assert labels is not None, 'frame not answered'
    assert [o.id for o in labels.objects] == list(boxes.ids)
    got_c = np.array([[o.pose.position.x, o.pose.position.y, o.pose.position.z] for o in labels.objects])
    got_q = np.array([[o.pose.orientation.x, o.pose.orientation.y, o.pose.orientation.z, o.pose.orientation.w]
                      for o in labels.objects])
    got_s = np.array([[o.size.x, o.size.y, o.size.z] for o in labels.objects])
    np.testing.assert_array_equal(got_c.reshape(-1, 3), boxes.centers)  # float64 copied, not recomputed
    np.testing.assert_array_equal(got_q.reshape(-1, 4), boxes.quaternions)
    np.testing.assert_array_equal(got_s.reshape(-1, 3), boxes.sizes)
    assert [o.detector_label for o in labels.objects] == list(boxes.detector_labels)


def test_node_started_with_params_file_has_the_declared_qos(client):
    assert client.vocabularies[-1].labels == TEST_VOCABULARY
    assert client.vocabularies[-1].text_space.startswith('minilm:')
    # QoS: sensor data in, reliable out, latched vocabulary, and the params file's override applied
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    def qos(kind, topic):
        infos = getattr(client.node, f'get_{kind}_info_by_topic')(topic)
        return [i.qos_profile for i in infos if i.node_name == 'blendclip']

    assert client.spin_until(lambda: qos('publishers', '/blendclip/markers'), 10)
    assert qos('subscriptions', '/lidar/points')[0].reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos('subscriptions', '/detections')[0].reliability == ReliabilityPolicy.RELIABLE
    assert qos('publishers', '/blendclip/objects')[0].reliability == ReliabilityPolicy.RELIABLE
    assert qos('publishers', '/blendclip/vocabulary')[0].durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos('publishers', '/blendclip/markers')[0].reliability == ReliabilityPolicy.BEST_EFFORT


MIN_POINTS = PipelineConfig().min_points  # the node's shipped default (tests/node/test_defaults.py)


def test_every_frame_answered_one_object_per_box(client, sample):
    points, boxes, ann = sample
    cloud = sample_cloud(points)
    recount = np.array([o['points_in_box_recount'] for o in ann['objects']])
    for _ in range(3):
        stamp = client.next_stamp()
        labels = client.frame(cloud, boxes, stamp=stamp)
        _assert_answers_boxes(labels, boxes)
        assert labels.header.frame_id == 'LIDAR_TOP' and labels.model == 'tiny-node-test'
        assert stamp_to_ns(labels.header.stamp) == stamp
        assert labels.vocabulary_version == client.vocabularies[-1].version
        # cropped from the cloud we sent; boxes under the shipped min_points are NO_POINTS (the encoder
        # saw none of their points: num_points 0)
        sparse = recount < MIN_POINTS
        num_points = np.array([o.num_points for o in labels.objects])
        np.testing.assert_array_equal(num_points, np.where(sparse, 0, recount))
        status = np.array([o.status for o in labels.objects])
        assert set(status) <= {ObjectStatus.OK, ObjectStatus.NO_POINTS}
        np.testing.assert_array_equal(status == ObjectStatus.NO_POINTS, sparse)
        for o in labels.objects:
            if o.status == ObjectStatus.OK:
                assert o.label in TEST_VOCABULARY and 0 < o.score <= 1 and o.label == o.top_k[0].label
                assert len(o.top_k) == 5 and [h.score for h in o.top_k] == sorted(
                    (h.score for h in o.top_k), reverse=True)
            else:
                assert o.label == '' and math.isnan(o.score) and not o.top_k
    counters = client.wait_counter('frames_published', 3)
    assert counters['frames_dropped'] == 0
    assert counters['objects_labelled'] >= 3 * (recount >= MIN_POINTS).sum()
    assert counters['ros_overhead_samples'] >= 3 and counters['model_ms_p50'] > 0
    assert all(counters[f'{k}_samples'] >= 3 for k in ('convert', 'crop', 'build', 'publish', 'queue_wait'))


def test_vocabulary_change_through_parameter_service(client, sample):
    points, boxes, _ = sample
    cloud = sample_cloud(points)
    before = client.frame(cloud, boxes)
    new_vocab = ['kick scooter', 'mailbox', 'dog']
    rejected_before = client.wait_counter('parameters_rejected', 0)['parameters_rejected']
    result = client.set_parameter('vocabulary', string_array(new_vocab))
    assert result.successful, result.reason
    # embedded off the labelling path; once published, every later frame is labelled with it
    assert client.spin_until(lambda: client.vocabularies[-1].labels == new_vocab, 30)
    for _ in range(2):
        labels = client.frame(cloud, boxes)
        _assert_answers_boxes(labels, boxes)
        assert labels.vocabulary_version != before.vocabulary_version
        ok = [o for o in labels.objects if o.status == ObjectStatus.OK]
        assert ok and all(o.label in new_vocab for o in ok) and all(len(o.top_k) == 3 for o in ok)
    assert client.vocabularies[-1].version == labels.vocabulary_version

    # thresholds are dynamic too
    assert client.set_parameter('score_threshold', double(0.99)).successful
    labels = client.frame(cloud, boxes)
    assert {o.status for o in labels.objects} <= {ObjectStatus.BELOW_THRESHOLD, ObjectStatus.NO_POINTS}
    assert client.set_parameter('score_threshold', double(0.0)).successful
    assert client.set_parameter('top_k', integer(2)).successful
    labels = client.frame(cloud, boxes)
    assert max(len(o.top_k) for o in labels.objects) == 2

    # invalid values are rejected with a reason and change nothing
    rejected = {
        'vocabulary': (string_array([]), 'at least one'),
        'prompt_templates': (string_array(['no placeholder']), '{}'),
        'top_k': (integer(0), ''),
        'device': (string('cuda'), 'read-only'),
        'cloud_topic': (string('/other'), 'configure'),
    }
    for name, (value, reason) in rejected.items():
        result = client.set_parameter(name, value)
        assert not result.successful, name
        assert reason in result.reason, (name, result.reason)
    twice = client.set_parameter('vocabulary', string_array(['car', 'Car']))
    assert not twice.successful and 'twice' in twice.reason
    labels = client.frame(cloud, boxes)
    assert all(o.label in new_vocab for o in labels.objects if o.status == ObjectStatus.OK)

    assert client.set_parameter('vocabulary', string_array(TEST_VOCABULARY)).successful
    assert client.set_parameter('top_k', integer(5)).successful
    assert client.spin_until(lambda: client.vocabularies[-1].labels == TEST_VOCABULARY, 30)
    assert client.frame(cloud, boxes).vocabulary_version == before.vocabulary_version
    client.wait_counter('vocabulary_updates', 2)
    # every refusal counted once, also those rclpy makes before the node's callback (read-only, range)
    client.wait_counter('parameters_rejected', rejected_before + len(rejected) + 1)
    client.spin_until(lambda: False, 0.5)
    assert client.counters()['parameters_rejected'] == rejected_before + len(rejected) + 1


def test_bad_inputs_are_answered_or_counted_and_node_keeps_serving(client, sample):
    from blendclip_ros.conversions import array_to_cloud, points_to_cloud

    points, boxes, ann = sample
    good = sample_cloud(points)
    few = boxes.subset(slice(0, 3))

    # empty cloud -> every box answered, no points
    labels = client.frame(points_to_cloud(np.zeros((0, 3)), frame_id='LIDAR_TOP'), few)
    _assert_answers_boxes(labels, few)
    assert {o.status for o in labels.objects} == {ObjectStatus.NO_POINTS}
    client.wait_counter('clouds_empty', 1)

    # a cloud without x/y/z -> answered without points, counted as malformed
    no_xyz = np.zeros(100, dtype=[('a', np.float32), ('b', np.float32), ('c', np.float32)])
    labels = client.frame(array_to_cloud(no_xyz, frame_id='LIDAR_TOP'), few)
    assert {o.status for o in labels.objects} == {ObjectStatus.NO_POINTS}
    client.wait_counter('clouds_malformed_missing_field', 1)

    # data shorter than width * point_step
    short = sample_cloud(points)
    short.width += 10
    short.row_step = short.width * short.point_step
    labels = client.frame(short, few)
    assert {o.status for o in labels.objects} == {ObjectStatus.NO_POINTS}
    client.wait_counter('clouds_malformed_size', 1)

    # NaN / inf points are dropped and counted; the rest of the frame is labelled as usual
    bad_points = points.copy()
    bad_points[:1000, 0] = np.nan
    bad_points[1000:1500, 2] = np.inf
    labels = client.frame(sample_cloud(bad_points), boxes)
    _assert_answers_boxes(labels, boxes)
    client.wait_counter('points_nonfinite', 1500)

    # zero, negative and non-finite boxes -> INVALID_BOX; a box far from every point -> NO_POINTS
    weird = Boxes(np.array([[0, 0, 0], [1, 1, 1], [np.nan, 0, 0], [500, 500, 0], boxes.centers[18]]),
                  np.array([[0, 1, 1], [-1, 2, 2], [1, 1, 1], [4, 2, 2], boxes.sizes[18]]),
                  np.array([[0, 0, 0, 1]] * 4 + [boxes.quaternions[18]]),
                  ('zero', 'neg', 'nan', 'far', 'truck'), 'LIDAR_TOP')
    labels = client.frame(good, weird)
    _assert_answers_boxes(labels, weird)
    assert [o.status for o in labels.objects] == [ObjectStatus.INVALID_BOX] * 3 + [ObjectStatus.NO_POINTS,
                                                                                    ObjectStatus.OK]

    # 10,000 boxes (over max_boxes) -> skipped and counted
    rng = np.random.default_rng(0)
    many = Boxes.from_yaw(rng.uniform(-40, 40, (10_000, 3)), np.ones((10_000, 3)), rng.uniform(-3, 3, 10_000),
                          frame_id='LIDAR_TOP')
    stamp = client.send(good, many)
    client.wait_counter('frames_skipped_too_many_boxes', 1)
    assert stamp not in client.labels

    # boxes in a frame with no transform to the cloud's -> skipped with a warning, counted
    stamp = client.send(good, Boxes(few.centers, few.sizes, few.quaternions, few.ids, 'map'))
    client.wait_counter('frames_skipped_frame_mismatch', 1)
    assert stamp not in client.labels

    # boxes in the ego frame with the static transform given -> cropped as in LIDAR_TOP
    m = np.array(ann['lidar2ego'])
    ego_boxes = boxes.transformed(m[:3, :3], m[:3, 3], EGO_FRAME)
    labels = client.frame(good, ego_boxes)
    _assert_answers_boxes(labels, ego_boxes)
    recount = np.array([o['points_in_box_recount'] for o in ann['objects']])
    num_points = np.array([o.num_points for o in labels.objects])
    expected = np.where(recount < MIN_POINTS, 0, recount)  # under min_points: NO_POINTS, 0 points seen
    assert (num_points == expected).sum() >= len(recount) - 2, list(zip(num_points, expected))

    # a stale stamp (older than the last frame) -> dropped and counted
    before = client.counters().get('sync_stale', 0)
    client.send(good, few, stamp=client._last_stamp - 5_000_000_000)
    client.wait_counter('sync_stale', before + 1)

    # clouds and boxes whose stamps never match -> not paired, evicted, counted
    before = client.counters().get('sync_evicted_unpaired', 0)
    t = client.next_stamp()
    client.send(good, few, stamp=t, cloud_stamp=t - 1000)
    labels = client.frame(good, boxes)  # the next good frame evicts the unpaired pair
    _assert_answers_boxes(labels, boxes)
    client.wait_counter('sync_evicted_unpaired', before + 2)

    # the node is alive, still answering, and counted every frame that failed (none)
    dropped = client.wait_counter('frames_dropped', 4)['frames_dropped']
    assert dropped == 4  # too many boxes, frame mismatch, stale cloud, unpaired cloud (sent one by one)
    counters = client.counters()
    assert counters['frames_failed'] == 0 and counters['worker_failed'] == 0
    assert counters['state'] == 'active'


def test_bytes_that_are_no_message_are_counted_and_the_node_keeps_labelling(node_process, client, sample):
    """8-byte, truncated, garbage, wrongly flagged and huge-count box messages, and clouds that are no
    PointCloud2, sent raw by a publisher in this process: counted skips, never a dead node; a real
    big-endian box array is labelled, and so is the valid frame after it all."""
    from hostile import big_endian_box_array, broken_box_messages
    from rclpy.serialization import serialize_message

    from blendclip_ros.conversions import boxes_to_msg

    proc, log_path = node_process
    points, boxes, _ = sample
    cloud, few = sample_cloud(points), boxes.subset(slice(0, 3))
    before = _settled_counters(client)
    kinds = broken_box_messages(serialize_message(boxes_to_msg(few)))
    for kind in kinds:  # each with a fresh stamp and a cloud of that stamp: the worker has to read it
        # a valid frame answered first: the worker is idle, so the broken one is read, not replaced
        _assert_answers_boxes(client.frame(sample_cloud(points), few), few)
        t = client.next_stamp()
        data = broken_box_messages(serialize_message(boxes_to_msg(few, stamp=ns_to_stamp(t))))[kind]
        cloud.header.stamp = ns_to_stamp(t)
        received = client.counters()['boxes_received']
        client.cloud_pub.publish(cloud)
        client.boxes_pub.publish(data)
        _wait_worker_idle(client, boxes_received=received + 1)  # read before the next frame can replace it
    assert client.counters()['worker_dropped_busy'] == before['worker_dropped_busy']
    # no cloud at all: too short for a stamp (the RMW pads to 4 bytes), another encapsulation
    client.cloud_pub.publish(b'\x00\x01\x00\x00gar')
    client.cloud_pub.publish(b'\x00\x07' + bytes(30))
    # a cloud cut in half (stamp readable, body not): its boxes are answered without points
    t = client.next_stamp()
    cloud.header.stamp = ns_to_stamp(t)
    client.cloud_pub.publish(serialize_message(cloud)[:len(points) * 10])
    client.boxes_pub.publish(boxes_to_msg(few, stamp=ns_to_stamp(t)))
    assert client.spin_until(lambda: t in client.labels, 30), 'frame with a truncated cloud not answered'
    assert {o.status for o in client.labels[t].objects} == {ObjectStatus.NO_POINTS}
    # a box array from a big-endian platform is read like any other
    t = client.next_stamp()
    cloud = sample_cloud(points)
    cloud.header.stamp = ns_to_stamp(t)
    client.cloud_pub.publish(cloud)
    client.boxes_pub.publish(big_endian_box_array(boxes, *split_ns(t)))
    assert client.spin_until(lambda: t in client.labels, 30), 'big-endian box array not answered'
    _assert_answers_boxes(client.labels[t], boxes)
    _assert_answers_boxes(client.frame(sample_cloud(points), boxes), boxes)  # and the next valid frame
    assert proc.poll() is None, log_path.read_text()[-3000:]
    # every broken box message counted (stamp unreadable on the executor, or body on the worker), except
    # the two whose stamp reads as some other time (garbage, the wrong byte-order flag): counted by the
    # stamp rules instead; both clouds that are no cloud and the truncated one; nothing raised
    counters = client.wait_counter('clouds_malformed_cdr', before.get('clouds_malformed_cdr', 0) + 3)
    assert counters['boxes_malformed'] - before['boxes_malformed'] >= len(kinds) - 2, {
        k: v for k, v in counters.items() if not k.endswith(('_p50', '_p99', '_samples'))}
    assert counters['callbacks_failed'] == 0 and counters['frames_failed'] == 0
    assert counters['state'] == 'active'


def test_frames_stamped_in_the_future_are_dropped_and_later_frames_labelled(node_process, client, sample):
    points, boxes, _ = sample
    cloud, few = sample_cloud(points), boxes.subset(slice(0, 3))
    before = _settled_counters(client)
    hour_ahead = client.next_stamp() + 3600 * 10**9
    largest = (2**31 - 1) * 10**9 + 999_999_999
    for stamp in (hour_ahead, largest):
        client.send(cloud, few, stamp=stamp)
    for _ in range(3):
        _assert_answers_boxes(client.frame(cloud, boxes), boxes)
    counters = client.wait_counter('sync_from_future', before['sync_from_future'] + 4)  # 2 clouds, 2 boxes
    assert hour_ahead not in client.labels and largest not in client.labels
    assert counters['sync_stale'] == before['sync_stale']  # nothing later went stale


def test_vocabulary_changes_never_stop_labelling_and_the_latest_wins(client, sample):
    """A large vocabulary is embedded while frames flow: they keep the old one until the new one is
    ready, then switch for good; a change arriving during an embedding supersedes it."""
    points, boxes, _ = sample
    cloud = sample_cloud(points)
    old = client.vocabularies[-1]
    large = [f'object number {i}' for i in range(1500)]  # seconds of MiniLM on one CPU thread
    final = ['car', 'truck', 'wheelchair']
    n_vocab = len(client.vocabularies)
    superseded = client.wait_counter('vocabulary_updates_superseded', 0)['vocabulary_updates_superseded']
    assert client.set_parameter('vocabulary', string_array(large)).successful
    versions, gaps, last = [], [], time.monotonic()
    while len(versions) < 3 or versions[-1] == old.version:  # labelled with the old one meanwhile
        labels = client.frame(cloud, boxes, timeout=10)
        assert labels is not None, f'no labels {time.monotonic() - last:.1f} s after the change'
        versions.append(labels.vocabulary_version)
        gaps.append(time.monotonic() - last)
        last = time.monotonic()
        if len(versions) == 3:
            assert versions == [old.version] * 3, 'the large vocabulary was ready at once: proves nothing'
            assert client.set_parameter('vocabulary', string_array(final)).successful  # supersedes it
        assert len(versions) < 2000
    assert client.spin_until(lambda: client.vocabularies[-1].labels == final, 30)
    labels = client.frame(cloud, boxes)
    assert labels.vocabulary_version == client.vocabularies[-1].version == versions[-1]
    assert all(o.label in final for o in labels.objects if o.status == ObjectStatus.OK)
    assert set(versions) == {old.version, labels.vocabulary_version}  # the large one was never used
    assert all(len(v.labels) != len(large) for v in client.vocabularies[n_vocab:])
    assert max(gaps) < 5.0, gaps  # frames kept coming (a busy 2-core machine: generous)
    client.wait_counter('vocabulary_updates_superseded', superseded + 1)
    assert client.set_parameter('vocabulary', string_array(TEST_VOCABULARY)).successful
    assert client.spin_until(lambda: client.vocabularies[-1].labels == TEST_VOCABULARY, 30)


def test_lifecycle_deactivate_stops_and_activate_resumes(client, sample):
    points, boxes, _ = sample
    cloud = sample_cloud(points)
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.frame(cloud, boxes, timeout=1.5) is None  # unsubscribed: nothing answered
    client.spin_until(lambda: client.counters().get('state') == 'inactive', 5)
    assert client.counters()['state'] == 'inactive'
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.spin_until(lambda: client.cloud_pub.get_subscription_count() > 0
                             and client.boxes_pub.get_subscription_count() > 0, 10)
    _assert_answers_boxes(client.frame(cloud, boxes), boxes)


def test_cleanup_releases_model_and_configure_applies_new_settings(client, sample):
    points, boxes, _ = sample
    cloud = sample_cloud(points)
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP)
    client.spin_until(lambda: client.counters().get('state') == 'unconfigured', 5)
    assert client.counters()['model'] == ''  # the model was dropped
    # configure-time parameters are accepted while unconfigured and applied at configure
    assert client.set_parameter('max_boxes', integer(10_000)).successful
    bad = client.set_parameter('static_transforms', string_array(['a->b: 1 2']))
    assert not bad.successful and 'static transform' in bad.reason
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.spin_until(lambda: client.cloud_pub.get_subscription_count() > 0
                             and client.boxes_pub.get_subscription_count() > 0, 10)
    # now 10,000 boxes are labelled (one object each, most without points), 10,001 are skipped
    rng = np.random.default_rng(1)
    many = Boxes.from_yaw(rng.uniform(-40, 40, (10_000, 3)), rng.uniform(0.5, 4, (10_000, 3)),
                          rng.uniform(-3, 3, 10_000), frame_id='LIDAR_TOP')
    labels = client.frame(cloud, many, timeout=60)
    _assert_answers_boxes(labels, many)
    statuses = {o.status for o in labels.objects}
    assert ObjectStatus.OK in statuses and ObjectStatus.NO_POINTS in statuses
    before = client.counters()['frames_skipped_too_many_boxes']
    client.send(cloud, Boxes.from_yaw(np.zeros((10_001, 3)), np.ones((10_001, 3)), np.zeros(10_001)))
    client.wait_counter('frames_skipped_too_many_boxes', before + 1)
    _assert_answers_boxes(client.frame(cloud, boxes), boxes)


def test_markers_published_while_subscribed(client, sample):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import Marker, MarkerArray

    points, boxes, _ = sample
    got = []
    sub = client.node.create_subscription(MarkerArray, '/blendclip/markers', got.append,
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        assert client.spin_until(lambda: client.node.count_publishers('/blendclip/markers') > 0, 10)
        client.spin_until(lambda: False, 0.5)  # let the node see the new subscriber
        labels = client.frame(sample_cloud(points), boxes)

        def of_this_frame():
            return [m for m in got if m.markers[0].header.stamp == labels.header.stamp]

        assert client.spin_until(of_this_frame, 10)
        markers = of_this_frame()[0].markers
        assert markers[0].action == Marker.DELETEALL
        drawn = [o for o in labels.objects if o.status != ObjectStatus.INVALID_BOX]
        assert len(markers) == 1 + 2 * len(drawn)
        texts = [m.text for m in markers if m.type == Marker.TEXT_VIEW_FACING]
        assert sum(t.startswith(o.label) for t, o in zip(texts, drawn) if o.status == ObjectStatus.OK) > 0
    finally:
        client.node.destroy_subscription(sub)
