"""blendclip_core imports with every ROS module unavailable, and its source names no ROS import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / 'blendclip_core'

# Top-level module names core must never need: rclpy and its runtime, message packages (any *_msgs,
# *_interfaces), our generated `blendclip.msg`, and the bag library (bag tools live in blendclip_ros).
BLOCKED_PREFIXES = ('rclpy', 'rcl_', 'rcutils', 'rmw', 'rosidl', 'rpyutils', 'ament_index', 'rosbags')
BLOCKED_SUFFIXES = ('_msgs', '_interfaces', '_srvs')
BLOCKED_EXACT = ('blendclip',)

CHILD = r"""
import importlib, importlib.abc, json, pkgutil, sys, traceback
PREFIXES, SUFFIXES, EXACT = json.loads(sys.argv[1])
blocked = []

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top.startswith(tuple(PREFIXES)) or top.endswith(tuple(SUFFIXES)) or top in EXACT:
            blocked.append(name)
            raise ImportError(f'{name} is blocked: blendclip_core must not import ROS')
        return None

sys.meta_path.insert(0, Block())
for name in [m for m in sys.modules if m.split('.')[0] in EXACT or m.startswith('rclpy')]:
    del sys.modules[name]
import blendclip_core
failed, imported = {}, []
def onerror(name):
    failed[name] = traceback.format_exc(limit=3)
for info in pkgutil.walk_packages(blendclip_core.__path__, 'blendclip_core.', onerror=onerror):
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except BaseException:
        failed[info.name] = traceback.format_exc(limit=5)
print(json.dumps({'imported': imported, 'failed': failed, 'blocked': blocked}))
"""


def source_modules() -> set[str]:
    """Dotted names of every module file and package under blendclip_core/."""
    names = set()
    for path in CORE.rglob('*.py'):
        rel = path.relative_to(CORE.parent).with_suffix('')
        parts = rel.parts[:-1] if rel.name == '__init__' else rel.parts
        if all(p.isidentifier() for p in parts):
            names.add('.'.join(parts))
    return names


def test_every_core_module_imports_with_ros_blocked():
    blocked = json.dumps([BLOCKED_PREFIXES, BLOCKED_SUFFIXES, BLOCKED_EXACT])
    run = subprocess.run([sys.executable, '-c', CHILD, blocked], capture_output=True, text=True,
                         timeout=300, cwd=CORE.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert not result['failed'], '\n'.join(f'{k}:\n{v}' for k, v in result['failed'].items())
    assert not result['blocked'], f'core tried to import {result["blocked"]}'
    # walk_packages must have reached every module file (no package silently skipped).
    missing = source_modules() - set(result['imported']) - {'blendclip_core'}
    assert not missing, f'not reached by walk_packages (a package without __init__.py?): {sorted(missing)}'


def test_no_ros_import_statement_in_core_source():
    """Also catches imports inside functions, which the import test above cannot reach."""
    offenders = []
    for path in sorted(CORE.rglob('*.py')):
        text = path.read_text()
        if 'import rclpy' in text:
            offenders.append(f'{path}: import rclpy')
        for node in ast.walk(ast.parse(text, str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split('.')[0]
                if top.startswith(BLOCKED_PREFIXES) or top.endswith(BLOCKED_SUFFIXES) or top in BLOCKED_EXACT:
                    offenders.append(f'{path}:{node.lineno}: {name}')
    assert not offenders, offenders
