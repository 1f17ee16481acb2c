"""Test-only stand-in for ROS 2 `launch` (see ../README.md)."""


class LaunchDescription:
    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])

    def add_action(self, action):
        self.entities.append(action)
