"""Test-only stand-in for `launch.substitutions`: records arguments only."""


class LaunchConfiguration:
    def __init__(self, variable_name, *, default=None):
        self.variable_name, self.default = variable_name, default


class PathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)


class EnvironmentVariable:
    def __init__(self, name, *, default_value=''):
        self.name, self.default_value = name, default_value


class TextSubstitution:
    def __init__(self, *, text):
        self.text = text
