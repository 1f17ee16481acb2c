"""config/fastdds_large_data.xml is read and applied by this distribution's Fast DDS (2.14 on Jazzy,
3.x on Kilted): a participant started with it maps one shared-memory segment of 16 MB (the default is
512 KB, smaller than one 35k-point cloud). test_two_process.py shows the effect on real clouds."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from conftest import fast_dds_version

SEGMENT = 16 * 1024 * 1024
PROBE = """
import os, time
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('profile_probe')
node.create_publisher(String, 'profile_probe', 10)
time.sleep(1.0)
# The shared-memory files this process mapped (not /dev/shm as a whole: other runs share it).
with open('/proc/self/maps') as maps:
    mapped = {line.split()[-1] for line in maps if '/dev/shm/' in line}
for path in sorted(mapped):
    print(os.path.basename(path), os.stat(path).st_size)
node.destroy_node()
rclpy.shutdown()
"""


def _segments(env: dict[str, str]) -> tuple[dict[str, int], str]:
    # A domain of its own (the test runs use 1-100): another participant on the domain would be
    # discovered and its segment mapped too.
    env = dict(env, ROS_DOMAIN_ID=str(101 + random.randrange(130)))
    done = subprocess.run([sys.executable, '-c', PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sizes = dict(line.rsplit(' ', 1) for line in done.stdout.splitlines())
    return {name: int(size) for name, size in sizes.items()}, done.stderr


def test_profile_maps_a_16mb_segment_with_this_fast_dds():
    major = int(fast_dds_version().split('.')[0])
    prefix = 'fastrtps_' if major == 2 else 'fastdds_'  # the segment names of each major version
    profile = Path(os.environ['FASTDDS_DEFAULT_PROFILES_FILE'])
    assert profile.name == 'fastdds_large_data.xml'
    sizes, stderr = _segments(dict(os.environ))
    data = {n: s for n, s in sizes.items()
            if n.startswith(prefix) and 'port' not in n and not n.endswith('_el')}
    # The participant's own segment (a second, default-sized one is mapped as well, with or without
    # the profile).
    assert any(s >= SEGMENT for s in data.values()), (sizes, stderr)
    assert 'XMLPARSER' not in stderr and 'rror' not in stderr, stderr
    env = {k: v for k, v in os.environ.items() if not k.endswith('_DEFAULT_PROFILES_FILE')}
    sizes, _ = _segments(env)  # without the profile: the default segment, so the check above can fail
    assert all(s < SEGMENT for n, s in sizes.items() if n.startswith(prefix)), sizes
