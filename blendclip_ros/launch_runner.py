"""Runs the Nodes a `launch/*.launch.py` file declares, the way `ros2 launch` would start them.

ROS 2 `launch`/`launch_ros` have no PyPI wheels, so on this project's machines the shipped launch
files are exercised through this runner: it calls the file's `generate_launch_description()`
(with whatever `launch` modules are importable: the real ones on a ROS install, test stand-ins here),
resolves the few substitutions our launch files use, and starts each Node as launch_ros does:

    <executable> [arguments] --ros-args -r __node:=NAME [-r __ns:=NS] --params-file FILE
                 [-p name:=value] [-r from:=to]

rcl parses these arguments and the params files itself, so parameters, remaps and node names take
the same path they take on a vehicle. Only declarative launch files are supported (arguments,
environment variables, Nodes); anything else raises UnsupportedLaunchEntity.

    python -m blendclip_ros.launch_runner launch/blendclip.launch.py params_file:=my.yaml
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class UnsupportedLaunchEntity(TypeError):
    """A launch entity or substitution this runner does not know how to evaluate."""


class LaunchArgumentError(ValueError):
    """A launch argument that is required (no default) and not given, or unknown."""


@dataclass(frozen=True)
class NodeLaunch:
    """One Node of a launch description with every substitution resolved."""

    package: str
    executable: str
    name: str | None = None
    namespace: str | None = None
    params_files: tuple[str, ...] = ()
    param_overrides: tuple[tuple[str, str], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()

    def ros_args(self) -> list[str]:
        args = ['--ros-args']
        if self.name:
            args += ['-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={self.namespace}']
        for f in self.params_files:
            args += ['--params-file', f]
        for k, v in self.param_overrides:
            args += ['-p', f'{k}:={v}']
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args

    def command(self, executable_path: str) -> list[str]:
        return [executable_path, *self.arguments, *self.ros_args()]


@dataclass
class LaunchPlan:
    nodes: list[NodeLaunch] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    arguments: dict[str, str] = field(default_factory=dict)


def load_description(launch_file: str | os.PathLike) -> Any:
    """Import a launch file as a module and return its `generate_launch_description()`."""
    path = Path(launch_file)
    spec = importlib.util.spec_from_file_location(f'_launch_{path.stem.replace(".", "_")}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def plan(description: Any, launch_arguments: Mapping[str, str] | None = None,
         package_shares: Mapping[str, str] | None = None) -> LaunchPlan:
    """Resolve a launch description into nodes and environment, launch arguments applied."""
    given = dict(launch_arguments or {})
    ctx = _Context(package_shares or {})
    out = LaunchPlan()
    declared = set()
    for entity in getattr(description, 'entities', []):
        kind = type(entity).__name__
        if kind == 'DeclareLaunchArgument':
            declared.add(entity.name)
            if entity.name in given:
                value = given[entity.name]
            elif entity.default_value is not None:
                value = ctx.resolve(entity.default_value)
            else:
                raise LaunchArgumentError(f'launch argument {entity.name!r} is required')
            choices = getattr(entity, 'choices', None)
            if choices and value not in choices:
                raise LaunchArgumentError(f'launch argument {entity.name}:={value} not in {choices}')
            ctx.arguments[entity.name] = value
        elif kind == 'SetEnvironmentVariable':
            out.environment[ctx.resolve(entity.name)] = ctx.resolve(entity.value)
        elif kind == 'LogInfo':
            continue
        elif kind == 'Node':
            out.nodes.append(_node(entity, ctx))
        else:
            raise UnsupportedLaunchEntity(f'launch entity {kind} is not supported by the runner')
    unknown = set(given) - declared
    if unknown:
        raise LaunchArgumentError(f'unknown launch arguments: {sorted(unknown)}')
    out.arguments = dict(ctx.arguments)
    return out


def find_executable(package: str, executable: str) -> str:
    """`lib/<package>/<executable>` under AMENT_PREFIX_PATH, else the console script next to python."""
    for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
        candidate = Path(prefix) / 'lib' / package / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    candidate = Path(sys.executable).parent / executable
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(executable)
    if found:
        return found
    raise FileNotFoundError(f'executable {executable!r} of package {package!r} not found')


def start(launch_plan: LaunchPlan, env: Mapping[str, str] | None = None,
          **popen_kwargs) -> list[subprocess.Popen]:
    """Start every node of the plan (environment: `env` or ours, plus the plan's variables)."""
    child_env = dict(os.environ if env is None else env)
    child_env.update(launch_plan.environment)
    procs = []
    try:
        for node in launch_plan.nodes:
            cmd = node.command(find_executable(node.package, node.executable))
            procs.append(subprocess.Popen(cmd, env=child_env, **popen_kwargs))
    except BaseException:
        stop(procs)
        raise
    return procs


def stop(procs: Sequence[subprocess.Popen], timeout: float = 10.0) -> list[int | None]:
    """SIGINT (what launch sends), then SIGTERM, then SIGKILL; returns the exit codes."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            p.send_signal(sig)
        deadline = time.monotonic() + wait
        for p in alive:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    return [p.poll() for p in procs]


class _Context:
    def __init__(self, package_shares: Mapping[str, str]) -> None:
        self.arguments: dict[str, str] = {}
        self.package_shares = dict(package_shares)

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):
            return ''.join(self.resolve(v) for v in value)
        kind = type(value).__name__
        if kind == 'LaunchConfiguration':
            name = self.resolve(value.variable_name)
            if name in self.arguments:
                return self.arguments[name]
            if value.default is not None:
                return self.resolve(value.default)
            raise LaunchArgumentError(f'launch configuration {name!r} is not set')
        if kind == 'PathJoinSubstitution':
            return os.path.join(*[self.resolve(v) for v in value.substitutions])
        if kind == 'TextSubstitution':
            return value.text
        if kind == 'EnvironmentVariable':
            return os.environ.get(self.resolve(value.name), self.resolve(value.default_value))
        if kind == 'FindPackageShare':
            return self.share(self.resolve(value.package))
        raise UnsupportedLaunchEntity(f'substitution {kind} is not supported by the runner')

    def share(self, package: str) -> str:
        if package in self.package_shares:
            return self.package_shares[package]
        for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
            candidate = Path(prefix) / 'share' / package
            # Here the venv holds an interfaces-only install of blendclip (no launch/, no config/).
            if (candidate / 'package.xml').is_file() and (candidate / 'launch').is_dir():
                return str(candidate)
        if package == 'blendclip' and (REPO / 'package.xml').is_file():
            return str(REPO)  # source checkout: launch/ and config/ sit where share/blendclip would hold them
        raise LaunchArgumentError(f'share directory of package {package!r} not found')


def _node(entity: Any, ctx: _Context) -> NodeLaunch:
    params_files, overrides = [], []
    for p in entity.parameters:
        if isinstance(p, Mapping):
            overrides += [(str(k), _param_value(v, ctx)) for k, v in p.items()]
        else:
            params_files.append(ctx.resolve(p))
    name = ctx.resolve(entity.name) if entity.name is not None else None
    ns = ctx.resolve(entity.namespace) if entity.namespace is not None else None
    return NodeLaunch(
        package=ctx.resolve(entity.package), executable=ctx.resolve(entity.executable), name=name,
        namespace=ns or None, params_files=tuple(params_files), param_overrides=tuple(overrides),
        remappings=tuple((ctx.resolve(a), ctx.resolve(b)) for a, b in entity.remappings),
        arguments=tuple(ctx.resolve(a) for a in entity.arguments))


def _param_value(value: Any, ctx: _Context) -> str:
    """launch_ros YAML-parses substituted strings; rcl does the same with `-p name:=value`."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)) and not any(type(v).__name__ in _SUBSTITUTIONS for v in value):
        items = (repr(v) if isinstance(v, str) else _param_value(v, ctx) for v in value)
        return '[' + ', '.join(items) + ']'
    return ctx.resolve(value)


_SUBSTITUTIONS = {'LaunchConfiguration', 'PathJoinSubstitution', 'TextSubstitution', 'EnvironmentVariable',
                  'FindPackageShare'}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('launch_file')
    parser.add_argument('launch_arguments', nargs='*', help='name:=value')
    parser.add_argument('--share', action='append', default=[], metavar='PKG=DIR',
                        help='share directory of a package (default: AMENT_PREFIX_PATH lookup)')
    parser.add_argument('--dry-run', action='store_true', help='print the commands, start nothing')
    args = parser.parse_args(argv)
    given = dict(a.split(':=', 1) for a in args.launch_arguments)
    shares = dict(s.split('=', 1) for s in args.share)
    launch_plan = plan(load_description(args.launch_file), given, shares)
    if args.dry_run:
        for k, v in launch_plan.environment.items():
            sys.stdout.write(f'{k}={v}\n')
        for node in launch_plan.nodes:
            sys.stdout.write(' '.join(node.command(node.executable)) + '\n')
        return 0
    procs = start(launch_plan)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    codes = stop(procs)
    return max((c or 0) for c in codes) if codes else 0


if __name__ == '__main__':
    raise SystemExit(main())
