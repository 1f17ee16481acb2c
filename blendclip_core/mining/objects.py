"""One key frame -> Triplets: the dataset-independent part of mining.

The dataset readers (blendclip_core.datasets) turn a sample into a `Frame`: sweeps with their transform
into a reference frame, annotations as boxes in that frame, and calibrated cameras. `mine_frame` crops the
points (motion compensated), picks the image crop, captions and labels every box, and says why the
boxes it drops were dropped.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from blendclip_core.data.triplet import REAL, Triplet
from blendclip_core.datasets.frame import Annotation, Camera, Frame
from blendclip_core.mining.captioners import CaptionInput, caption_batch
from blendclip_core.mining.categories import coarse_label
from blendclip_core.mining.sweeps import POINT_CHANNELS, crop_sweeps, frame_sweeps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MineConfig:
    """What `blendclip-mine` does; recorded in the index (a resumed run must use the same)."""

    dataset: str = 'nuscenes'  # 'nuscenes' or 'truckscenes' (class mapping, reader)
    sweeps: int = 10  # LiDAR sweeps aggregated per key frame (key frame included)
    motion_comp: bool = True  # move each object's sweeps by its annotated velocity
    margin: float = 0.0  # metres added to every face of the box before cropping
    min_visibility: int = 4  # image crop only for annotation visibility level >= this (4 = 80-100 %)
    min_crop_px: int = 50  # image crop only when at least this wide and tall
    min_points: int = 1  # boxes with fewer points (all sweeps) are skipped and counted
    jpeg_quality: int = 90  # of the stored crops
    captioner: str = 'template'  # 'template', 'vlm:/path/to/model_dir', 'module:factory' or a plugin name
    proxy: str = ''  # detector spec: mine proxy triplets from 2D detections, annotations unread (proxy.py)
    proxy_vocabulary: str = ''  # comma-separated texts the detector looks for
    proxy_min_score: float = 0.3  # detections below are not lifted

    def __post_init__(self) -> None:
        if self.sweeps < 1:
            raise ValueError(f'sweeps must be >= 1, got {self.sweeps}')
        if self.min_points < 0 or self.min_crop_px < 1:
            raise ValueError('min_points must be >= 0 and min_crop_px >= 1')


def box_corners(center: np.ndarray, rotation: np.ndarray, size_lwh: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
    return (signs * np.asarray(size_lwh) / 2.0) @ np.asarray(rotation).T + np.asarray(center)


def project_fully_visible(corners_ref: np.ndarray, cam: Camera) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (u0, v0, u1, v1) of the projected box when all corners are in the image.

    Same condition as nuscenes-devkit `box_in_image(..., BoxVisibility.ALL)`: every corner more than
    1 m in front of the camera and strictly inside the image. u1, v1 are exclusive.
    """
    cam_pts = corners_ref @ cam.cam_from_ref[:3, :3].T + cam.cam_from_ref[:3, 3]
    if not (cam_pts[:, 2] > 1.0).all():
        return None
    uv = (cam_pts @ cam.intrinsic.T)[:, :2] / cam_pts[:, 2:3]
    if not ((uv[:, 0] > 0) & (uv[:, 0] < cam.width) & (uv[:, 1] > 0) & (uv[:, 1] < cam.height)).all():
        return None
    u0, v0 = np.floor(uv.min(0)).astype(int)
    u1, v1 = np.ceil(uv.max(0)).astype(int)
    return int(max(u0, 0)), int(max(v0, 0)), int(min(u1, cam.width)), int(min(v1, cam.height))


class _Images:
    """Camera images of one frame, opened once when first needed."""

    def __init__(self, cameras: tuple[Camera, ...]):
        self.cameras = {c.channel: c for c in cameras}
        self.cache: dict = {}

    def get(self, channel: str):
        if channel not in self.cache:
            from PIL import Image

            try:
                with Image.open(self.cameras[channel].path) as im:
                    self.cache[channel] = im.convert('RGB')
            except (OSError, ValueError) as exc:
                logger.warning('camera image %s unreadable: %s', self.cameras[channel].path, exc)
                self.cache[channel] = None
        return self.cache[channel]


