"""`blendclip_node`: spin the labelling node until SIGINT/SIGTERM, then shut it down cleanly.

    blendclip_node --ros-args --params-file config/blendclip.params.yaml -p autostart:=true
"""

from __future__ import annotations

import gc
import logging
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

EXIT_BAD_PARAMETERS = 2
# Two Python threads share the GIL: the executor (callbacks, timers, parameter services) and the worker
# (conversion, crop, model, publish). A thread that wants the GIL waits until the holder blocks or, at
# most, one switch interval (CPython's default: 5 ms, the size of the spikes once seen in the worker's
# overhead). 0.5 ms bounds that wait whatever the executor runs. In the benchmark, once the diagnostics
# timer was made cheap (diagnostics.py), 5 ms and 0.5 ms measured the same (docs/node.md): this is a
# bound for slow executor work, not a speed-up.
SWITCH_INTERVAL_S = 0.0005


def run(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    rclpy.init(args=args)
    from rclpy.exceptions import ParameterException

    from blendclip_ros.node.lifecycle_node import BlendClipNode
    from blendclip_ros.node.overrides import report_undeclared

    try:
        node = BlendClipNode()
    except (ParameterException, ValueError, TypeError) as exc:
        # Out-of-range or wrongly typed values in a params file / -p: say which, do not traceback.
        logging.getLogger('blendclip_node').error('invalid parameters: %s', exc)
        rclpy.try_shutdown()
        return EXIT_BAD_PARAMETERS
    for line in report_undeclared(node, args):  # a misspelt name would otherwise be ignored silently
        node.get_logger().warning(line)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value and not autostart(node):
            node.get_logger().error('autostart failed; the node stays up for a lifecycle manager to retry '
                                    f'({node.last_error})')
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown_quietly()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    del node, executor
    gc.collect()
    return 0


def autostart(node) -> bool:
    """configure + activate, as a lifecycle manager would. False (logged) if either fails."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def release_context() -> bool:
    """Destroy the default context now (its DDS participant and shared-memory segments) rather than at
    interpreter exit. False where this rclpy cannot (then only a normal exit cleans up)."""
    destroy = getattr(rclpy.get_default_context(), 'destroy', None)
    if destroy is None:
        return False
    destroy()
    return True
