"""The node's counters, latency windows and throttled warnings, and its /diagnostics message.

`NodeStats` is all the bookkeeping the node does per frame and per input. The status carries every
counter and the p50/p99 of each timing window as key/value strings, so any diagnostics tool
(rqt_runtime_monitor, diagnostic_aggregator) shows them and tests and benchmarks read them back with
`parse_status_values`. Building the message needs no rclpy.init.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STATUS_SUFFIX = 'labelling'
WARN_PERIOD_S = 5.0  # per-frame warnings are throttled to one per this many seconds per kind

# Latency windows reported on /diagnostics (milliseconds):
WINDOWS = (
    'processing',  # worker: frame taken -> labels (and markers) published
    'model',  # encoder + classifier inside label_frame
    'ros_overhead',  # processing - model: conversion, cropping, message building, publishing
    'convert',  # messages -> numpy (cloud view + copy of finite xyz, boxes), frame transform
    'crop',  # points of every box (blendclip_core.preprocess, inside label_frame)
    'build',  # the LabelledObjectArray's bytes (CDR) from the predictions
    'publish',  # publish() calls (and marker building when someone subscribes)
    'queue_wait',  # pair complete -> worker starts it
    'stamp_to_publish',  # header stamp -> labels published, node clock (needs synced clocks)
)

# Counters always reported (0 until something happens), so monitors and tests can rely on the keys.
COUNTERS = (
    'clouds_received', 'boxes_received', 'frames_published', 'frames_failed', 'frames_skipped_too_many_boxes',
    'frames_skipped_frame_mismatch', 'frames_skipped_boxes_malformed', 'clouds_malformed', 'clouds_empty',
    'points_nonfinite', 'boxes_total', 'boxes_malformed', 'objects_labelled', 'objects_no_points',
    'objects_invalid_box', 'objects_below_threshold', 'parameters_rejected', 'vocabulary_updates',
    'vocabulary_update_failures', 'vocabulary_updates_superseded', 'callbacks_failed',
)


class LatencyWindow:
    """The last `size` samples of one timing, in milliseconds (thread-safe).

    A preallocated numpy ring and np.partition: the diagnostics timer reads ~10 windows on the executor
    thread while the worker waits for the GIL, and a deque + np.percentile took ~2 ms for 2,400 samples
    each; this takes ~0.15 ms (same values: linear interpolation, as np.percentile's default).
    """

    def __init__(self, size: int = 1000) -> None:
        self._ring = np.zeros(max(1, int(size)), dtype=np.float64)
        self._count = 0  # samples added since the last clear (the ring holds the last len(self) of them)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        if math.isfinite(value_ms):
            with self._lock:
                self._ring[self._count % len(self._ring)] = value_ms
                self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._ring))

    def percentiles(self, qs=(50, 99)) -> dict[int, float]:
        with self._lock:
            values = self._ring[:len(self)].copy()
        return percentiles(values, qs)

    def clear(self) -> None:
        with self._lock:
            self._count = 0


def percentiles(values: np.ndarray, qs=(50, 99)) -> dict[int, float]:
    """np.percentile(values, qs) (linear interpolation) through one np.partition; NaN when empty."""
    n = len(values)
    if not n:
        return {q: float('nan') for q in qs}
    pos = [q / 100 * (n - 1) for q in qs]
    low = [min(int(p), n - 1) for p in pos]
    high = [min(i + 1, n - 1) for i in low]
    part = np.partition(values, sorted(set(low + high)))
    return {q: float(part[i] + (part[j] - part[i]) * (p - i)) for q, p, i, j in zip(qs, pos, low, high)}


class NodeStats:
    """Counters (for the life of the process) and latency windows (one activation) of the node."""

    def __init__(self, window_size: int = 1000) -> None:
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.windows = {name: LatencyWindow(window_size) for name in WINDOWS}

    def resize_windows(self, size: int) -> None:
        self.windows = {name: LatencyWindow(size) for name in WINDOWS}

    def clear_windows(self) -> None:
        for window in self.windows.values():
            window.clear()

    def add_counts(self, counts: Mapping[str, int]) -> None:
        for key, n in counts.items():
            self.counters[key] += n

    def worker_failed(self, what: str) -> None:
        """A frame (or a vocabulary swap) raised on the frame worker."""
        counter = {'frame': 'frames_failed', 'vocabulary swap': 'vocabulary_update_failures'}.get(what)
        if counter:
            self.counters[counter] += 1

    def frame_published(self, outcome: Any, t_start: float, t_built: float, t_end: float,
                        stamp_to_publish_ms: float) -> None:
        """One frame's timings (perf_counter seconds: worker start, labels built, published)."""
        self.counters['frames_published'] += 1
        w, model_ms = self.windows, outcome.model_ms
        w['processing'].add((t_end - t_start) * 1e3)
        w['model'].add(model_ms)
        w['ros_overhead'].add((t_end - t_start) * 1e3 - model_ms)
        w['publish'].add((t_end - t_built) * 1e3)
        for name in ('convert', 'crop', 'build'):
            w[name].add(outcome.timings[f'{name}_ms'])
        w['stamp_to_publish'].add(stamp_to_publish_ms)

    def report(self, sync: Any, worker: Any) -> dict[str, int]:
        """Every counter, the synchroniser's (`sync_`) and the worker's (`worker_`), and frames_dropped."""
        counters = dict(self.counters)
        if sync is not None:
            for k, v in sync.counters.as_dict().items():
                counters[f'sync_{k}'] = v
        for k, v in worker.counters.as_dict().items():
            counters[f'worker_{k}'] = v
        # A frame is a cloud: it was never paired (stale, too old, evicted; not the ones still waiting),
        # or paired and then replaced while the worker was busy, skipped, or failed.
        pending = sync.pending()['cloud'] if sync is not None else 0
        unpaired = counters['clouds_received'] - counters.get('sync_paired', 0) - pending
        counters['frames_dropped'] = (
            max(unpaired, 0) + counters.get('worker_dropped_busy', 0) + counters.get('frames_failed', 0)
            + sum(v for k, v in counters.items() if k.startswith('frames_skipped_')))
        return counters


class WarnThrottle:
    """`warn(kind, message)` logs at most one message per kind every `period_s` seconds."""

    def __init__(self, log: Callable[[str], Any], period_s: float = WARN_PERIOD_S) -> None:
        self._log, self._period = log, period_s
        self._last: dict[str, float] = {}

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) >= self._period:
            self._last[kind] = now
            self._log(message)


