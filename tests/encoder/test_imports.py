"""The encoder needs only torch and numpy: it must import and run with open_clip, ROS and Triton absent."""

import subprocess
import sys

SCRIPT = r"""
import sys
import numpy as np, torch  # torch probes for triton itself; block what comes after
for name in [k for k in sys.modules if k.split('.')[0] == 'triton']:
    del sys.modules[name]
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('open_clip', 'rclpy', 'triton', 'sensor_msgs', 'blendclip_ros'):
            raise ImportError(f'blocked {name}')
sys.meta_path.insert(0, Block())
from blendclip_core.encoder import create_model
from blendclip_core.checkpoint import load_checkpoint, save_checkpoint
from blendclip_core.types import ObjectBatch
from blendclip_core.encoder import grouping
assert grouping.triton is None
m = create_model('pointbert-tiny').eval()
with torch.no_grad():
    e = m.encode(ObjectBatch.from_list([np.random.default_rng(0).normal(size=(100, 3)), np.zeros((0, 3))]))
assert e.shape == (2, 64) and torch.isfinite(e).all()
assert not any(k.split('.')[0] in ('open_clip', 'rclpy', 'triton', 'blendclip_ros') for k in sys.modules)
print('ok')
"""


def test_encoder_runs_without_open_clip_ros_or_triton():
    r = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and 'ok' in r.stdout, r.stderr[-2000:]
