"""The BlendCLIP labelling node: LiDAR cloud + 3D boxes in, open-vocabulary labels out.

Lifecycle (rclpy.lifecycle, same API in Humble, Jazzy and Kilted):
- configure: read parameters, load the point encoder and the text space, embed the vocabulary,
  create the (lifecycle) publishers and start the worker thread;
- activate: subscribe; publish the vocabulary (transient local);
- deactivate: unsubscribe, forget queued inputs;
- cleanup / shutdown: stop the worker, drop the model and free GPU memory.
Subscription callbacks only pair messages by stamp and hand the pair to the worker (depth 1,
drop-oldest); conversion, cropping, the model and publishing all run on the worker thread. Both inputs
arrive as bytes: the executor reads only their header stamp (O(1)); the worker decodes them. Bad input
is answered or skipped and counted, never raised: counters and latency percentiles go to /diagnostics.
A vocabulary change is embedded on a third thread while frames keep their old vocabulary; the worker
swaps the new one in between frames.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from blendclip.msg import DetectedBoxArray, LabelledObjectArray, Vocabulary
from blendclip_ros.conversions.cdr import cdr_stamp_ns, warm_vocabulary

from . import params as P
from . import runtime
from .diagnostics import LatencyWindow, build_diagnostics
from .sync import StampSynchronizer
from .worker import LatestOnlyWorker, set_ordinary, set_realtime

try:  # vision_msgs is optional (no wheel here); the node then accepts only our box arrays.
    from vision_msgs.msg import Detection3DArray
except ImportError:  # pragma: no cover - depends on the install
    Detection3DArray = None

NODE_NAME = 'blendclip'
WARN_PERIOD_S = 5.0  # per-frame warnings are throttled to one per this many seconds per kind

RELIABLE_OUT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
LATCHED_OUT = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
BOXES_IN = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class FrameJob:
    """One paired frame on its way to the worker."""

    cloud: Any  # serialised PointCloud2 (decoded on the worker)
    boxes: Any  # serialised DetectedBoxArray or a vision_msgs Detection3DArray
    received: float  # time.perf_counter() when the pair was complete
    boxes_stamp_ns: int = 0  # the box array's header stamp


class BlendClipNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        P.declare(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.state_label = 'unconfigured'
        self.last_error = ''
        self.params: P.NodeParams | None = None
        self.model: runtime.LoadedModel | None = None
        self.settings: runtime.FrameSettings | None = None
        self.transforms: dict = {}
        self.counters: Counter[str] = Counter(dict.fromkeys(runtime.COUNTERS, 0))
        self.windows = {name: LatencyWindow() for name in runtime.WINDOWS}
        self.sync: StampSynchronizer | None = None
        self.worker = LatestOnlyWorker(self._process, on_error=self._worker_error)
        self.vocabulary_worker: LatestOnlyWorker | None = None  # embeds changes off the labelling path
        self._vocabulary_requested = 0  # generation of the newest accepted vocabulary change
        self._vocabulary_applied = 0  # generation the model labels with
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self._last_warn: dict[str, float] = {}
        self._executor_realtime_error = ''
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = float(self.get_parameter('diagnostics_period').value)
        self._diag_timer = self.create_timer(period, self.publish_diagnostics)

    # ----------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - a bad path, value or topic fails the transition only
            self._release()
            self.params = None
            return self._failed('configure', exc)
        self.last_error = ''
        self.state_label = 'inactive'
        self.get_logger().info(f'configured: {self.model.describe()}, {len(self.params.vocabulary)} labels')
        return super().on_configure(state)

    def _failed(self, transition: str, exc: Exception) -> TransitionCallbackReturn:
        self.last_error = f'{transition} failed: {type(exc).__name__}: {exc}'
        self.get_logger().error(self.last_error)
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> None:
        params = P.read(self)
        self.transforms = P.parse_static_transforms(params.static_transforms)
        self.model = runtime.load_model(params)
        self.params = params
        self.settings = runtime.FrameSettings.from_params(params)
        self.windows = {name: LatencyWindow(params.latency_window) for name in runtime.WINDOWS}
        old_sync = self.sync
        self.sync = StampSynchronizer(params.sync_slop_ns, params.sync_queue_size, params.max_stamp_age_ns,
                                      max_future_ns=params.max_stamp_future_ns,
                                      jump_back_ns=params.stamp_jump_reset_ns)
        if old_sync is not None:  # counters cover the life of the process, like the node's own
            self.sync.counters = old_sync.counters
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(params.diagnostics_period, self.publish_diagnostics)
        self._pubs = {}  # filled one by one, so a failure half-way still releases what was made
        self._pubs['labels'] = self.create_lifecycle_publisher(
            LabelledObjectArray, params.labels_topic, RELIABLE_OUT, qos_overriding_options=_qos_opts())
        self._pubs['markers'] = self.create_lifecycle_publisher(
            MarkerArray, params.markers_topic, RELIABLE_OUT, qos_overriding_options=_qos_opts())
        self._pubs['vocabulary'] = self.create_lifecycle_publisher(
            Vocabulary, params.vocabulary_topic, LATCHED_OUT)
        # The model and its libraries are hundreds of thousands of long-lived objects: a full collection
        # that walks them all took ~360 ms (about once per 400 frames here, dropping frames). Frozen, they
        # are left out of every collection; _release unfreezes them.
        gc.collect()
        gc.freeze()
        self._vocabulary_applied = self._vocabulary_requested  # the model was built with the current one
        self.vocabulary_worker = LatestOnlyWorker(self._build_vocabulary, name='blendclip-vocabulary',
                                                  on_error=self._vocabulary_error)
        self.vocabulary_worker.start()  # ordinary priority whatever the executor's
        self._apply_realtime(params.realtime_priority)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._subscribe()
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: stay inactive, say why
            self._drop_subscriptions()
            return self._failed('activate', exc)
        result = super().on_activate(state)
        self.state_label = 'active'
        self._publish_vocabulary()
        return result

    def _subscribe(self) -> None:
        p = self.params
        self.sync.reset()
        for window in self.windows.values():  # latency percentiles describe this activation only
            window.clear()
        self._subs = []  # appended one by one: a failure half-way still drops what was made
        # Raw bytes: bytes that are no message reach us and are counted (a typed subscription's RMW drops
        # them unseen); the worker decodes them (boxes by conversions/cdr.py, not as ~6 objects per box).
        self._subs.append(self.create_subscription(
            PointCloud2, p.cloud_topic, self._guarded(self._on_cloud_raw), qos_profile_sensor_data,
            qos_overriding_options=_qos_opts(), raw=True))
        self._subs.append(self.create_subscription(
            DetectedBoxArray, p.boxes_topic, self._guarded(self._on_boxes_raw), BOXES_IN,
            qos_overriding_options=_qos_opts(), raw=True))
        if Detection3DArray is not None and p.subscribe_vision_msgs:
            self._subs.append(self.create_subscription(
                Detection3DArray, p.detections_topic, self._guarded(self._on_boxes), BOXES_IN,
                qos_overriding_options=_qos_opts()))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._drop_subscriptions()
        self.state_label = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state_label = 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._drop_subscriptions()
        self._release()
        self.state_label = 'finalized'
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._drop_subscriptions()
        self._release()
        self.state_label = 'unconfigured'
        return super().on_error(state)

    def autostart(self) -> bool:
        """configure + activate, as a lifecycle manager would. False (logged) if either fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def shutdown_quietly(self) -> None:
        """Process exit (the context may already be shut down): stop the worker, free the model."""
        try:
            self._drop_subscriptions()
            self._release()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            self.get_logger().debug(f'shutdown: {exc}')
        self.state_label = 'finalized'

    def _drop_subscriptions(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self.sync is not None:
            self.sync.reset()

    def _release(self) -> None:
        """Stop the workers, destroy publishers, free the model (and its GPU memory)."""
        self.worker.stop()
        if self.vocabulary_worker is not None:
            # An embedding in progress cannot be interrupted: its thread ends after it, and its result
            # is dropped (built for a model that is gone).
            self.vocabulary_worker.stop(timeout=1.0)
            self.vocabulary_worker = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self.model is not None:
            self.model.release()
        self.model = None
        gc.unfreeze()
        gc.collect()
        runtime.empty_device_cache()

    # ----------------------------------------------------------------------------- inputs
    def _guarded(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """An exception out of a subscription callback would end the executor's spin (the process):
        count it and warn instead. Nothing is expected to get here; this is the last line."""
        @functools.wraps(callback)
        def guarded(msg: Any) -> None:
            try:
                callback(msg)
            except Exception as exc:  # noqa: BLE001 - untrusted input must never stop the node
                self.counters['callbacks_failed'] += 1
                self._warn_throttled('callback', f'{callback.__name__} failed: {type(exc).__name__}: {exc}')
        return guarded

    def _on_cloud_raw(self, data: bytes) -> None:
        self.counters['clouds_received'] += 1
        stamp_ns = cdr_stamp_ns(data)
        if stamp_ns is None:  # too short or not CDR: no stamp to pair by
            self.counters['clouds_malformed'] += 1
            self.counters['clouds_malformed_cdr'] += 1
            self._warn_throttled('cloud_cdr', f'{self.params.cloud_topic}: {len(data)} bytes that are not a '
                                 'PointCloud2, skipped')
            return
        self._pair(self.sync.add_cloud(stamp_ns, data, self._now_ns()))

    def _on_boxes(self, msg: Any) -> None:
        self.counters['boxes_received'] += 1
        self._pair(self.sync.add_boxes(_stamp_ns(msg.header.stamp), msg, self._now_ns()))

    def _on_boxes_raw(self, data: bytes) -> None:
        self.counters['boxes_received'] += 1
        stamp_ns = cdr_stamp_ns(data)
        if stamp_ns is None:  # too short or not CDR; the rest is checked when the worker reads it
            self.counters['boxes_malformed'] += 1
            self._warn_throttled('boxes_malformed', f'{self.params.boxes_topic}: {len(data)} bytes that are '
                                 'not a DetectedBoxArray, skipped')
            return
        self._pair(self.sync.add_boxes(stamp_ns, data, self._now_ns()))

    def _pair(self, pair) -> None:
        if pair is not None:
            self.worker.submit(FrameJob(pair.cloud, pair.boxes, time.perf_counter(), pair.boxes_stamp_ns))

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # ----------------------------------------------------------------------------- worker side
    def _process(self, job: FrameJob) -> None:
        """Runs on the worker thread: one frame in, one LabelledObjectArray (and markers) out."""
        t_start = time.perf_counter()
        self.windows['queue_wait'].add((t_start - job.received) * 1e3)
        model, settings, pubs = self.model, self.settings, self._pubs
        if model is None or not pubs:
            return
        outcome = runtime.label_frame_msgs(job.cloud, job.boxes, model, settings, self.transforms)
        for key, n in outcome.counts.items():
            self.counters[key] += n
        if outcome.skip_reason:
            self.counters[f'frames_skipped_{outcome.skip_reason}'] += 1
            self._warn_throttled(outcome.skip_reason, outcome.message)
            return
        if outcome.message:
            self._warn_throttled(outcome.warn_kind, outcome.message)
        t_built = time.perf_counter()
        pubs['labels'].publish(outcome.labels_cdr)  # already serialised (conversions/cdr.py)
        if self.params.publish_markers and pubs['markers'].get_subscription_count() > 0:
            pubs['markers'].publish(runtime.markers_msg(outcome.labels))  # the message is made for these
        t_end = time.perf_counter()
        self.counters['frames_published'] += 1
        model_ms = outcome.model_ms
        self.windows['processing'].add((t_end - t_start) * 1e3)
        self.windows['model'].add(model_ms)
        self.windows['ros_overhead'].add((t_end - t_start) * 1e3 - model_ms)
        self.windows['publish'].add((t_end - t_built) * 1e3)
        for name in ('convert', 'crop', 'build'):
            self.windows[name].add(outcome.timings[f'{name}_ms'])
        self.windows['stamp_to_publish'].add((self._now_ns() - job.boxes_stamp_ns) / 1e6)

    def _worker_error(self, what: str, exc: BaseException) -> None:
        if what == 'frame':
            self.counters['frames_failed'] += 1
        elif what == 'vocabulary swap':
            self.counters['vocabulary_update_failures'] += 1
        self._warn_throttled(f'error_{what}', f'{what} failed: {type(exc).__name__}: {exc}')

    def _warn_throttled(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(kind, -1e9) >= WARN_PERIOD_S:
            self._last_warn[kind] = now
            self.get_logger().warning(message)

    # ----------------------------------------------------------------------------- parameters
    # rclpy refuses read-only, out-of-range, wrongly typed and undeclared values before our callback
    # runs, so rejections are counted here, where every path (service or in-process) ends: once each.
    def set_parameters(self, parameter_list):
        try:
            results = super().set_parameters(parameter_list)
        except Exception as exc:
            self._rejected(str(exc))
            raise
        for result in results:
            if not result.successful:
                self._rejected(result.reason)
        return results

    def set_parameters_atomically(self, parameter_list):
        try:
            result = super().set_parameters_atomically(parameter_list)
        except Exception as exc:
            self._rejected(str(exc))
            raise
        if not result.successful:
            self._rejected(result.reason)
        return result

    def _rejected(self, reason: str) -> None:
        self.counters['parameters_rejected'] += 1
        self._warn_throttled('parameters', f'parameter change rejected: {reason}')

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        updates = {}
        for param in parameters:
            name, value = param.name, param.value
            if name in P.DYNAMIC_NAMES:
                reason = P.validate_dynamic(name, value)
                if reason:
                    return self._reject(reason)
                updates[name] = tuple(value) if isinstance(value, (list, tuple)) else value
            elif name in P.CONFIGURE_NAMES:
                if self.state_label != 'unconfigured':
                    return self._reject(f'{name} is applied at configure: deactivate and clean up the node '
                                        'first (or restart it with the new value)')
                if name == 'static_transforms':
                    try:
                        P.parse_static_transforms(value or ())
                    except ValueError as exc:
                        return self._reject(str(exc))
                if name in P.TOPIC_NAMES and (reason := P.validate_topic(name, value)):
                    return self._reject(reason)
        if {'vocabulary', 'prompt_templates'} & updates.keys():
            reason = self._vocabulary_problem(updates)
            if reason:
                return self._reject(reason)
        if updates:
            self._apply_dynamic(updates)
        return SetParametersResult(successful=True)

    def _vocabulary_problem(self, updates: dict) -> str | None:
        """The classifier's own check of the new labels + templates (e.g. 'a  b' vs 'a b' collide)."""
        from blendclip_core.classifier import VocabularyError, validate_vocabulary

        current = self.params or P.NodeParams(
            vocabulary=tuple(self.get_parameter('vocabulary').value),
            prompt_templates=tuple(self.get_parameter('prompt_templates').value))
        try:
            validate_vocabulary(list(updates.get('vocabulary', current.vocabulary)),
                                list(updates.get('prompt_templates', current.prompt_templates)))
        except VocabularyError as exc:
            return str(exc)
        return None

    def _reject(self, reason: str) -> SetParametersResult:
        return SetParametersResult(successful=False, reason=reason)  # counted by set_parameters*

    def _apply_dynamic(self, updates: dict) -> None:
        if self.params is None:  # unconfigured: the values are read at configure
            return
        self.params = dataclasses.replace(self.params, **updates)
        self.settings = runtime.FrameSettings.from_params(self.params)
        if {'vocabulary', 'prompt_templates'} & updates.keys() and self.vocabulary_worker is not None:
            self._vocabulary_requested += 1
            request = (self._vocabulary_requested, self.model, self.params.vocabulary,
                       self.params.prompt_templates)
            if not self.vocabulary_worker.submit(request):  # replaced one that had not started
                self.counters['vocabulary_updates_superseded'] += 1

    def _build_vocabulary(self, request: tuple) -> None:
        """Vocabulary thread: embed (seconds for thousands of labels) while frames keep the old one."""
        generation, model, labels, templates = request
        vocab = model.build_vocabulary(labels, templates)
        if generation != self._vocabulary_requested or model is not self.model:
            self.counters['vocabulary_updates_superseded'] += 1  # a newer change (or model) came meanwhile
            return
        warm_vocabulary(vocab.labels)
        self.worker.run_task('vocabulary swap', lambda: self._swap_vocabulary(generation, model, vocab))

    def _swap_vocabulary(self, generation: int, model: runtime.LoadedModel, vocab: Any) -> None:
        """Worker thread, between frames: labels and embeddings change together for the next frame."""
        if model is not self.model or generation <= self._vocabulary_applied:
            self.counters['vocabulary_updates_superseded'] += 1
            return
        model.use_vocabulary(vocab)
        self._vocabulary_applied = generation
        self.counters['vocabulary_updates'] += 1
        self._publish_vocabulary()

    def _vocabulary_error(self, what: str, exc: BaseException) -> None:
        self.counters['vocabulary_update_failures'] += 1
        self._warn_throttled('vocabulary', f'vocabulary update failed, the old one stays: '
                             f'{type(exc).__name__}: {exc}')

    def _publish_vocabulary(self) -> None:
        pub, model = self._pubs.get('vocabulary'), self.model
        if pub is None or model is None:
            return
        msg = Vocabulary(version=model.vocabulary_version, labels=list(model.labels),
                         prompt_templates=list(model.templates), text_space=model.text_space)
        msg.header.stamp = self.get_clock().now().to_msg()
        pub.publish(msg)

    # ----------------------------------------------------------------------------- diagnostics
    def diagnostic_counters(self) -> dict[str, int]:
        counters = dict(self.counters)
        if self.sync is not None:
            for k, v in self.sync.counters.as_dict().items():
                counters[f'sync_{k}'] = v
        for k, v in self.worker.counters.as_dict().items():
            counters[f'worker_{k}'] = v
        # A frame is a cloud: it was never paired (stale, too old, evicted; not the ones still waiting),
        # or paired and then replaced while the worker was busy, skipped, or failed.
        pending = self.sync.pending()['cloud'] if self.sync is not None else 0
        unpaired = counters['clouds_received'] - counters.get('sync_paired', 0) - pending
        counters['frames_dropped'] = (
            max(unpaired, 0) + counters.get('worker_dropped_busy', 0) + counters.get('frames_failed', 0)
            + sum(v for k, v in counters.items() if k.startswith('frames_skipped_')))
        return counters

    def publish_diagnostics(self) -> None:
        extra = {'vocabulary_version': self.model.vocabulary_version if self.model else '',
                 'vocabulary_size': str(len(self.model.labels)) if self.model else '0',
                 'model': self.model.name if self.model else '', 'last_error': self.last_error,
                 'scheduling': self._scheduling(),
                 'vocabulary_pending': str(int(self._vocabulary_requested != self._vocabulary_applied))}
        level = DiagnosticStatus.ERROR if self.last_error else None
        message = self.last_error or f'{self.state_label}'
        hardware = self.model.device if self.model else str(self.get_parameter('device').value)
        self._diag_pub.publish(build_diagnostics(
            self.get_fully_qualified_name(), hardware, self.get_clock().now().to_msg(), self.state_label,
            message, self.diagnostic_counters(), self.windows, extra, level))

    def _apply_realtime(self, priority: int) -> None:
        """Set this (the executor's) thread at `priority` (SCHED_FIFO; 0 = ordinary), then start the worker.

        Both Python threads, because they share the GIL: an ordinary executor thread preempted while it
        holds the GIL would stall a real-time worker just the same (priority inversion). Executor first:
        a new thread starts with its creator's policy, so a worker started from an executor raised by an
        earlier configure would stay real-time at priority 0."""
        self._executor_realtime_error = set_realtime(priority) if priority else set_ordinary()
        self.worker.start(priority)
        error = self._realtime_error()
        if error:
            self.get_logger().warning(f'realtime_priority {priority} not applied, the node runs at ordinary '
                                      f'priority: {error}')
        elif priority:
            self.get_logger().info(f'executor and worker threads under SCHED_FIFO priority {priority}')

    def _realtime_error(self) -> str:
        return self.worker.realtime_error or self._executor_realtime_error

    def _scheduling(self) -> str:
        priority = self.params.realtime_priority if self.params else 0
        error = self._realtime_error()
        if not priority:
            return 'ordinary'
        if error:
            return f'ordinary (SCHED_FIFO {priority} refused: {error})'
        return f'SCHED_FIFO {priority}'


def _qos_opts() -> QoSOverridingOptions:
    return QoSOverridingOptions.with_default_policies()


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)

