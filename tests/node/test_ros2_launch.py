"""Real `ros2 launch blendclip blendclip.launch.py` from the installed prefix (`make prefix`: this package
installed as colcon would, launch/launch_ros/ros2cli from ../shared/upstream), driven by the real
`ros2 param`, `ros2 node`, `ros2 lifecycle` and `ros2 topic` verbs, and stopped with SIGINT.

One launch serves the module (torch + the text model take seconds to start); tests run in file order
and the last one stops it. Topics are remapped by launch arguments, the parameters come from a
params file passed as `params_file:=`.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import rclpy
import yaml
from node_harness import TEST_VOCABULARY, NodeClient, load_sample, sample_cloud, write_params
from upstream import installed_prefix, kill_launch, prefix_env, require_rosidl_runtime_py, ros2

from blendclip_core.pipeline import PipelineConfig

START_TIMEOUT = 120.0  # torch + MiniLM import on a busy 2-core machine
TOPICS = ('/vehicle/lidar/top', '/perception/boxes_3d', '/perception/open_vocab')
NODE = '/blendclip'


@pytest.fixture(scope='module')
def launched(tiny_checkpoint, tmp_path_factory):
    """`ros2 launch` in its own process group; yields (process, env, log path)."""
    prefix = installed_prefix()
    tmp = tmp_path_factory.mktemp('ros2_launch')
    params = write_params(tmp / 'params.yaml', tiny_checkpoint, score_threshold=0.01)
    env = prefix_env(prefix)
    log_path = tmp / 'launch.log'
    cmd = ['ros2', 'launch', 'blendclip', 'blendclip.launch.py', f'params_file:={params}', 'device:=cpu',
           f'cloud_topic:={TOPICS[0]}', f'boxes_topic:={TOPICS[1]}', f'labels_topic:={TOPICS[2]}']
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, env, log_path
    finally:
        if proc.poll() is None:  # the SIGINT test did not run or failed: do not leave processes behind
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        kill_launch(proc)  # nothing of the group outlives the module, the node included
        print(log_path.read_text()[-3000:])


@pytest.fixture(scope='module')
def client(launched):
    proc, _, log_path = launched
    context = rclpy.Context()
    rclpy.init(context=context)
    c = NodeClient(context, topics=TOPICS)
    try:
        if not c.wait_active(START_TIMEOUT):
            pytest.fail(f'node did not become active (launch alive={proc.poll() is None}):\n'
                        f'{log_path.read_text()[-3000:]}')
        yield c
    finally:
        c.close()
        rclpy.shutdown(context=context)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f'{result.args}: rc {result.returncode}\n{result.stdout}\n{result.stderr}'
    return result.stdout


def _graph(env, *args: str, attempts: int = 3) -> str:
    """A verb that reads the ROS graph: without the daemon a fresh `ros2` process may not have
    discovered the node yet, so a failed look-up is repeated (the last failure is reported)."""
    for _ in range(attempts - 1):
        result = ros2(env, *args)
        if result.returncode == 0:
            return result.stdout
        time.sleep(1.0)
    return _ok(ros2(env, *args))


def test_launched_node_labels_the_real_sweep_on_remapped_topics(launched, client):
    proc, _, _ = launched
    points, boxes, ann = load_sample()
    labels = client.frame(sample_cloud(points), boxes, timeout=60.0)
    assert labels is not None, 'no labels for the real nuScenes sweep'
    assert [o.id for o in labels.objects] == list(boxes.ids)  # one object per box, in order
    labelled = [o for o in labels.objects if o.status == 0]
    assert labelled and all(o.label in TEST_VOCABULARY for o in labelled)
    assert labels.model == 'tiny-node-test'  # the params file's checkpoint, not the packaged default
    assert client.vocabularies[-1].labels == TEST_VOCABULARY
    # the points the encoder saw: each box's recount, 0 under the shipped min_points (NO_POINTS)
    min_points = PipelineConfig().min_points
    seen = [n if n >= min_points else 0 for n in (o['points_in_box_recount'] for o in ann['objects'])]
    assert [o.num_points for o in labels.objects] == seen
    assert proc.poll() is None


def test_ros2_node_info_shows_the_launch_remappings(launched, client):
    _, env, _ = launched
    info = _graph(env, 'node', 'info', NODE, '--no-daemon', '--spin-time', '5')
    subscribers = info.split('Subscribers:')[1].split('Publishers:')[0]
    publishers = info.split('Publishers:')[1].split('Service Servers:')[0]
    assert f'{TOPICS[0]}: sensor_msgs/msg/PointCloud2' in subscribers
    assert f'{TOPICS[1]}: blendclip/msg/DetectedBoxArray' in subscribers
    assert f'{TOPICS[2]}: blendclip/msg/LabelledObjectArray' in publishers
    # (the prefix has vision_msgs and autoware_perception_msgs: /detections_3d and /detected_objects stay)
    assert '/lidar/points' not in info and '/detections:' not in subscribers


def _param(env, verb: str, *args: str) -> subprocess.CompletedProcess:
    """`ros2 param <verb> /blendclip ...`, waiting up to 15 s for the node to be discovered."""
    return ros2(env, 'param', verb, NODE, *args, '--no-daemon', '--timeout', '15')


def test_ros2_param_get_set_describe(launched, client):
    _, env, _ = launched
    assert 'Double value is: 0.01' in _ok(_param(env, 'get', 'score_threshold'))  # from params_file:=
    vocabulary = _ok(_param(env, 'get', 'vocabulary'))
    assert all(f"'{label}'" in vocabulary for label in TEST_VOCABULARY)
    assert 'Set parameter successful' in _ok(_param(env, 'set', 'score_threshold', '0.25'))
    assert 'Double value is: 0.25' in _ok(_param(env, 'get', 'score_threshold'))
    rejected = _param(env, 'set', 'score_threshold', '1.5')  # outside the declared range
    assert 'Setting parameter failed' in rejected.stderr, rejected
    described = _ok(_param(env, 'describe', 'checkpoint'))
    assert 'Type: string' in described and 'Read only: true' in described, described
    read_only = _param(env, 'set', 'device', 'cuda')
    assert 'Setting parameter failed' in read_only.stderr, read_only
    assert 'Double value is: 0.25' in _ok(_param(env, 'get', 'score_threshold'))
    assert 'Set parameter successful' in _ok(_param(env, 'set', 'score_threshold', '0.01'))


def test_ros2_lifecycle_get_set(launched, client):
    require_rosidl_runtime_py()
    _, env, _ = launched
    assert _ok(ros2(env, 'lifecycle', 'get', NODE, '--no-daemon')).startswith('active')
    assert 'Transitioning successful' in _ok(ros2(env, 'lifecycle', 'set', NODE, 'deactivate', '--no-daemon'))
    assert _ok(ros2(env, 'lifecycle', 'get', NODE, '--no-daemon')).startswith('inactive')
    points, boxes, _ = load_sample()
    assert client.frame(sample_cloud(points), boxes, timeout=5.0) is None  # inactive: no labels
    assert 'Transitioning successful' in _ok(ros2(env, 'lifecycle', 'set', NODE, 'activate', '--no-daemon'))
    assert client.spin_until(lambda: client.cloud_pub.get_subscription_count() > 0, 30)
    assert client.frame(sample_cloud(points), boxes, timeout=60.0) is not None


def test_ros2_topic_list_and_echo(launched, client):
    require_rosidl_runtime_py()
    _, env, _ = launched
    topics = _graph(env, 'topic', 'list', '-t', '--no-daemon', '--spin-time', '5').split('\n')
    for topic, kind in zip(TOPICS, ('sensor_msgs/msg/PointCloud2', 'blendclip/msg/DetectedBoxArray',
                                    'blendclip/msg/LabelledObjectArray')):
        assert f'{topic} [{kind}]' in topics
    echo = subprocess.Popen(['ros2', 'topic', 'echo', '--once', '--qos-reliability', 'reliable', TOPICS[2]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    points, boxes, _ = load_sample()
    deadline = time.monotonic() + 60
    while echo.poll() is None and time.monotonic() < deadline:
        client.frame(sample_cloud(points), boxes, timeout=5.0)
    out, err = echo.communicate(timeout=10)
    assert echo.returncode == 0, err
    message = yaml.safe_load(out.split('\n---')[0])
    assert [o['id'] for o in message['objects']] == list(boxes.ids)


def test_sigint_stops_launch_and_node_cleanly(launched, client):
    proc, _, log_path = launched
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends to `ros2 launch`
    assert proc.wait(30) == 0, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert '[blendclip_node-1]: process has finished cleanly' in log, log[-3000:]
    assert client.spin_until(lambda: client.cloud_pub.get_subscription_count() == 0, 10)
