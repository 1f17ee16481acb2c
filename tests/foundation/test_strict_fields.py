"""The conversions under rclpy's per-field type checks (ROS_PYTHON_CHECK_FIELDS=1).

Humble checks every assignment (an assert) by default; Jazzy+ only with this variable. Running the
conversion tests with it on proves every field gets the exact Python type the message expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_conversion_tests_pass_with_field_checks():
    files = [str(HERE / name) for name in ('test_pointcloud.py', 'test_boxes.py', 'test_markers.py')]
    env = dict(os.environ, ROS_PYTHON_CHECK_FIELDS='1')
    run = subprocess.run([sys.executable, '-m', 'pytest', *files],  # pyproject adds -q, no cache
                         env=env, capture_output=True, text=True, timeout=300, cwd=HERE.parents[1])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert ' passed' in run.stdout and 'failed' not in run.stdout
