"""Test-only stand-in for `launch_ros.substitutions`: records arguments only."""


class FindPackageShare:
    def __init__(self, package):
        self.package = package
