"""Proxy triplets of one frame: lifted 2D detections -> (points, camera crop, caption) with provenance.

The same Triplet and shard format as annotated mining; `label` is the detector's text, `label_coarse`
its nuScenes-10 class where it names one, and `meta.proxy` says which detection made it.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace

import numpy as np

from blendclip_core.data.triplet import REAL, Triplet
from blendclip_core.datasets.classes import nuscenes_class
from blendclip_core.datasets.frame import Frame
from blendclip_core.mining.captioners import CaptionInput, caption_batch
from blendclip_core.mining.lifting import lift_frame
from blendclip_core.mining.proxy import ProxyBox, ProxyConfig
from blendclip_core.mining.sweeps import POINT_CHANNELS, crop_sweeps, frame_sweeps

FIT_SLACK = 0.02  # metres: the fitted box touches its extreme points; float32 points must stay inside


def proxy_config(mine) -> ProxyConfig:
    return replace(ProxyConfig(), min_score=mine.proxy_min_score,
                   min_points=max(mine.min_points, ProxyConfig.min_points))


def _crop(frame: Frame, box: ProxyBox, quality: int) -> bytes | None:
    from PIL import Image

    camera = next(c for c in frame.cameras if c.channel == box.camera)
    try:
        with Image.open(camera.path) as im:
            crop = im.convert('RGB').crop(tuple(int(round(v)) for v in box.detection.box))
    except (OSError, ValueError):
        return None
    buf = io.BytesIO()
    crop.save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


def _meta(frame: Frame, box: ProxyBox, mine, split: str, num_points: int, sweeps: int) -> dict:
    det = box.detection
    return {'dataset': mine.dataset, 'split': split, 'scene': frame.scene, 'sample_token': frame.token,
            'timestamp': frame.timestamp_us, 'num_points': num_points, 'sweeps': sweeps, 'void': False,
            'channels': list(POINT_CHANNELS), 'camera': box.camera,
            'image_status': 'ok', 'crop_rect': [round(v, 1) for v in det.box],
            'box': {'frame': frame.reference, 'center': [round(float(c), 4) for c in box.center],
                    'size_lwh': [round(float(s), 4) for s in box.size_lwh], 'yaw': round(box.yaw, 5)},
            'proxy': {'detector': mine.proxy, 'label': det.label, 'score': round(det.score, 4),
                      'box_2d': [round(v, 1) for v in det.box], 'camera': box.camera,
                      'cluster_points': box.num_points}}


def mine_proxy_frame(frame: Frame, mine, detector, captioner,
                     split: str = '') -> tuple[list[Triplet], Counter]:
    """Triplets of the frame's lifted detections, and {reason: detections} for those that gave none."""
    stack = frame_sweeps(frame)
    boxes, dropped = lift_frame(stack.points[:, :3].astype(np.float64), frame, detector, proxy_config(mine))
    skips = Counter({'proxy_not_lifted': dropped} if dropped else {})
    if not boxes:
        return [], skips
    objects = crop_sweeps(stack, np.stack([b.center for b in boxes]), np.stack([b.size_lwh for b in boxes]),
                          np.stack([b.rotation for b in boxes]), None, mine.margin + FIT_SLACK)
    kept = [(b, p) for b, p in zip(boxes, objects) if len(p) >= proxy_config(mine).min_points]
    skips['too_few_points'] += len(boxes) - len(kept)
    images = [_crop(frame, b, mine.jpeg_quality) for b, _ in kept]
    inputs = [CaptionInput(b.detection.label.replace(' ', '_'), (), tuple(float(s) for s in b.size_lwh), im)
              for (b, _), im in zip(kept, images)]
    captions = caption_batch(captioner, inputs) if inputs else []
    triplets = []
    for i, ((box, pts), image, caption) in enumerate(zip(kept, images, captions)):
        meta = _meta(frame, box, mine, split, len(pts), stack.num_sweeps)
        if image is None:
            meta['image_status'] = 'missing_image'
        triplets.append(Triplet(key=f'proxy-{frame.token}-{box.camera}-{i:03d}', points=pts, caption=caption,
                                label=box.detection.label,
                                label_coarse=nuscenes_class(box.detection.label) or '', domain=REAL,
                                image=image, meta=meta))
    return triplets, +skips
