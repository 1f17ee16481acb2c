"""A detector's nuScenes detection-submission results file -> boxes in the LiDAR frame.

Format (nuScenes detection challenge): {'meta': {...}, 'results': {sample_token: [{'sample_token',
'translation' (global, m), 'size' (w, l, h), 'rotation' (w, x, y, z), 'velocity', 'detection_name',
'detection_score', 'attribute_name'}, ...]}}. Replaying your own detector through the node means
writing its results into the bag in place of the ground-truth boxes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blendclip_core.geometry import Boxes

log = logging.getLogger(__name__)

REQUIRED = ('translation', 'size', 'rotation', 'detection_name', 'detection_score')


class DetectionsFormatError(ValueError):
    """The file is not a nuScenes detection-submission results file."""


@dataclass
class DetectionResults:
    """Per-sample raw detections plus a count of entries skipped as malformed."""

    by_sample: dict[str, list[dict]]
    meta: dict = field(default_factory=dict)
    skipped: int = 0

    @classmethod
    def load(cls, path: str | Path) -> DetectionResults:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DetectionsFormatError(f'{path}: cannot read results JSON: {exc}') from exc
        if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
            raise DetectionsFormatError(f"{path}: expected an object with a 'results' mapping")
        return cls({str(k): list(v) for k, v in data['results'].items()}, data.get('meta') or {})

    def boxes(self, sample_token: str, global_to_lidar, frame_id: str, min_score: float = 0.0) -> Boxes:
        """This sample's detections with score >= min_score, in the LiDAR frame (ids 'det<i>', i the
        entry's index in the file, so a box can be traced back)."""
        keep, ids = [], []
        for i, det in enumerate(self.by_sample.get(sample_token, [])):
            if not _well_formed(det):
                self.skipped += 1
                log.warning('sample %s: skipping malformed detection %d', sample_token, i)
                continue
            if float(det['detection_score']) >= min_score:
                keep.append(det)
                ids.append(f'det{i}')
        if not keep:
            return Boxes.empty(frame_id)
        centers = np.array([d['translation'] for d in keep], dtype=np.float64)
        wlh = np.array([d['size'] for d in keep], dtype=np.float64)
        quats = np.array([[d['rotation'][1], d['rotation'][2], d['rotation'][3], d['rotation'][0]]
                          for d in keep], dtype=np.float64)
        boxes = Boxes(centers, wlh[:, [1, 0, 2]], quats, tuple(ids), 'map',
                      tuple(str(d['detection_name']) for d in keep),
                      np.array([float(d['detection_score']) for d in keep]))
        return boxes.transformed(global_to_lidar.rotation, global_to_lidar.translation, frame_id)


def _well_formed(det) -> bool:
    if not isinstance(det, dict) or any(k not in det for k in REQUIRED):
        return False
    try:
        shapes = [np.asarray(det[k], dtype=np.float64).shape for k in ('translation', 'size', 'rotation')]
        score = float(det['detection_score'])
    except (TypeError, ValueError):
        return False
    return shapes == [(3,), (3,), (4,)] and np.isfinite(score)
