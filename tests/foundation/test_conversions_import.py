"""`import blendclip_ros.conversions` loads no ROS module: the bag tools use it with rosbags types only."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
import blendclip_ros.conversions
ros = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'blendclip')
       or m.split('.')[0].endswith(('_msgs', '_interfaces'))]
print(json.dumps(ros))
"""


def test_conversions_import_loads_no_ros_module():
    run = subprocess.run([sys.executable, '-c', CODE], capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
