"""The BlendCLIP labelling node (`blendclip_node`): see lifecycle_node.py and docs/node.md."""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Console script entry point (imports lazily: `blendclip_ros.node.sync` etc. load without rclpy).

    After a clean shutdown (node destroyed, model freed, DDS context destroyed so no shared-memory
    segment is left behind) the process ends without interpreter finalisation: tearing down torch and
    friends took 2-10 s on a busy machine, and `ros2 launch` escalates to SIGTERM/SIGKILL after 5 s.
    """
    from blendclip_ros.node.main import release_context, run

    code = run(argv)
    if not release_context():
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
