"""The ROS 2 packages that have no wheel, from ../shared/upstream, and the installed prefix `make prefix`
builds from them: each accessor skips the calling test with the reason when its piece is missing.

Pure-Python references (sensor_msgs_py, message_filters) are imported from their source folders;
the `ros2` command (launch, launch_ros, ros2cli verbs pip-installed into the venv by `make prefix`)
runs against install/<distro>, where this package is installed as colcon would install it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = REPO.parent / 'shared' / 'upstream'
VENV = Path(sys.prefix)
ROS2 = VENV / 'bin' / 'ros2'


def upstream_dir(*parts: str) -> Path:
    path = UPSTREAM.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f'{path} not found: ../shared/upstream holds the ROS packages that have no wheel')
    return path


def import_from_source(module: str, *parts: str):
    """Import `module` from ../shared/upstream/<parts> (the folder that holds its package)."""
    folder = str(upstream_dir(*parts))
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(module)


def ros_distro() -> str:
    """The distribution of this venv (written by make), else $ROS_DISTRO, else jazzy."""
    marker = VENV / 'ros-distro'
    if marker.is_file():
        return marker.read_text().strip()
    return os.environ.get('ROS_DISTRO', 'jazzy')


def installed_prefix() -> Path:
    """install/<distro>, with blendclip and composition_interfaces installed, or skip saying why."""
    prefix = REPO / 'install' / ros_distro()
    skipped = prefix.with_name(prefix.name + '.skipped')
    if skipped.is_file():
        pytest.skip(skipped.read_text().strip())
    if not (prefix / 'share' / 'blendclip' / 'launch').is_dir() or not ROS2.is_file():
        pytest.skip(f'no installed prefix at {prefix} or no {ROS2}: run `make prefix`')
    return prefix


def kill_launch(proc: subprocess.Popen) -> None:
    """SIGKILL a `ros2 launch` started with start_new_session=True and every process of its group: killing
    launch alone leaves its nodes running, orphaned, beside the tests that follow."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    proc.wait()


def prefix_env(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """What `source install/setup.bash` sets, for a prefix over the venv's ROS wheels."""
    env = dict(os.environ if base is None else base)
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / 'site-packages'

    def first(name: str, *values) -> str:
        return os.pathsep.join([*map(str, values), *filter(None, [env.get(name)])])

    env['AMENT_PREFIX_PATH'] = os.pathsep.join([str(prefix), str(VENV)])
    env['PYTHONPATH'] = first('PYTHONPATH', site)  # the installed copy of our packages, not the checkout
    env['LD_LIBRARY_PATH'] = first('LD_LIBRARY_PATH', prefix / 'lib')
    env['PATH'] = first('PATH', VENV / 'bin')  # executables' `#!/usr/bin/env python3` -> the venv
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
    return env


def ros2(env: dict[str, str], *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """One real `ros2` verb (no daemon: nothing outlives the test)."""
    return subprocess.run([str(ROS2), *args], env=env, capture_output=True, text=True, timeout=timeout)


def require_rosidl_runtime_py() -> None:
    """ros2topic, ros2service and ros2lifecycle import rosidl_runtime_py, which has no wheel."""
    if importlib.util.find_spec('rosidl_runtime_py') is None:
        pytest.skip('rosidl_runtime_py (imported by the ros2 topic/service/lifecycle verbs) has no wheel and '
                    'is not in ../shared/upstream: add ros2/rosidl_runtime_py (jazzy) there')
