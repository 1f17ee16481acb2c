"""Lift 2D detections into 3D proxy boxes: frustum cut, ground removal, clustering, a bird's-eye fit.

Pure numpy/scipy on a frame's aggregated points (reference frame, z up); see proxy.py for the pipeline.
"""

from __future__ import annotations

import numpy as np

from blendclip_core.datasets.frame import Camera
from blendclip_core.mining.proxy import Detection2D, ProxyBox, ProxyConfig

GROUND_PERCENTILE = 0.05  # of a cell's heights: its ground (robust to a few low outliers)
YAW_STEPS = 30  # headings tried over 90 degrees by the rectangle fit


class GroundMap:
    """Ground height per xy cell: a low percentile of each cell, then the minimum over the 3 x 3
    neighbourhood (a cell covered by a bus roof takes the road beside it); empty cells: the scan's."""

    def __init__(self, xyz: np.ndarray, cell: float):
        from scipy.ndimage import minimum_filter

        self.cell = cell
        ij = np.floor(xyz[:, :2] / cell).astype(np.int64)
        self.origin = ij.min(0) if len(ij) else np.zeros(2, np.int64)
        ij -= self.origin
        shape = tuple(ij.max(0) + 1) if len(ij) else (1, 1)
        flat = ij[:, 0] * shape[1] + ij[:, 1]
        order = np.lexsort((xyz[:, 2], flat))
        flat, z = flat[order], xyz[order, 2]
        cells, starts, counts = np.unique(flat, return_index=True, return_counts=True)
        grid = np.full(shape[0] * shape[1], np.inf)
        grid[cells] = z[starts + (counts * GROUND_PERCENTILE).astype(np.int64)]
        self.default = float(np.median(grid[cells])) if len(cells) else 0.0
        grid = minimum_filter(grid.reshape(shape), size=3, mode='nearest')
        self.grid = np.where(np.isfinite(grid), grid, self.default)

    def height(self, xy: np.ndarray) -> np.ndarray:
        ij = np.floor(xy / self.cell).astype(np.int64) - self.origin
        inside = (ij >= 0).all(1) & (ij[:, 0] < self.grid.shape[0]) & (ij[:, 1] < self.grid.shape[1])
        out = np.full(len(xy), self.default)
        out[inside] = self.grid[ij[inside, 0], ij[inside, 1]]
        return out


def frustum(xyz: np.ndarray, camera: Camera, box: tuple[float, float, float, float],
            config: ProxyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the points projecting into the (inset) 2D box, and their depth along the camera axis."""
    m = camera.cam_from_ref
    cam = xyz @ m[:3, :3].T + m[:3, 3]
    front = np.flatnonzero((cam[:, 2] > 0.5) & (cam[:, 2] < config.max_depth))
    uv = cam[front] @ camera.intrinsic.T
    uv = uv[:, :2] / uv[:, 2:3]
    u0, v0, u1, v1 = box
    du, dv = (u1 - u0) * config.inset, (v1 - v0) * config.inset
    inside = (uv[:, 0] >= u0 + du) & (uv[:, 0] <= u1 - du) & (uv[:, 1] >= v0 + dv) & (uv[:, 1] <= v1 - dv)
    return front[inside], cam[front[inside], 2]


def clusters(xyz: np.ndarray, radius: float) -> np.ndarray:
    """Connected components of the points under `radius` (single linkage): a label per point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(xyz).query_pairs(radius, output_type='ndarray')
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xyz), len(xyz)))
    return connected_components(graph, directed=False)[1]


def pick_object(labels: np.ndarray, depth: np.ndarray, config: ProxyConfig) -> np.ndarray:
    """The cluster nearest the camera (median depth) among those with at least `min_cluster_fraction`
    of the largest one's points: an object occludes what is behind it in its own box."""
    ids, counts = np.unique(labels, return_counts=True)
    big = ids[counts >= config.min_cluster_fraction * counts.max()]
    nearest = min(big, key=lambda c: float(np.median(depth[labels == c])))
    return np.flatnonzero(labels == nearest)


