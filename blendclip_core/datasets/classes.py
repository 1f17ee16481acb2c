"""Dataset class names -> the nuScenes-10 detection classes (dataset names, e.g. 'traffic_cone').

Real-data evaluation labels every box with one of these or None (no nuScenes class fits: a bollard,
a sign, a stroller), whatever dataset it comes from.
"""

from __future__ import annotations

from blendclip_core.evaluation.protocol import normalise_label
from blendclip_core.vocabulary import NUSCENES_10_NAMES

# KITTI object classes (label_2 'type'); Van is a car in nuScenes (vehicle.car holds vans), a Cyclist box
# holds the bicycle and its rider as nuScenes' bicycle does. Tram, Misc, DontCare: none.
KITTI_TO_NUSCENES = {'Car': 'car', 'Van': 'car', 'Truck': 'truck', 'Pedestrian': 'pedestrian',
                     'Person_sitting': 'pedestrian', 'Cyclist': 'bicycle'}

# Argoverse 2 categories (data/av2_sample README); the rest (BOLLARD, SIGN, STROLLER, LARGE_VEHICLE, ...)
# have no nuScenes class.
AV2_TO_NUSCENES = {'REGULAR_VEHICLE': 'car', 'PEDESTRIAN': 'pedestrian', 'BICYCLE': 'bicycle',
                   'MOTORCYCLE': 'motorcycle', 'BUS': 'bus', 'SCHOOL_BUS': 'bus', 'ARTICULATED_BUS': 'bus',
                   'BOX_TRUCK': 'truck', 'TRUCK': 'truck', 'TRUCK_CAB': 'truck',
                   'CONSTRUCTION_CONE': 'traffic_cone', 'VEHICULAR_TRAILER': 'trailer'}

_BY_NORMALISED = {normalise_label(k): k for k in NUSCENES_10_NAMES} | {
    normalise_label(v): k for k, v in NUSCENES_10_NAMES.items()}


def nuscenes_class(label: str | None) -> str | None:
    """A nuScenes-10 name (any spelling), KITTI type or AV2 category -> the nuScenes-10 dataset name."""
    if not label:
        return None
    known = _BY_NORMALISED.get(normalise_label(label))
    return known or KITTI_TO_NUSCENES.get(label) or AV2_TO_NUSCENES.get(label)
