"""launch/replay_nuscenes.launch.py run for real: its two Nodes (blendclip-replay and the labelling
node) started by the launch runner with the launch file's --ros-args, on a bag converted from the real
nuScenes sweep. The replayed frame comes back labelled, one object per box of the bag."""

from __future__ import annotations

import subprocess
import time

import pytest
import rclpy
from node_harness import REPO, NodeClient, child_env, plan_launch, write_params
from rosbags.highlevel import AnyReader

from blendclip_ros.conversions.stamps import stamp_to_ns

TIMEOUT_S = 120.0


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory):
    from blendclip_ros.bag import nuscenes2bag

    out = tmp_path_factory.mktemp('replay') / 'sample_bag'
    assert nuscenes2bag.main(['--out', str(out), '--sample-dir', str(REPO / 'data' / 'nuscenes_sample'),
                              '--no-progress']) == 0
    return out


def test_replay_launch_labels_the_bag(sample_bag, tiny_checkpoint, tmp_path):
    from blendclip_ros import launch_runner

    with AnyReader([sample_bag]) as reader:
        conns = [c for c in reader.connections if c.topic == '/detections']
        boxes_in = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    plan = plan_launch('replay_nuscenes.launch.py', bag=str(sample_bag), device='cpu',
                       params_file=str(write_params(tmp_path / 'params.yaml', tiny_checkpoint)))
    assert [n.executable for n in plan.nodes] == ['blendclip_node', 'blendclip-replay']
    context = rclpy.Context()
    rclpy.init(context=context)
    client = NodeClient(context)
    log_path = tmp_path / 'launch.log'
    with open(log_path, 'wb') as log:
        procs = launch_runner.start(plan, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and len(client.labels) < len(boxes_in):
            client.executor.spin_once(timeout_sec=0.1)
        replay_rc = procs[1].wait(30)
    finally:
        codes = launch_runner.stop(procs)
        client.close()
        rclpy.shutdown(context=context)
    log = log_path.read_text()[-3000:]
    assert replay_rc == 0, log
    assert codes[0] == 0, log
    assert len(client.labels) == len(boxes_in), log
    for (stamp, labels), boxes in zip(sorted(client.labels.items()), boxes_in):
        assert stamp == stamp_to_ns(boxes.header.stamp)
        assert [o.id for o in labels.objects] == [b.id for b in boxes.boxes]
        assert sum(o.status == 0 for o in labels.objects) > 0
