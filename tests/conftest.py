"""Test-wide environment: offline model hubs and a private, localhost-only ROS graph per run.

Set before anything imports rclpy, so this process and every child process it starts share it.
"""

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# pytest runs with --import-mode=importlib (pyproject), so test files may share a basename across
# folders; each folder's helper modules (node_harness, encoder_testutil...) stay importable by name.
for _folder in sorted(p for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith(('_', '.'))):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
SHARED_DATA = REPO.parent / 'shared' / 'data'

os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


def fast_dds_version() -> str:
    """The Fast DDS of these wheels: `ros-fastrtps` 2.x (Jazzy), `ros-fastdds` 3.x (Kilted)."""
    for name in ('ros-fastdds', 'ros-fastrtps'):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ''


# Fast DDS 3.x (Kilted) reads FASTDDS_..., 2.x (Humble, Jazzy) FASTRTPS_... (3.x warns about it, so
# it is set only for 2.x).
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')
if fast_dds_version().startswith('2.'):
    os.environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = os.environ['FASTDDS_DEFAULT_PROFILES_FILE']
else:
    os.environ.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)
# A distinct domain per run, so parallel or leftover runs on one machine never cross-talk.
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))

# No timing in tests (a loaded 2-core machine would trip hypothesis' deadline), and no example database
# written into the working tree.
settings.register_profile('blendclip', deadline=None, database=None)
settings.load_profile('blendclip')


@pytest.fixture(scope='session')
def repo() -> Path:
    return REPO


@pytest.fixture(scope='session')
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'shared data not found at {SHARED_DATA}')
    return SHARED_DATA