def crop_image(ann: Annotation, cameras: tuple[Camera, ...], images: _Images,
               config: MineConfig) -> tuple[bytes | None, dict]:
    """JPEG of the box in the camera where it is fully visible with the largest projected area."""
    if ann.visibility < config.min_visibility:
        return None, {'image_status': 'low_visibility'}
    corners = box_corners(ann.center, ann.rotation, ann.size_lwh)
    best = None
    for cam in cameras:
        rect = project_fully_visible(corners, cam)
        if rect is not None:
            area = (rect[2] - rect[0]) * (rect[3] - rect[1])
            if best is None or area > best[0]:
                best = (area, cam.channel, rect)
    if best is None:
        return None, {'image_status': 'not_fully_visible'}
    _, channel, rect = best
    info = {'camera': channel, 'crop_rect': list(rect)}
    if rect[2] - rect[0] < config.min_crop_px or rect[3] - rect[1] < config.min_crop_px:
        return None, {**info, 'image_status': 'small_crop'}
    image = images.get(channel)
    if image is None:
        return None, {**info, 'image_status': 'missing_image'}
    buf = io.BytesIO()
    image.crop(rect).save(buf, format='JPEG', quality=config.jpeg_quality)
    return buf.getvalue(), {**info, 'image_status': 'ok'}


def valid_annotation(ann: Annotation) -> bool:
    return (np.isfinite(ann.center).all() and np.isfinite(ann.rotation).all()
            and np.isfinite(ann.size_lwh).all() and bool((ann.size_lwh > 0).all()))


def mine_frame(frame: Frame, config: MineConfig, captioner, split: str = '') -> tuple[list[Triplet], Counter]:
    """Triplets of every usable box of the frame, and {skip reason: boxes} for the others."""
    skips: Counter = Counter()
    anns = []
    for ann in frame.annotations:
        if valid_annotation(ann):
            anns.append(ann)
        else:
            skips['invalid_box'] += 1
    if not anns:
        return [], skips
    stack = frame_sweeps(frame)
    rotations = [a.rotation for a in anns]
    velocities = np.stack([a.velocity for a in anns]) if config.motion_comp else None
    objects = crop_sweeps(stack, np.stack([a.center for a in anns]), np.stack([a.size_lwh for a in anns]),
                          np.stack(rotations), velocities, config.margin)
    images = _Images(frame.cameras)
    kept, inputs = [], []
    for ann, rotation, pts in zip(anns, rotations, objects):
        if len(pts) < config.min_points:
            skips['too_few_points'] += 1
            continue
        image, info = crop_image(ann, frame.cameras, images, config)
        kept.append((ann, rotation, pts, image, info))
        inputs.append(CaptionInput(ann.category, tuple(ann.attributes), tuple(float(x) for x in ann.size_lwh),
                                   image))
    captions = caption_batch(captioner, inputs) if inputs else []
    triplets = []
    for (ann, rotation, pts, image, info), caption in zip(kept, captions):
        label_coarse = coarse_label(ann.category, config.dataset)
        meta = {**_meta(frame, ann, rotation, config, split, len(pts), stack.num_sweeps, not label_coarse),
                **info}
        triplets.append(Triplet(key=ann.token, points=pts, caption=caption, label=ann.category,
                                label_coarse=label_coarse, domain=REAL, image=image, meta=meta))
    return triplets, skips


def _meta(frame: Frame, ann: Annotation, rotation: np.ndarray, config: MineConfig, split: str,
          num_points: int, num_sweeps: int, void: bool) -> dict:
    """What a mined object records of its box and sample (rounded: JSON in the shard index)."""
    yaw = float(np.arctan2(rotation[1, 0], rotation[0, 0]))  # heading of the box x axis
    return {
        'dataset': config.dataset, 'split': split, 'scene': frame.scene, 'sample_token': frame.token,
        'annotation_token': ann.token, 'instance_token': ann.instance_token, 'timestamp': frame.timestamp_us,
        'attributes': list(ann.attributes), 'visibility': ann.visibility,
        'distance': round(float(ann.distance), 3), 'num_points': num_points,
        'num_lidar_pts': ann.num_lidar_pts, 'sweeps': num_sweeps, 'motion_comp': config.motion_comp,
        'void': void,
        'velocity': [round(float(v), 4) for v in ann.velocity], 'velocity_valid': ann.velocity_valid,
        'box': {'frame': frame.reference, 'center': [round(float(c), 4) for c in ann.center],
                'size_lwh': [round(float(s), 4) for s in ann.size_lwh], 'yaw': round(yaw, 5)},
        'channels': list(POINT_CHANNELS),
    }
