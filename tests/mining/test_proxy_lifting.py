"""Proxy lifting on constructed scenes with known boxes: barriers standing in a row (touching, so one
LiDAR cluster) seen by one camera whose 2D boxes are given each become their own proxy box."""

from pathlib import Path

import numpy as np

from blendclip_core.datasets.frame import Camera, Rigid
from blendclip_core.mining.lifting import (
    GroundMap,
    bev_iou,
    lift_detection,
    lift_frame,
    size_prior,
    split_oversized,
)
from blendclip_core.mining.proxy import Detection2D, ProxyConfig

GROUND_Z = -1.8
INTRINSIC = np.array([[1000.0, 0.0, 800.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]])


def _camera() -> Camera:
    """At the origin looking along +y (reference: x right, y forward, z up)."""
    cam_from_ref = np.eye(4)
    cam_from_ref[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    return Camera('CAM_FRONT', Path('none.jpg'), 0, INTRINSIC, cam_from_ref, Rigid(np.eye(3), np.zeros(3)),
                  width=1600, height=900)


def _barrier(x: float, y: float, rng) -> np.ndarray:
    """What a LiDAR sees of a 2.0 x 0.6 x 1.0 m barrier (long side along x): its near face and top."""
    face = np.column_stack([rng.uniform(x - 1.0, x + 1.0, 120), np.full(120, y - 0.3),
                            rng.uniform(GROUND_Z, GROUND_Z + 1.0, 120)])
    top = np.column_stack([rng.uniform(x - 1.0, x + 1.0, 30), rng.uniform(y - 0.3, y + 0.3, 30),
                           np.full(30, GROUND_Z + 1.0)])
    return np.concatenate([face, top])


def _image_box(camera: Camera, x: float, y: float) -> tuple[float, float, float, float]:
    """The 2D box of the barrier's 3D box (its projected corners), as nuScenes derives its 2D boxes."""
    corners = np.array([[x + dx, y + dy, GROUND_Z + dz] for dx in (-1.0, 1.0) for dy in (-0.3, 0.3)
                        for dz in (0.0, 1.0)])
    cam = corners @ camera.cam_from_ref[:3, :3].T
    uv = cam @ INTRINSIC.T
    uv = uv[:, :2] / uv[:, 2:3]
    return (*uv.min(0), *uv.max(0))


def _scene(centres, rng):
    road = np.column_stack([rng.uniform(-15, 15, (6000, 2)) + [0.0, 15.0], np.full(6000, GROUND_Z)])
    return np.concatenate([road] + [_barrier(x, y, rng) for x, y in centres])


class _Frame:
    def __init__(self, camera):
        self.cameras, self.token = [camera], 'scene'


def test_barriers_in_a_row_each_become_their_own_proxy():
    rng = np.random.default_rng(0)
    centres = [(-2.1, 10.0), (0.0, 10.0), (2.1, 10.0)]  # 0.1 m apart: one cluster at the 0.6 m radius
    xyz, camera = _scene(centres, rng), _camera()
    detections = [Detection2D(_image_box(camera, x, y), 'barrier', 0.9) for x, y in centres]
    proxies, dropped = lift_frame(xyz, _Frame(camera), lambda frame, cam: detections, ProxyConfig())
    assert dropped == 0 and len(proxies) == 3
    for x, y in centres:
        iou = max(bev_iou(p, np.array([x, y]), np.array([2.0, 0.6]), 0.0) for p in proxies)
        assert iou >= 0.5, (x, y, iou)


def test_the_object_not_a_neighbour_reaching_into_its_box():
    """A nearer barrier whose end reaches into the box from the side is not the detection's object."""
    rng = np.random.default_rng(1)
    near, far = (-1.2, 9.0), (1.0, 11.0)
    xyz, camera = _scene([near, far], rng), _camera()
    det = Detection2D(_image_box(camera, *far), 'barrier', 0.9)
    proxy = lift_detection(xyz, GroundMap(xyz, 2.0), camera, det, ProxyConfig())
    assert proxy is not None
    assert bev_iou(proxy, np.array(far), np.array([2.0, 0.6]), 0.0) >= 0.5


def test_split_oversized_by_class_size():
    rng = np.random.default_rng(2)
    two = np.concatenate([rng.uniform([-1.0, 0.0], [1.0, 0.5], (80, 2)),
                          rng.uniform([-1.0, 0.6], [1.0, 1.1], (80, 2))])  # two barriers side by side
    parts = split_oversized(two, size_prior('barrier'), 2.0)
    assert sorted(len(p) for p in parts) == [80, 80]
    assert split_oversized(two, None, 2.0)[0].tolist() == list(range(160))  # no class size: kept whole
    assert size_prior('traffic_cone') is not None and size_prior('flying saucer') is None
