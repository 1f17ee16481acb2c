"""The BlendCLIP labelling node (`blendclip_node`): see lifecycle_node.py and docs/node.md."""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Console script entry point (imports lazily: `blendclip_ros.node.sync` etc. load without rclpy).

    After a clean shutdown (DDS entities destroyed, model freed) the process ends without interpreter
    finalisation: tearing down torch and DDS globals takes seconds, and `ros2 launch` escalates to
    SIGTERM/SIGKILL after 5 s, which would leave shared-memory segments behind.
    """
    from blendclip_ros.node.main import run

    code = run(argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
