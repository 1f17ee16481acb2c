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
    """Indices of the points projecting into the 2D box `box`, and their image coordinates (N, 2)."""
    m = camera.cam_from_ref
    cam = xyz @ m[:3, :3].T + m[:3, 3]
    front = np.flatnonzero((cam[:, 2] > 0.5) & (cam[:, 2] < config.max_depth))
    uv = cam[front] @ camera.intrinsic.T
    uv = uv[:, :2] / uv[:, 2:3]
    inside = in_box(uv, box)
    return front[inside], uv[inside]


def in_box(uv: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Which image points (N, 2) lie in the 2D box (edges included)."""
    u0, v0, u1, v1 = box
    return (uv[:, 0] >= u0) & (uv[:, 0] <= u1) & (uv[:, 1] >= v0) & (uv[:, 1] <= v1)


def axes(yaw: float) -> np.ndarray:
    """(2, 2) rows: the bird's-eye length and width directions of a box heading `yaw`."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s], [-s, c]])


def grown_box(box: tuple[float, float, float, float], fraction: float) -> tuple[float, float, float, float]:
    """The 2D box with `fraction` of its width and height added on each side (negative: an inset)."""
    u0, v0, u1, v1 = box
    du, dv = (u1 - u0) * fraction, (v1 - v0) * fraction
    return u0 - du, v0 - dv, u1 + du, v1 + dv


def clusters(xyz: np.ndarray, radius: float) -> np.ndarray:
    """Connected components of the points under `radius` (single linkage): a label per point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(xyz).query_pairs(radius, output_type='ndarray')
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xyz), len(xyz)))
    return connected_components(graph, directed=False)[1]


def size_prior(label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Bird's-eye (long, short) side mean and spread of the class the detector's text names (the synthetic
    generator's nuScenes-like size table), or None for a text outside it."""
    from blendclip_core.datasets.classes import nuscenes_class
    from blendclip_core.synthetic.shapes import CLASSES

    coarse = nuscenes_class(label)
    for spec in CLASSES:
        if label == spec.name or (coarse and coarse == spec.coarse):
            order = np.argsort(spec.size_mean[:2])[::-1]
            return np.asarray(spec.size_mean[:2])[order], np.asarray(spec.size_std[:2])[order]
    return None


def split_oversized(xy: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None,
                    sigmas: float) -> list[np.ndarray]:
    """Index sets of a cluster cut into as many objects as the class size allows along each side of its
    bird's-eye rectangle (1-D k-means): barriers or cones standing in a row touch and join one cluster."""
    if prior is None or len(xy) < 2:
        return [np.arange(len(xy))]
    mean, std = prior
    _, size, yaw = fit_rectangle(xy)
    parts = [np.arange(len(xy))]
    for axis, extent, m, s in zip(axes(yaw), size, mean, std):
        if extent <= m + sigmas * s:
            continue
        k = max(int(round(extent / m)), 2)
        parts = [part[labels == j] for part in parts
                 for labels in [_kmeans_1d(xy[part] @ axis, k)] for j in range(k) if (labels == j).any()]
    return parts


def _kmeans_1d(x: np.ndarray, k: int, iterations: int = 20) -> np.ndarray:
    """Labels of a 1-D k-means started from evenly spaced centres (deterministic)."""
    centres = np.linspace(x.min(), x.max(), 2 * k + 1)[1::2]
    for _ in range(iterations):
        labels = np.abs(x[:, None] - centres[None]).argmin(1)
        centres = np.array([x[labels == j].mean() if (labels == j).any() else centres[j] for j in range(k)])
    return np.abs(x[:, None] - centres[None]).argmin(1)


def box_agreement(uv: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """IoU of the image rectangle spanned by a candidate's projected points and the detection's 2D box.
    Seen in a cut wider than the box, the object ends at the box's edges; a neighbour reaching in from
    the side, a wall behind or a fragment does not."""
    u0, v0, u1, v1 = box
    lo, hi = uv.min(0), uv.max(0)
    inter = max(min(hi[0], u1) - max(lo[0], u0), 0.0) * max(min(hi[1], v1) - max(lo[1], v0), 0.0)
    union = (hi[0] - lo[0]) * (hi[1] - lo[1]) + (u1 - u0) * (v1 - v0) - inter
    return float(inter / max(union, 1e-9))


def fit_rectangle(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Minimum-area bird's-eye rectangle: (centre xy, (length, width), yaw of the length axis)."""
    best = None
    for yaw in np.linspace(0.0, np.pi / 2, YAW_STEPS, endpoint=False):
        local = xy @ axes(yaw).T
        lo, hi = local.min(0), local.max(0)
        area = float(np.prod(np.maximum(hi - lo, 0.05)))
        if best is None or area < best[0]:
            best = (area, yaw, lo, hi)
    _, yaw, lo, hi = best
    centre = axes(yaw).T @ ((lo + hi) / 2)
    size = np.maximum(hi - lo, 0.05)
    if size[1] > size[0]:
        size, yaw = size[::-1], yaw + np.pi / 2
    return centre, size, float(yaw)


def object_points(xyz: np.ndarray, ground: GroundMap, camera: Camera, det: Detection2D,
                  config: ProxyConfig, prior: tuple[np.ndarray, np.ndarray] | None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the detection's object points (inside the inset box) and their ground heights.
    prior: the detector text's class size (size_prior), which bounds a cluster before it is split.

    The cut is `context` wider than the 2D box on each side, so each cluster shows whether it ends where
    the box does; clusters larger than the class allows are split; the candidate whose projection agrees
    best with the 2D box is the object, and only its points inside the inset box are kept."""
    wide, uv = frustum(xyz, camera, grown_box(det.box, config.context), config)
    above = xyz[wide, 2] > ground.height(xyz[wide, :2]) + config.ground_clearance
    wide, uv = wide[above], uv[above]
    if len(wide) < config.min_points:
        return wide[:0], np.zeros(0)
    inset = in_box(uv, grown_box(det.box, -config.inset))
    labels = clusters(xyz[wide], config.cluster_radius)
    best, best_score = wide[:0], -1.0
    for c in np.unique(labels[inset]):
        members = np.flatnonzero(labels == c)
        for part in split_oversized(xyz[wide[members], :2], prior, config.split_sigmas):
            part = members[part]
            kept = part[inset[part]]
            score = box_agreement(uv[part], det.box)
            if len(kept) >= config.min_points and score > best_score:
                best, best_score = wide[kept], score
    return best, ground.height(xyz[best, :2])


def camera_position(camera: Camera) -> np.ndarray:
    """The camera's optical centre in the reference frame."""
    m = camera.cam_from_ref
    return -m[:3, :3].T @ m[:3, 3]


def complete_to_prior(centre: np.ndarray, size: np.ndarray, yaw: float, mean: np.ndarray,
                      viewer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grow a visible-face rectangle to at least the class's mean sides, away from the viewer: LiDAR sees
    the near faces only, so the hidden part of the object lies behind them."""
    directions = axes(yaw)
    grown = np.maximum(size, mean)
    away = np.sign((centre - viewer) @ directions.T)
    return centre + ((grown - size) / 2 * away) @ directions, grown


def lift_detection(xyz: np.ndarray, ground: GroundMap, camera: Camera, det: Detection2D,
                   config: ProxyConfig) -> ProxyBox | None:
    """The proxy box of one detection, or None when too few points survive or the size is implausible."""
    prior = size_prior(det.label)
    obj, floor = object_points(xyz, ground, camera, det, config, prior)
    if len(obj) < config.min_points:
        return None
    pts = xyz[obj]
    centre, (length, width), yaw = fit_rectangle(pts[:, :2])
    if prior is not None:
        centre, (length, width) = complete_to_prior(centre, np.array([length, width]), yaw, prior[0],
                                                    camera_position(camera)[:2])
    bottom, top = float(np.median(floor)), float(pts[:, 2].max())
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

    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * np.asarray(size[:2]) / 2
    return Polygon(half @ axes(yaw) + np.asarray(center[:2]))


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
