"""Test-only stand-in for ROS 2 `launch_ros` (see ../README.md)."""
