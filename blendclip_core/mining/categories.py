"""Fine dataset categories -> benchmark classes, and which categories are void.

The maps are the devkits' own default detection mappings (nuscenes-devkit and truckscenes-devkit
`eval.detection.utils.category_to_detection_name`, tests keep them equal), held here as data so the
core does not need the devkits. A void category maps to '' : its objects are mined and kept in the
shards (an open vocabulary can use them) but flagged, and benchmarks leave them out.
"""

from __future__ import annotations

NUSCENES_CLASSES = ('barrier', 'bicycle', 'bus', 'car', 'construction_vehicle', 'motorcycle', 'pedestrian',
                    'traffic_cone', 'trailer', 'truck')

NUSCENES_TO_DETECTION = {
    'movable_object.barrier': 'barrier',
    'vehicle.bicycle': 'bicycle',
    'vehicle.bus.bendy': 'bus',
    'vehicle.bus.rigid': 'bus',
    'vehicle.car': 'car',
    'vehicle.construction': 'construction_vehicle',
    'vehicle.motorcycle': 'motorcycle',
    'human.pedestrian.adult': 'pedestrian',
    'human.pedestrian.child': 'pedestrian',
    'human.pedestrian.construction_worker': 'pedestrian',
    'human.pedestrian.police_officer': 'pedestrian',
    'movable_object.trafficcone': 'traffic_cone',
    'vehicle.trailer': 'trailer',
    'vehicle.truck': 'truck',
}

TRUCKSCENES_CLASSES = ('animal', 'barrier', 'bicycle', 'bus', 'car', 'motorcycle', 'other_vehicle',
                       'pedestrian', 'traffic_cone', 'traffic_sign', 'trailer', 'truck')

TRUCKSCENES_TO_DETECTION = {
    'animal': 'animal',
    'movable_object.barrier': 'barrier',
    'vehicle.bicycle': 'bicycle',
    'vehicle.bus.bendy': 'bus',
    'vehicle.bus.rigid': 'bus',
    'vehicle.car': 'car',
    'vehicle.motorcycle': 'motorcycle',
    'vehicle.construction': 'other_vehicle',
    'vehicle.other': 'other_vehicle',
    'human.pedestrian.adult': 'pedestrian',
    'human.pedestrian.child': 'pedestrian',
    'human.pedestrian.construction_worker': 'pedestrian',
    'human.pedestrian.police_officer': 'pedestrian',
    'movable_object.trafficcone': 'traffic_cone',
    'static_object.traffic_sign': 'traffic_sign',
    'vehicle.ego_trailer': 'trailer',
    'vehicle.trailer': 'trailer',
    'vehicle.truck': 'truck',
}

DETECTION_MAPS = {'nuscenes': NUSCENES_TO_DETECTION, 'truckscenes': TRUCKSCENES_TO_DETECTION}
CLASSES = {'nuscenes': NUSCENES_CLASSES, 'truckscenes': TRUCKSCENES_CLASSES}


def coarse_label(category: str, dataset: str = 'nuscenes') -> str:
    """Benchmark class of a fine category, '' when it is void (ambulance, debris, animal in nuScenes...)."""
    if dataset not in DETECTION_MAPS:
        raise ValueError(f'unknown dataset {dataset!r}; choose one of {sorted(DETECTION_MAPS)}')
    return DETECTION_MAPS[dataset].get(category, '')


def is_void(category: str, dataset: str = 'nuscenes') -> bool:
    return not coarse_label(category, dataset)


# Words for captions: the last resort is the category's last dotted part with '_' as spaces.
NOUNS = {
    'animal': 'animal',
    'human.pedestrian.adult': 'pedestrian',
    'human.pedestrian.child': 'child',
    'human.pedestrian.construction_worker': 'construction worker',
    'human.pedestrian.personal_mobility': 'person on a personal mobility vehicle',
    'human.pedestrian.police_officer': 'police officer',
    'human.pedestrian.stroller': 'stroller',
    'human.pedestrian.wheelchair': 'wheelchair',
    'movable_object.barrier': 'barrier',
    'movable_object.debris': 'piece of debris',
    'movable_object.pushable_pullable': 'pushable cart',
    'movable_object.trafficcone': 'traffic cone',
    'static_object.bicycle_rack': 'bicycle rack',
    'static_object.traffic_sign': 'traffic sign',
    'vehicle.bicycle': 'bicycle',
    'vehicle.bus.bendy': 'bendy bus',
    'vehicle.bus.rigid': 'bus',
    'vehicle.car': 'car',
    'vehicle.construction': 'construction vehicle',
    'vehicle.emergency.ambulance': 'ambulance',
    'vehicle.emergency.police': 'police car',
    'vehicle.ego_trailer': 'trailer',
    'vehicle.motorcycle': 'motorcycle',
    'vehicle.other': 'vehicle',
    'vehicle.trailer': 'trailer',
    'vehicle.truck': 'truck',
}


def noun(category: str) -> str:
    return NOUNS.get(category) or category.rsplit('.', 1)[-1].replace('_', ' ')
