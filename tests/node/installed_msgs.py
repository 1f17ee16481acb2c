"""Interface packages without wheels (vision_msgs, autoware_perception_msgs, tf2_msgs), built by
`make prefix` from ../shared/upstream into install/<distro>: found there, imported into this process and
given to child processes; a test skips with the reason when they are not built.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from upstream import REPO, VENV, ros_distro

OPTIONAL_MSGS = ('vision_msgs', 'autoware_perception_msgs', 'tf2_msgs')


def msgs_prefix(*packages: str) -> Path:
    """$BLENDCLIP_TEST_PREFIX (exported by the Makefile), else install/<distro>, holding `packages`."""
    prefix = Path(os.environ.get('BLENDCLIP_TEST_PREFIX') or REPO / 'install' / ros_distro())
    skipped = prefix.with_name(prefix.name + '.skipped')
    if skipped.is_file():
        pytest.skip(skipped.read_text().strip())
    missing = [p for p in packages if not (prefix / 'share' / p / 'package.xml').is_file()]
    if missing:
        pytest.skip(f'{", ".join(missing)} not built into {prefix}: run `make prefix` '
                    '(it builds them from ../shared/upstream)')
    return prefix


def _first(path: str, rest: str | None) -> str:
    return os.pathsep.join(filter(None, [path, rest]))


def _site(prefix: Path) -> Path:
    return prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / 'site-packages'


def import_msgs(prefix: Path, package: str) -> ModuleType:
    """`<package>.msg` from the prefix in this running process. The loader reads LD_LIBRARY_PATH only at
    start-up, so the package's libraries are loaded here by path first (each once its own dependencies
    are); rosidl finds its typesupport libraries through LD_LIBRARY_PATH when it needs them."""
    lib = prefix / 'lib'
    if str(lib) not in os.environ.get('LD_LIBRARY_PATH', '').split(os.pathsep):
        os.environ['LD_LIBRARY_PATH'] = _first(str(lib), os.environ.get('LD_LIBRARY_PATH'))
    pending = sorted(lib.glob(f'lib{package}__*.so'))
    while pending:
        failed = []
        for path in pending:
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(path)
        if len(failed) == len(pending):
            pytest.fail(f'cannot load {[p.name for p in failed]} from {lib}')
        pending = failed
    if str(_site(prefix)) not in sys.path:
        sys.path.append(str(_site(prefix)))  # after the venv: the checkout's packages stay first
    return importlib.import_module(f'{package}.msg')


def msgs_env(prefix: Path, base: dict[str, str]) -> dict[str, str]:
    """`base` (a child's environment running this checkout) with the prefix's messages importable: its
    site-packages after the checkout, its libraries and share/ found as `source setup.bash` finds them."""
    env = dict(base)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH'), str(_site(prefix))]))
    env['LD_LIBRARY_PATH'] = _first(str(prefix / 'lib'), env.get('LD_LIBRARY_PATH'))
    env['AMENT_PREFIX_PATH'] = os.pathsep.join([str(prefix), str(VENV)])
    return env
