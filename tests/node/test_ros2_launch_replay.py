"""Real `ros2 launch blendclip replay_nuscenes.launch.py` from the installed prefix: blendclip-replay and
the labelling node, both started by launch_ros, on a bag converted from the real nuScenes sweep. The
replayed frame comes back labelled, one object per box of the bag; the replay ends by itself and
SIGINT stops the node cleanly."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import rclpy
from node_harness import REPO, NodeClient, write_params
from rosbags.highlevel import AnyReader
from upstream import installed_prefix, kill_launch, prefix_env

from blendclip_ros.conversions.stamps import stamp_to_ns

TIMEOUT_S = 150.0


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory):
    from blendclip_ros.bag import nuscenes2bag

    out = tmp_path_factory.mktemp('replay') / 'sample_bag'
    assert nuscenes2bag.main(['--out', str(out), '--sample-dir', str(REPO / 'data' / 'nuscenes_sample'),
                              '--no-progress']) == 0
    return out


def _boxes_in(bag):
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == '/detections']
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]


def test_replay_launch_labels_the_bag_and_stops_on_sigint(sample_bag, tiny_checkpoint, tmp_path):
    env = prefix_env(installed_prefix())
    boxes_in = _boxes_in(sample_bag)
    params = write_params(tmp_path / 'params.yaml', tiny_checkpoint)
    context = rclpy.Context()
    rclpy.init(context=context)
    client = NodeClient(context)
    log_path = tmp_path / 'launch.log'
    cmd = ['ros2', 'launch', 'blendclip', 'replay_nuscenes.launch.py', f'bag:={sample_bag}', 'device:=cpu',
           f'params_file:={params}']
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and len(client.labels) < len(boxes_in):
            client.executor.spin_once(timeout_sec=0.1)
        replay_done = client.spin_until(lambda: 'blendclip-replay-2]: process has finished cleanly'
                                        in log_path.read_text(), 30)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
    finally:
        kill_launch(proc)  # after a clean stop only reaps; else the node and replay must not outlive the test
        client.close()
        rclpy.shutdown(context=context)
    log = log_path.read_text()
    assert replay_done, log[-3000:]
    assert rc == 0 and 'blendclip_node-1]: process has finished cleanly' in log, log[-3000:]
    assert len(client.labels) == len(boxes_in) >= 1, log[-3000:]
    for (stamp, labels), boxes in zip(sorted(client.labels.items()), boxes_in):
        assert stamp == stamp_to_ns(boxes.header.stamp)
        assert [o.id for o in labels.objects] == [b.id for b in boxes.boxes]
        assert sum(o.status == 0 for o in labels.objects) > 0
