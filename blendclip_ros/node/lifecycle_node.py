"""The BlendCLIP labelling node: LiDAR cloud + 3D boxes in, open-vocabulary labels out.

Lifecycle glue in the shape of ros2/demos' lifecycle talker (rclpy.lifecycle, same API in Humble, Jazzy
and Kilted): configure creates (model, publishers, threads), activate subscribes (and publishes the
vocabulary, transient local), deactivate unsubscribes, cleanup/shutdown destroy and free the GPU.
Callbacks only hand off: inputs.py pairs raw messages by stamp for the frame worker (worker.py, depth 1,
drop-oldest), which runs the per-frame message path (frame.py) and publishes its bytes; param_policy.py
decides parameter changes; vocabulary_updates.py embeds new vocabularies off the labelling path;
diagnostics.py keeps counters and latency windows. Bad input is answered or skipped and counted.
"""

from __future__ import annotations

import dataclasses
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from . import frame, param_policy
from . import params as P
from .diagnostics import NodeStats, WarnThrottle, build_diagnostics, model_values
from .inputs import FrameInputs, missing_interfaces
from .model import LoadedModel, freeze_long_lived, load_model, release_memory
from .outputs import create_publishers, own, publish_extras, qos_overridable
from .sync import Pair
from .vocabulary_updates import VocabularyUpdater, vocabulary_msg
from .worker import LatestOnlyWorker, describe_scheduling, start_scheduled

NODE_NAME = 'blendclip'


class BlendClipNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        P.declare(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.state_label, self.last_error = 'unconfigured', ''
        self.params: P.NodeParams | None = None
        self.model: LoadedModel | None = None
        self.settings: frame.FrameSettings | None = None
        self.transforms: dict = {}
        self.stats = NodeStats()
        self.counters = self.stats.counters  # for the life of the process
        self.warn = WarnThrottle(self.get_logger().warning)
        self.worker = LatestOnlyWorker(self._process, on_error=self._worker_error)
        self.inputs = FrameInputs(self.counters, self.warn, self.worker.submit, self._now_ns)
        self.vocabulary = VocabularyUpdater(self.worker, lambda: self.model, self.counters, self.warn,
                                            self._publish_vocabulary)
        self._subs, self._pubs = [], {}
        self._realtime_error = ''
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(self.get_parameter('diagnostics_period').value,
                                             self.publish_diagnostics)

    # ----------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure(P.read(self))
        except Exception as exc:  # noqa: BLE001 - a bad path, value or topic fails the transition only
            self._release()
            self.params = None
            return self._failed('configure', exc)
        self.last_error, self.state_label = '', 'inactive'
        self.get_logger().info(f'configured: {self.model.describe()}, {len(self.params.vocabulary)} labels')
        return super().on_configure(state)

    def _configure(self, params: P.NodeParams) -> None:
        self.transforms = P.parse_static_transforms(params.static_transforms)
        self.model = load_model(params)
        self.params, self.settings = params, frame.FrameSettings.from_params(params)
        self.stats.resize_windows(params.latency_window)
        self.inputs.configure(params)
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(params.diagnostics_period, self.publish_diagnostics)
        self._pubs = {}
        create_publishers(self, params, self._pubs)
        for line in missing_interfaces(params):
            self.get_logger().warning(line)
        freeze_long_lived()
        self.vocabulary.start()
        self._realtime_error = start_scheduled(self.worker, params.realtime_priority, self.get_logger())

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.inputs.reset()
        self.stats.clear_windows()  # latency percentiles describe this activation only
        self._subs = []  # appended one by one: a failure half-way still drops what was made
        try:
            for msg_type, topic, callback, qos, raw in self.inputs.subscriptions():
                self._subs.append(self.create_subscription(msg_type, topic, callback, own(qos), raw=raw,
                                                           **qos_overridable()))
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: stay inactive, say why
            self._drop_subscriptions()
            return self._failed('activate', exc)
        result = super().on_activate(state)
        self.state_label = 'active'
        self._publish_vocabulary()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._drop_subscriptions()
        self.state_label = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state_label = 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.state_label = 'finalized'
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.state_label = 'unconfigured'
        return super().on_error(state)

    def shutdown_quietly(self) -> None:
        """Process exit (the context may already be shut down): stop the workers, free the model."""
        try:
            self._stop()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            self.get_logger().debug(f'shutdown: {exc}')
        self.state_label = 'finalized'

    def _failed(self, transition: str, exc: Exception) -> TransitionCallbackReturn:
        self.last_error = f'{transition} failed: {type(exc).__name__}: {exc}'
        self.get_logger().error(self.last_error)
        return TransitionCallbackReturn.FAILURE

    def _stop(self) -> None:
        self._drop_subscriptions()
        self._release()

    def _drop_subscriptions(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.inputs.reset()

    def _release(self) -> None:
        """Stop the workers, destroy publishers, free the model (and its GPU memory)."""
        self.worker.stop()
        self.vocabulary.stop()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self.model is not None:
            self.model.release()
        self.model = None
        release_memory()

    # ----------------------------------------------------------------------------- frame worker
    def _process(self, job: tuple[Pair, float]) -> None:
        """One paired frame in, its LabelledObjectArray bytes (and markers) out."""
        (pair, received), t_start = job, time.perf_counter()
        self.stats.windows['queue_wait'].add((t_start - received) * 1e3)
        model, settings, pubs = self.model, self.settings, self._pubs
        if model is None or not pubs:
            return
        outcome = frame.label_frame_msgs(pair.cloud, pair.boxes, model, settings, self.transforms)
        self.stats.add_counts(outcome.counts)
        if outcome.skip_reason:
            self.counters[f'frames_skipped_{outcome.skip_reason}'] += 1
            self.warn(outcome.skip_reason, outcome.message)
            return
        if outcome.message:
            self.warn(outcome.warn_kind, outcome.message)
        t_built = time.perf_counter()
        pubs['labels'].publish(outcome.labels_cdr)  # already serialised: the bytes label-bag writes
        publish_extras(pubs, self.params, outcome)
        self.stats.frame_published(outcome, t_start, t_built, time.perf_counter(),
                                   (self._now_ns() - pair.boxes_stamp_ns) / 1e6)

    def _worker_error(self, what: str, exc: BaseException) -> None:
        self.stats.worker_failed(what)
        self.warn(f'error_{what}', f'{what} failed: {type(exc).__name__}: {exc}')

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # ----------------------------------------------------------------------------- parameters
    # rclpy refuses read-only, out-of-range, wrongly typed and undeclared values before our callback
    # runs, so rejections are counted here, where every path (service or in-process) ends: once each.
    def set_parameters(self, parameter_list):
        return param_policy.count_rejections(super().set_parameters, parameter_list, self._rejected)

    def set_parameters_atomically(self, parameter_list):
        return param_policy.count_rejections(super().set_parameters_atomically, parameter_list,
                                             self._rejected)

    def _rejected(self, reason: str) -> None:
        self.counters['parameters_rejected'] += 1
        self.warn('parameters', f'parameter change rejected: {reason}')

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        current = self.params or P.NodeParams(
            vocabulary=tuple(self.get_parameter('vocabulary').value),
            prompt_templates=tuple(self.get_parameter('prompt_templates').value))
        decision = param_policy.review([(p.name, p.value) for p in parameters],
                                       self.state_label != 'unconfigured', current.vocabulary,
                                       current.prompt_templates, self.model)
        if decision.accepted and decision.updates and self.params is not None:  # else read at configure
            self.params = dataclasses.replace(self.params, **decision.updates)
            self.settings = frame.FrameSettings.from_params(self.params)
            if param_policy.VOCABULARY_NAMES & decision.updates.keys() and self.vocabulary.running:
                self.vocabulary.request(self.model, self.params.vocabulary, self.params.prompt_templates)
        return SetParametersResult(successful=decision.accepted, reason=decision.reason)

    # ----------------------------------------------------------------------------- outputs
    def _publish_vocabulary(self) -> None:
        pub, model = self._pubs.get('vocabulary'), self.model
        if pub is not None and model is not None:
            pub.publish(vocabulary_msg(model, self.get_clock().now().to_msg()))

    def _scheduling(self) -> str:
        return describe_scheduling(self.params.realtime_priority if self.params else 0, self._realtime_error)

    def publish_diagnostics(self) -> None:
        m = self.model
        self._diag_pub.publish(build_diagnostics(
            self.get_fully_qualified_name(), m.device if m else str(self.get_parameter('device').value),
            self.get_clock().now().to_msg(), self.state_label, self.last_error or self.state_label,
            self.stats.report(self.inputs.sync, self.worker), self.stats.windows,
            model_values(m, self.last_error, self._scheduling(), self.vocabulary.pending),
            DiagnosticStatus.ERROR if self.last_error else None))
