"""Parameters given to the node that it does not declare: a misspelt name in a params file or `-p` is
otherwise ignored by rclpy without a word, and the node runs on the default.

rclpy keeps the overrides it was given in a private attribute, so the names come from the process's
ROS arguments, read as rcl reads them: each `--params-file` section whose node name matches this node
('/**', '/*/name', 'ns/name' or nested namespace keys; nested keys become dotted names), and each
`-p [node:]name:=value`. (rclpy.parameter.parameter_dict_from_yaml_file would do part of this, but it
matches node names differently in Jazzy and Kilted.) The report names the closest declared name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import yaml

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


def _node_pattern(key: str) -> re.Pattern:
    """A params-file node key ('/**', '/*/blendclip', 'ns/blendclip') as a regex over full node names."""
    parts = [{'**': '.*', '*': '[^/]*'}.get(part, re.escape(part)) for part in key.strip('/').split('/')]
    return re.compile(('/' + '/'.join(parts)).replace('/.*/', '(/.*)?/'))  # '/**/x' is also '/x'


def _sections(doc: Mapping, prefix: str = '') -> Iterator[tuple[str, Mapping]]:
    """(node key, its ros__parameters) of every section, namespaces given as nested keys included."""
    for key, value in doc.items():
        if key == 'ros__parameters' and isinstance(value, Mapping):
            yield prefix or '/', value
        elif isinstance(value, Mapping):
            yield from _sections(value, f'{prefix}/{str(key).strip("/")}')


def _flat(params: Mapping, prefix: str = '') -> Iterator[str]:
    for key, value in params.items():
        name = f'{prefix}{key}'
        yield from _flat(value, f'{name}.') if isinstance(value, Mapping) else (name,)


def _file_names(path: str, node_fqn: str) -> list[str]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):  # rcl has refused such a file before the node exists
        return []
    names: list[str] = []
    for key, params in _sections(doc if isinstance(doc, Mapping) else {}):
        if _node_pattern(key).fullmatch(node_fqn):
            names.extend(_flat(params))
    return names


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
