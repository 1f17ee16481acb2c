"""Test-only stand-in for `launch.actions`: records arguments only."""


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description='', choices=None):
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices


class SetEnvironmentVariable:
    def __init__(self, name, value):
        self.name, self.value = name, value


class LogInfo:
    def __init__(self, *, msg):
        self.msg = msg
