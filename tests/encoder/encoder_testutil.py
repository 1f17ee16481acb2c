"""Shared helpers of the encoder tests."""

import os
import subprocess
import sys

import numpy as np

from blendclip_core.types import ObjectBatch


def random_objects(counts, seed=0, channels=3):
    """Clusters of points shaped like LiDAR objects (anisotropic blobs), float32, centred."""
    rng = np.random.default_rng(seed)
    objs = []
    for n in counts:
        scale = rng.uniform(0.3, 3.0, size=channels).astype(np.float32)
        objs.append((rng.normal(size=(n, channels)) * scale).astype(np.float32))
    return objs


def batch_of(objs, channels=3):
    return ObjectBatch.from_list(objs, channels=channels)


def run_in_triton_interpreter(script: str) -> None:
    """Run a script that ends by printing 'ok' in a fresh process with TRITON_INTERPRET=1 (Triton
    kernels on the CPU); fail with its stderr otherwise."""
    env = {**os.environ, 'TRITON_INTERPRET': '1'}
    r = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'ok' in r.stdout, r.stderr[-3000:]
