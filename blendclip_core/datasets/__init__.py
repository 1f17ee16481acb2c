"""Dataset readers: one module per format, each returning the one `Frame` type (datasets.frame).

Mining, bag conversion and evaluation read datasets only through these. A format is an object with
`open_db(dataroot, version)`, `split_scene_names(split)` and `read_frame(db, sample_token, sweeps,
scene, ...)`; the nuScenes-schema formats are `devkit.Format`s. A new format (KITTI, AV2, PCD folders)
is a new module here and one line in FORMATS.

Labelled frames from files (a folder, a file, or a points file with its boxes file) are read by
`datasets.labelled.read_labelled_frames`; FILE_FORMATS lists its readers (`files.FileFormat`s), tried
in this order.
"""

from __future__ import annotations

import importlib

FORMATS = {  # name -> (module, its format object with open_db, split_scene_names, read_frame)
    'nuscenes': ('blendclip_core.datasets.nuscenes', 'NUSCENES'),
    'truckscenes': ('blendclip_core.datasets.truckscenes', 'TRUCKSCENES'),
}

FILE_FORMATS = {  # name -> (module, its files.FileFormat): labelled frames from files
    'kitti': ('blendclip_core.datasets.kitti', 'KITTI'),
    'av2': ('blendclip_core.datasets.av2', 'AV2'),
    'nuscenes_sample': ('blendclip_core.datasets.nuscenes_sample', 'NUSCENES_SAMPLE'),
}


def get_format(name: str):
    """The reader of a dataset format; ValueError naming the known ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f'unknown dataset {name!r}; choose one of {sorted(FORMATS)}')
    module, attribute = FORMATS[name]
    return getattr(importlib.import_module(module), attribute)
