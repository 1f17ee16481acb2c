"""Depth-1, drop-oldest hand-off from the executor to one processing thread.

The executor thread must never wait for the model (parameter services, lifecycle transitions and the
sensor subscriptions share it), and a late frame is worth less than the newest one: `submit` replaces
a frame still waiting, so at most one frame is queued and stale work is never started. Control tasks
(re-embedding the vocabulary after a parameter change) run on the same thread between frames, so
the model is never touched from two threads and a change costs at most the one frame it overlaps.
(Pattern: camera_calibration's ConsumerThread.)
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LOG = logging.getLogger(__name__)


@dataclass
class WorkerCounters:
    submitted: int = 0
    processed: int = 0
    dropped_busy: int = 0  # replaced by a newer frame before the worker got to it
    failed: int = 0  # the process function raised; the worker carried on
    tasks_run: int = 0
    tasks_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def set_realtime(priority: int) -> str:
    """Put the calling thread under SCHED_FIFO at `priority` (1-99); '' on success, else the reason.

    Linux schedules each thread on its own: only the calling thread is raised (threads it starts later
    inherit the policy). Needs CAP_SYS_NICE or an rtprio limit (`ulimit -r`, limits.conf) of at least
    `priority`, and real-time CPU time for the process's cgroup: containers and VMs often give it none
    (cpu.rt_runtime_us 0), and then even root is refused. Refused, the thread keeps its ordinary
    priority and the reason is reported.
    """
    if not hasattr(os, 'sched_setscheduler'):
        return 'this platform has no sched_setscheduler'
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return (f'{exc.strerror} (needs CAP_SYS_NICE or `ulimit -r` >= {priority}, and real-time CPU '
                    'time for its cgroup)')
        return f'SCHED_FIFO priority {priority}: {exc.strerror}'
    return ''


def set_ordinary() -> str:
    """Back to ordinary scheduling (SCHED_OTHER) for the calling thread; '' on success, else the reason."""
    if not hasattr(os, 'sched_setscheduler'):
        return ''
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:
        return f'SCHED_OTHER: {exc.strerror}'
    return ''


def start_scheduled(worker: LatestOnlyWorker, priority: int, log: Any = _LOG) -> str:
    """Set the calling (executor) thread at `priority` (SCHED_FIFO; 0 = ordinary), then start `worker`
    at the same priority; '' when both applied, else why not (logged as a warning to `log`).

    Both Python threads, because they share the GIL: an ordinary executor thread preempted while it
    holds the GIL would stall a real-time worker just the same (priority inversion). Executor first:
    a new thread starts with its creator's policy, so a worker started from an executor raised by an
    earlier configure would stay real-time at priority 0.
    """
    executor_error = set_realtime(priority) if priority else set_ordinary()
    worker.start(priority)
    error = worker.realtime_error or executor_error
    if error:
        log.warning(f'realtime_priority {priority} not applied, the node runs at ordinary priority: {error}')
    elif priority:
        log.info(f'executor and worker threads under SCHED_FIFO priority {priority}')
    return error


def describe_scheduling(priority: int, error: str) -> str:
    """What /diagnostics says under 'scheduling'."""
    if not priority:
        return 'ordinary'
    if error:
        return f'ordinary (SCHED_FIFO {priority} refused: {error})'
    return f'SCHED_FIFO {priority}'


class LatestOnlyWorker:
    """Runs `process(item)` on its own thread for the newest submitted item only."""

    def __init__(self, process: Callable[[Any], None], name: str = 'blendclip-worker',
                 on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self._process = process
        self._on_error = on_error or (lambda what, exc: _LOG.exception('%s failed', what))
        self._name = name
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._tasks: deque[tuple[str, Callable[[], None]]] = deque()
        self._stop = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._scheduled = threading.Event()
        self.counters = WorkerCounters()
        self.realtime_error = ''  # why the requested real-time priority could not be set ('' = it was)

    def start(self, realtime_priority: int = 0) -> None:
        """Start the thread; realtime_priority 1-99 runs it under SCHED_FIFO (0 = ordinary scheduling).

        Returns once the thread has applied its priority, so `realtime_error` is then final.
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = False
        self.realtime_error = ''
        self._scheduled.clear()
        self._thread = threading.Thread(target=self._run, args=(realtime_priority,), name=self._name,
                                        daemon=True)
        self._thread.start()
        self._scheduled.wait()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the current item; drops a pending one. True if the thread ended in time."""
        with self._cond:
            self._stop = True
            if self._has_pending:
                self._pending, self._has_pending = None, False
                self.counters.dropped_busy += 1
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Any) -> bool:
        """Hand over the newest item. Returns False if it replaced one that was still waiting."""
        with self._cond:
            replaced = self._has_pending
            self.counters.submitted += 1
            if replaced:
                self.counters.dropped_busy += 1
            self._pending, self._has_pending = item, True
            self._cond.notify()
        return not replaced

    def run_task(self, name: str, task: Callable[[], None]) -> None:
        """Queue a control task; it runs before the next item, in submission order."""
        with self._cond:
            self._tasks.append((name, task))
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not (self._busy or self._has_pending or self._tasks)

    def _run(self, realtime_priority: int) -> None:
        if realtime_priority:
            self.realtime_error = set_realtime(realtime_priority)
        else:  # a thread starts with its creator's policy: one made by a real-time executor would keep it
            set_ordinary()
        self._scheduled.set()
        while True:
            with self._cond:
                while not (self._stop or self._has_pending or self._tasks):
                    self._cond.wait()
                if self._stop:
                    return
                if self._tasks:
                    name, task, item, is_task = *self._tasks.popleft(), None, True
                else:
                    name, task, item, is_task = 'frame', None, self._pending, False
                    self._pending, self._has_pending = None, False
                self._busy = True
            try:
                if is_task:
                    task()
                    self.counters.tasks_run += 1
                else:
                    self._process(item)
                    self.counters.processed += 1
            except Exception as exc:  # noqa: BLE001 - one bad frame or task must not stop the node
                if is_task:
                    self.counters.tasks_failed += 1
                else:
                    self.counters.failed += 1
                self._on_error(name, exc)
            finally:
                with self._cond:
                    self._busy = False
