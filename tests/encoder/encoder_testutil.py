"""Shared helpers of the encoder tests."""

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
