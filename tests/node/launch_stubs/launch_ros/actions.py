"""Test-only stand-in for `launch_ros.actions`: records arguments only."""


class Node:
    def __init__(self, *, executable, package=None, name=None, namespace=None, parameters=None,
                 remappings=None, arguments=None, output='log', **kwargs):
        self.executable, self.package, self.name, self.namespace = executable, package, name, namespace
        self.parameters, self.remappings = list(parameters or []), list(remappings or [])
        self.arguments, self.output, self.kwargs = list(arguments or []), output, kwargs
