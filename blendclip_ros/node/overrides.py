"""Parameters given to the node that it does not declare: a misspelt name in a params file or `-p` is
otherwise ignored by rclpy without a word, and the node runs on the default.

The names come from the process's ROS arguments through public rclpy API only: each `--params-file` is
read by `rclpy.parameter.parameter_dict_from_yaml_file` for this node (its '/**' wildcard included),
each `-p [node:]name:=value` is parsed as rcl reads it. The report names the closest declared name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

# Declared by rclpy when a publisher or subscription is created (QoSOverridingOptions), not at start-up.
DECLARED_LATER = ('qos_overrides.',)


def _ros_arguments(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) of every `-p/--param` and `--params-file` inside the `--ros-args` sections."""
    out, inside, i = [], False, 0
    while i < len(argv):
        token = argv[i]
        if token == '--ros-args':
            inside = True
        elif token == '--':
            inside = False
        elif inside and token in ('-p', '--param', '--params-file') and i + 1 < len(argv):
            out.append(('--params-file' if token == '--params-file' else '-p', argv[i + 1]))
            i += 1
        i += 1
    return out


def _param_name(assignment: str, node_fqn: str) -> str | None:
    """'name:=v' or 'node:name:=v' -> name when it applies to this node, else None."""
    target, colon, name = assignment.partition(':=')[0].rpartition(':')
    if not colon:
        return name
    return name if target in (node_fqn, node_fqn.rsplit('/', 1)[-1], '/**', '**') else None


def _file_names(path: str, node_fqn: str) -> list[str]:
    from rclpy.parameter import parameter_dict_from_yaml_file

    try:
        return list(parameter_dict_from_yaml_file(path, use_wildcard=True, target_nodes=[node_fqn]))
    except (RuntimeError, OSError):  # nothing for this node in it, or unreadable: rcl reports that itself
        return []


def override_names(argv: Sequence[str], node_fqn: str) -> list[str]:
    """Every parameter name the ROS arguments give this node, in order, once each."""
    names: list[str] = []
    for flag, value in _ros_arguments(argv):
        found = _file_names(value, node_fqn) if flag == '--params-file' else [_param_name(value, node_fqn)]
        names.extend(n for n in found if n and n not in names)
    return names


def undeclared_report(names: Iterable[str], is_declared: Callable[[str], bool],
                      declared: Sequence[str]) -> list[str]:
    """One line for each name the node does not declare, with the closest declared name if any."""
    lines = []
    for name in names:
        if is_declared(name) or name.startswith(DECLARED_LATER):
            continue
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        hint = f": did you mean '{close[0]}'?" if close else ' (no declared parameter is close)'
        lines.append(f"parameter '{name}' is not declared by this node and is ignored{hint}")
    return lines


def report_undeclared(node, argv: Sequence[str]) -> list[str]:
    """The lines for `node` started with `argv` (the process's arguments, as given to rclpy.init)."""
    declared = node.list_parameters([], 0).names
    return undeclared_report(override_names(argv, node.get_fully_qualified_name()), node.has_parameter,
                             declared)
