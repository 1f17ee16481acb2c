"""The lifecycle node in this process: a failing configure is reported, not raised."""

import pytest
import rclpy
from lifecycle_msgs.msg import State
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from blendclip_ros.node.lifecycle_node import BlendClipNode


def test_configure_with_missing_checkpoint_fails_cleanly_and_reports(tmp_path):
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=['--ros-args', '-p', f'checkpoint:={tmp_path / "missing.pt"}',
                                  '-p', 'device:=cpu'])
    try:
        node = BlendClipNode('blendclip_inprocess', context=ctx)
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
        assert 'missing.pt' in node.last_error and node.model is None and not node.worker.running
        published = []
        node._diag_pub.publish = published.append  # capture what the timer would send
        node.publish_diagnostics()
        status = published[0].status[0]
        assert status.level == status.ERROR and 'missing.pt' in status.message
        # configure-time values may change while unconfigured; dynamic ones are validated
        assert node.set_parameters([Parameter('sync_slop', value=0.05)])[0].successful
        bad = node.set_parameters([Parameter('cloud_topic', value='no spaces please')])[0]
        assert not bad.successful and 'cloud_topic' in bad.reason
        bad = node.set_parameters([Parameter('vocabulary', value=['car', 'car'])])[0]
        assert not bad.successful and 'twice' in bad.reason
        node.shutdown_quietly()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_vocabulary_is_checked_like_the_classifier_checks_it():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    try:
        node = BlendClipNode('blendclip_vocab_check', context=ctx)
        # equal once whitespace is normalised: the classifier would refuse it later, so refuse it now
        bad = node.set_parameters([Parameter('vocabulary', value=['traffic  cone', 'traffic cone'])])[0]
        assert not bad.successful and 'twice' in bad.reason
        bad = node.set_parameters([Parameter('prompt_templates', value=['a {}', 'a {}'])])[0]
        assert not bad.successful and 'unique' in bad.reason
        assert node.set_parameters([Parameter('vocabulary', value=['kick scooter'])])[0].successful
        assert node.get_parameter('vocabulary').value == ['kick scooter']
        node.shutdown_quietly()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_reconfigure_to_priority_0_leaves_no_thread_real_time(tiny_checkpoint):
    """configure at priority 5, cleanup, configure at 0: the new worker thread must not inherit the
    executor thread's old real-time policy (a thread starts with its creator's policy)."""
    import os

    from blendclip_ros.node.worker import set_ordinary

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=['--ros-args', '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu',
                                  '-p', 'realtime_priority:=5'])
    try:
        node = BlendClipNode('blendclip_realtime', context=ctx)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        if node.worker.realtime_error:
            pytest.skip(f'SCHED_FIFO not allowed here: {node.worker.realtime_error}')
        assert os.sched_getscheduler(node.worker._thread.native_id) == os.SCHED_FIFO
        assert node._scheduling() == 'SCHED_FIFO 5'
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.set_parameters([Parameter('realtime_priority', value=0)])[0].successful
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert os.sched_getscheduler(node.worker._thread.native_id) == os.SCHED_OTHER
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this (the executor's) thread too
        assert node._scheduling() == 'ordinary'
        node.shutdown_quietly()
        node.destroy_node()
    finally:
        set_ordinary()  # configure ran on this thread
        rclpy.shutdown(context=ctx)


def test_every_rejected_parameter_change_counts_once():
    """rclpy refuses read-only, out-of-range, wrongly typed and undeclared values before the node's own
    callback runs; each must count in parameters_rejected exactly once, like the callback's own refusals."""
    from rclpy.exceptions import ParameterNotDeclaredException

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    try:
        node = BlendClipNode('blendclip_rejections', context=ctx)
        rejected = lambda: node.counters['parameters_rejected']  # noqa: E731
        refused = [Parameter('device', value='cuda'),  # read-only (rclpy)
                   Parameter('top_k', value=0),  # out of range (rclpy)
                   Parameter('top_k', value='five'),  # wrong type (rclpy)
                   Parameter('vocabulary', value=['car', 'Car']),  # ours
                   Parameter('prompt_templates', value=['no placeholder'])]  # ours
        for param in refused:
            assert not node.set_parameters([param])[0].successful, param.name
        assert rejected() == len(refused)
        results = node.set_parameters([Parameter('top_k', value=3), Parameter('min_points', value=-1)])
        assert [r.successful for r in results] == [True, False] and rejected() == len(refused) + 1
        both = [Parameter('top_k', value=2), Parameter('device', value='x')]
        assert not node.set_parameters_atomically(both).successful
        assert rejected() == len(refused) + 2
        with pytest.raises(ParameterNotDeclaredException):
            node.set_parameters([Parameter('no_such_parameter', value=1)])
        assert rejected() == len(refused) + 3
        assert node.set_parameters([Parameter('score_threshold', value=0.5)])[0].successful
        assert rejected() == len(refused) + 3  # accepted ones do not count
        node.shutdown_quietly()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
