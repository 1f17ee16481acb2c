"""LatestOnlyWorker: depth-1 drop-oldest hand-off, control tasks between frames, errors contained."""

import os
import threading
import time

import pytest

from blendclip_ros.node.worker import LatestOnlyWorker


def wait_idle(worker: LatestOnlyWorker, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not worker.idle():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_keeps_only_newest_pending_item_and_counts_drops():
    gate, started, seen = threading.Event(), threading.Event(), []

    def process(item):
        started.set()
        gate.wait(5)
        seen.append(item)

    w = LatestOnlyWorker(process)
    w.start()
    try:
        assert w.submit(0)
        assert started.wait(5)  # item 0 is now blocked inside process()
        assert not w.idle()
        assert w.submit(1)  # 0 was taken by the thread: 1 waits
        assert not w.submit(2)  # replaces 1
        assert not w.submit(3)  # replaces 2
        gate.set()
        assert wait_idle(w, 5)
    finally:
        assert w.stop()
    assert seen == [0, 3]
    assert w.counters.dropped_busy == 2 and w.counters.processed == 2 and w.counters.submitted == 4


def test_tasks_run_before_next_item_and_errors_do_not_stop_worker():
    order, errors = [], []

    def process(item):
        if item == 'bad':
            raise RuntimeError('boom')
        order.append(item)

    w = LatestOnlyWorker(process, on_error=lambda what, exc: errors.append((what, str(exc))))
    w.start()
    try:
        w.submit('bad')
        assert wait_idle(w, 5)
        w.run_task('t', lambda: order.append('task'))
        w.run_task('broken', lambda: 1 / 0)
        w.submit('good')
        assert wait_idle(w, 5)
    finally:
        w.stop()
    assert order == ['task', 'good']
    assert errors[0] == ('frame', 'boom') and errors[1][0] == 'broken'
    assert w.counters.failed == 1 and w.counters.tasks_failed == 1 and w.counters.tasks_run == 1


def test_stop_drops_pending_and_is_restartable():
    w = LatestOnlyWorker(lambda item: None)
    assert w.stop()  # never started
    w.start()
    assert w.running
    assert w.stop() and not w.running
    w.start()
    w.submit(1)
    assert wait_idle(w, 5)
    w.stop()
    assert w.counters.processed == 1


def _policy_of_worker(w: LatestOnlyWorker) -> int:
    return os.sched_getscheduler(w._thread.native_id)


@pytest.mark.skipif(not hasattr(os, 'sched_getscheduler'), reason='Linux scheduling API')
def test_realtime_priority_applies_to_the_worker_thread_only_or_says_why_not():
    seen = []
    w = LatestOnlyWorker(seen.append)
    w.start(realtime_priority=5)
    try:
        if w.realtime_error:  # no CAP_SYS_NICE here: ordinary priority, with a reason to act on
            assert 'CAP_SYS_NICE' in w.realtime_error
            assert _policy_of_worker(w) == os.SCHED_OTHER
        else:
            assert _policy_of_worker(w) == os.SCHED_FIFO
            assert os.sched_getparam(w._thread.native_id).sched_priority == 5
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller (the executor) is untouched
        w.submit('frame')
        assert wait_idle(w, 5) and seen == ['frame']
    finally:
        assert w.stop()


def test_a_refused_priority_leaves_the_worker_running():
    seen = []
    w = LatestOnlyWorker(seen.append)
    w.start(realtime_priority=1000)  # outside every policy's range: refused whatever the privileges
    try:
        assert w.realtime_error
        w.submit('frame')
        assert wait_idle(w, 5) and seen == ['frame']
    finally:
        assert w.stop()
    w.start()  # a restart without a priority clears the old reason
    assert w.realtime_error == ''
    w.stop()