def model_values(model: Any, last_error: str, scheduling: str, vocabulary_pending: bool) -> dict[str, str]:
    """The status's values about the model and the node's state (model None: not configured)."""
    return {'vocabulary_version': model.vocabulary_version if model else '',
            'vocabulary_size': str(len(model.labels)) if model else '0', 'model': model.name if model else '',
            'last_error': last_error, 'scheduling': scheduling,
            'vocabulary_pending': str(int(vocabulary_pending))}


def status_name(node_name: str) -> str:
    return f'{node_name}: {STATUS_SUFFIX}'


def build_diagnostics(node_name: str, hardware_id: str, stamp, state: str, message: str,
                      counters: Mapping[str, int], windows: Mapping[str, LatencyWindow],
                      extra: Mapping[str, str] | None = None, level: bytes | None = None) -> DiagnosticArray:
    """One DiagnosticStatus with counters, `<window>_ms_p50/_p99` values and `state`."""
    values = [KeyValue(key='state', value=state)]
    values += [KeyValue(key=k, value=str(int(v))) for k, v in sorted(counters.items())]
    for name, window in sorted(windows.items()):
        pct = window.percentiles()
        values.append(KeyValue(key=f'{name}_ms_p50', value=f'{pct[50]:.3f}'))
        values.append(KeyValue(key=f'{name}_ms_p99', value=f'{pct[99]:.3f}'))
        values.append(KeyValue(key=f'{name}_samples', value=str(len(window))))
    values += [KeyValue(key=k, value=str(v)) for k, v in (extra or {}).items()]
    if level is None:
        level = DiagnosticStatus.OK if state == 'active' else DiagnosticStatus.WARN
    status = DiagnosticStatus(level=level, name=status_name(node_name), message=message,
                              hardware_id=hardware_id, values=values)
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def parse_status_values(status: DiagnosticStatus) -> dict[str, float | str]:
    """KeyValue strings back to numbers where they are numbers (for tests and benchmarks)."""
    out: dict[str, float | str] = {}
    for kv in status.values:
        try:
            out[kv.key] = float(kv.value)
        except ValueError:
            out[kv.key] = kv.value
    return out
