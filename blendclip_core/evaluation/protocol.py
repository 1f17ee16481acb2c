"""Evaluation protocols as data: which classes, how far out, with which prompt.

nuScenes: the 10 detection classes within the detection benchmark's class ranges (50 m vehicles,
40 m pedestrian / motorcycle / bicycle, 30 m traffic cone / barrier), prompt 'point cloud of a {}.'.
TruckScenes (cross-dataset test): 12 classes, 150 m vehicles / 75 m others. Ranges are the devkits'
own `class_range` (detection_cvpr_2019.json, detection_cvpr_2024.json): distance in the ground plane
from the ego vehicle (base_link).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from blendclip_core.vocabulary import NUSCENES_10_NAMES, NUSCENES_EVAL_TEMPLATES, TRUCKSCENES_12_NAMES


def normalise_label(label: str) -> str:
    """'construction_vehicle', 'Construction Vehicle', 'construction-vehicle' -> 'construction vehicle'."""
    return re.sub(r'[\s_\-]+', ' ', label.strip().lower())


@dataclass(frozen=True)
class Protocol:
    """classes: dataset class name -> display name (what is embedded), in the benchmark's order.
    ranges_m: dataset class name -> largest ego distance (m) of an evaluated box.
    templates: prompt templates the protocol embeds the display names with."""

    name: str
    classes: dict[str, str]
    ranges_m: dict[str, float]
    templates: tuple[str, ...] = NUSCENES_EVAL_TEMPLATES

    def __post_init__(self) -> None:
        if set(self.classes) != set(self.ranges_m):
            raise ValueError(f'{self.name}: every class needs a range and vice versa')

    @property
    def class_names(self) -> tuple[str, ...]:
        """Display names, the vocabulary of a closed-set evaluation and the rows of its tables."""
        return tuple(self.classes.values())

    def class_index(self, label: str) -> int:
        """Index of a dataset or display name (any case, '_' or ' '), -1 for anything else."""
        return self._index().get(normalise_label(label), -1)

    def class_indices(self, labels) -> np.ndarray:
        return np.array([self.class_index(lab) for lab in labels], dtype=np.int64)

    def max_range(self, index: np.ndarray) -> np.ndarray:
        """(N,) class indices -> (N,) range limit in metres (NaN for -1)."""
        limits = np.array(list(self.ranges_m.values()) + [np.nan], dtype=np.float64)
        return limits[np.asarray(index, dtype=np.int64)]

    def in_range(self, index: np.ndarray, distance_m: np.ndarray) -> np.ndarray:
        """(N,) bool: a protocol class within its class range (ranges are inclusive)."""
        index = np.asarray(index, dtype=np.int64)
        with np.errstate(invalid='ignore'):
            return (index >= 0) & (np.asarray(distance_m, dtype=np.float64) <= self.max_range(index))

    def _index(self) -> dict[str, int]:
        index = {}
        for i, (dataset_name, display) in enumerate(self.classes.items()):
            index[normalise_label(dataset_name)] = i
            index[normalise_label(display)] = i
        return index


_NUSCENES_RANGES = {'car': 50.0, 'truck': 50.0, 'trailer': 50.0, 'bus': 50.0, 'construction_vehicle': 50.0,
                    'bicycle': 40.0, 'motorcycle': 40.0, 'pedestrian': 40.0, 'traffic_cone': 30.0,
                    'barrier': 30.0}
_TRUCK_VEHICLES = ('car', 'truck', 'bus', 'trailer', 'other_vehicle')

NUSCENES = Protocol('nuscenes', dict(NUSCENES_10_NAMES), _NUSCENES_RANGES)
TRUCKSCENES = Protocol('truckscenes', dict(TRUCKSCENES_12_NAMES),
                       {c: 150.0 if c in _TRUCK_VEHICLES else 75.0 for c in TRUCKSCENES_12_NAMES})
PROTOCOLS = {p.name: p for p in (NUSCENES, TRUCKSCENES)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f'unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}')
    return PROTOCOLS[name]


def rank_labels(labels, protocol: Protocol, k: int, closed_set: bool) -> list[int]:
    """A published ranking -> k class indices. Open (default): labels outside the protocol stay in
    their rank as -1 (a miss). Closed set: they are dropped, which ranks exactly as a classifier
    restricted to the protocol's classes would, as far as the published top-k reaches."""
    idx = [protocol.class_index(lab) for lab in labels]
    if closed_set:
        idx = [i for i in idx if i >= 0]
    return (idx + [-1] * k)[:k]


def ground_distance(centers: np.ndarray) -> np.ndarray:
    """(N, 3) box centres in an ego-attached frame -> (N,) distance in the ground (x, y) plane."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    return np.hypot(centers[:, 0], centers[:, 1])