def fit_rectangle(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Minimum-area bird's-eye rectangle: (centre xy, (length, width), yaw of the length axis)."""
    best = None
    for yaw in np.linspace(0.0, np.pi / 2, YAW_STEPS, endpoint=False):
        c, s = np.cos(yaw), np.sin(yaw)
        local = xy @ np.array([[c, -s], [s, c]])
        lo, hi = local.min(0), local.max(0)
        area = float(np.prod(np.maximum(hi - lo, 0.05)))
        if best is None or area < best[0]:
            best = (area, yaw, lo, hi)
    _, yaw, lo, hi = best
    c, s = np.cos(yaw), np.sin(yaw)
    centre = np.array([[c, -s], [s, c]]) @ ((lo + hi) / 2)
    size = np.maximum(hi - lo, 0.05)
    if size[1] > size[0]:
        size, yaw = size[::-1], yaw + np.pi / 2
    return centre, size, float(yaw)


def lift_detection(xyz: np.ndarray, ground: GroundMap, camera: Camera, det: Detection2D,
                   config: ProxyConfig) -> ProxyBox | None:
    """The proxy box of one detection, or None when too few points survive or the size is implausible."""
    idx, depth = frustum(xyz, camera, det.box, config)
    if len(idx) == 0:
        return None
    floor = ground.height(xyz[idx, :2])
    above = xyz[idx, 2] > floor + config.ground_clearance
    idx, depth, floor = idx[above], depth[above], floor[above]
    if len(idx) < config.min_points:
        return None
    obj = pick_object(clusters(xyz[idx], config.cluster_radius), depth, config)
    if len(obj) < config.min_points:
        return None
    pts = xyz[idx[obj]]
    centre, (length, width), yaw = fit_rectangle(pts[:, :2])
    bottom, top = float(np.median(floor[obj])), float(pts[:, 2].max())
    size = np.array([length, width, max(top - bottom, 0.1)])
    if (size > np.asarray(config.max_size)).any():
        return None
    return ProxyBox(np.array([centre[0], centre[1], (top + bottom) / 2]), size, yaw, det, camera.channel,
                    len(obj))


def bev_iou(a: ProxyBox, b_center: np.ndarray, b_size: np.ndarray, b_yaw: float) -> float:
    """Bird's-eye IoU of a proxy box and a box given by centre, size (l, w, ...) and yaw."""
    pa, pb = _polygon(a.center, a.size_lwh, a.yaw), _polygon(b_center, b_size, b_yaw)
    inter = pa.intersection(pb).area
    return float(inter / max(pa.area + pb.area - inter, 1e-9))


def _polygon(center, size, yaw):
    from shapely.geometry import Polygon

    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * np.asarray(size[:2]) / 2
    return Polygon(half @ np.array([[c, s], [-s, c]]) + np.asarray(center[:2]))


def suppress_duplicates(boxes: list[ProxyBox], iou: float) -> list[ProxyBox]:
    """Bird's-eye NMS by score then points: one object seen by two cameras gives one proxy."""
    kept: list[ProxyBox] = []
    for box in sorted(boxes, key=lambda b: (-b.detection.score, -b.num_points)):
        if all(bev_iou(box, k.center, k.size_lwh, k.yaw) <= iou for k in kept):
            kept.append(box)
    return kept


def lift_frame(xyz: np.ndarray, frame, detector, config: ProxyConfig) -> tuple[list[ProxyBox], int]:
    """Proxy boxes of every camera's detections (above `min_score`), merged across cameras; and the
    number of detections that gave none (too few points, implausible size)."""
    ground = GroundMap(xyz, config.ground_cell)
    boxes, dropped = [], 0
    for camera in frame.cameras:
        for det in detector(frame, camera):
            if det.score < config.min_score:
                continue
            box = lift_detection(xyz, ground, camera, det, config)
            if box is None:
                dropped += 1
            else:
                boxes.append(box)
    return suppress_duplicates(boxes, config.nms_iou), dropped
