"""One source of node defaults: the shipped parameters file and the launch files say what the code
declares (node/params.py NodeParams, whose vocabulary is blendclip_core.vocabulary.DRIVING)."""

import ast
import dataclasses
from pathlib import Path

import yaml

from blendclip_core.vocabulary import DEFAULT_TEMPLATES, DRIVING
from blendclip_ros.node import params as P

REPO = Path(__file__).resolve().parents[2]
# Declared parameters the shipped file leaves out on purpose, and why.
NOT_IN_FILE = {
    'autostart': 'set by the launch file (true) or a lifecycle manager (false), not by the params file',
    'static_transforms': 'an empty list has no type in a ROS 2 params file; shown commented out',
}


def _file_params() -> dict:
    return yaml.safe_load((REPO / 'config' / 'blendclip.params.yaml').read_text())['/**']['ros__parameters']


def _launch_defaults(name: str) -> dict[str, str]:
    """DeclareLaunchArgument(name, default_value='literal') pairs of a launch file (literals only)."""
    out = {}
    for node in ast.walk(ast.parse((REPO / 'launch' / name).read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument':
            default = {k.arg: k.value for k in node.keywords}.get('default_value')
            if isinstance(default, ast.Constant):
                out[node.args[0].value] = default.value
    return out


def test_params_file_holds_the_declared_defaults():
    defaults = dataclasses.asdict(P.NodeParams())
    in_file = _file_params()
    assert set(in_file) <= set(defaults), f'not declared by the node: {set(in_file) - set(defaults)}'
    assert set(defaults) - set(in_file) == set(NOT_IN_FILE)
    for name, value in in_file.items():
        expected = defaults[name]
        assert (tuple(value) if isinstance(value, list) else value) == expected, name
        assert type(value) is type(expected) or isinstance(value, list), name  # 1.0 stays a float
    assert P.NodeParams().vocabulary == DRIVING and P.NodeParams().prompt_templates == DEFAULT_TEMPLATES


def test_launch_defaults_are_the_nodes():
    from blendclip_ros.node.lifecycle_node import NODE_NAME

    node = P.NodeParams()
    vehicle = _launch_defaults('blendclip.launch.py')
    assert vehicle['device'] == node.device and vehicle['node_name'] == NODE_NAME
    for name in ('cloud_topic', 'boxes_topic', 'labels_topic', 'markers_topic'):
        assert vehicle[name] == '/' + getattr(node, name), name  # remap targets: the defaults, absolute
    assert vehicle['autostart'] == 'true'  # on purpose: the node's own default waits for a manager
    assert _launch_defaults('replay_nuscenes.launch.py')['device'] == node.device
