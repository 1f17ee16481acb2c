"""The BlendCLIP labelling node (`blendclip_node`): see lifecycle_node.py and docs/node.md."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; imported lazily so `blendclip_ros.node.sync` etc. load without rclpy."""
    from blendclip_ros.node.main import run

    return run(argv)
