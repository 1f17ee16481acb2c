"""The layering of docs/architecture.md, checked over the import graph of the source (no imports run).

Layers, bottom up: `blendclip_core` (no ROS) -> `blendclip_ros` -> `training/` (CLI shells). A module
may import its own layer and those below, never one above, and no set of modules may import each other
in a cycle, at module level or inside functions (a lazy import in a cycle only hides it).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

LAYERS = ('blendclip_core', 'blendclip_ros', 'training')  # bottom up
ROS_ONLY = ('rclpy', 'rosidl_runtime_py', 'rosbags', 'launch', 'launch_ros', 'blendclip.msg')


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in (REPO / layer).rglob('*.py')}


def imported_names(module: str, path: Path, node: ast.AST) -> list[str]:
    """Every dotted name an import statement may load: `from a import b` loads a and maybe a.b."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ''
    if node.level:  # relative: resolved against this module's package
        package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
        package = package[:len(package) - node.level + 1]
        base = '.'.join(package + ([base] if base else []))
    return [base, *(f'{base}.{a.name}' for a in node.names)]


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports. `from pkg import sub` counts as importing `pkg.sub` only
    (the package is being initialised already when its own submodules do this)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [n for n in imported_names(name, path, node) if n in modules]
                subs = [n for n in names[1:] if isinstance(node, ast.ImportFrom)]
                edges.update(subs or names)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = stack[stack.index(v):]
                del stack[stack.index(v):]
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted((m, t) for m, targets in graph.items() for t in targets
                  if rank[t.split('.')[0]] > rank[m.split('.')[0]])


def test_no_module_imports_a_layer_above_its_own():
    assert not upward_imports(import_graph())


def test_core_imports_nothing_of_ros():
    core = {n: p for n, p in project_modules().items() if n.startswith('blendclip_core')}
    ros = []
    for name, path in core.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                ros += [(name, n) for n in imported_names(name, path, node)
                        if n.startswith(ROS_ONLY) or n.endswith('_msgs') or '_msgs.' in n]
    assert not ros, ros


def test_no_import_cycles():
    assert not cycles(import_graph())


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks above can fail: a made-up graph with both defects is caught."""
    graph = {'blendclip_core.a': {'blendclip_core.b'}, 'blendclip_core.b': {'blendclip_core.c'},
             'blendclip_core.c': {'blendclip_core.a', 'training.x'}, 'training.x': set()}
    assert cycles(graph) == [['blendclip_core.a', 'blendclip_core.b', 'blendclip_core.c']]
    assert upward_imports(graph) == [('blendclip_core.c', 'training.x')]
    real = import_graph()  # and the real graph is the whole tree, with its package-internal edges
    assert len(real) > 100 and 'blendclip_ros.node.frame' in real['blendclip_ros.node.lifecycle_node']
