"""Dataset readers: one module per format, each returning the one `Frame` type (datasets.frame).

Mining, bag conversion and evaluation read datasets only through these. A format module offers
`open_db(dataroot, version)`, `split_scene_names(split)` and `read_frame(db, sample_token, sweeps,
scene, ...)`; nuScenes-schema formats share `devkit.py`. A new format (KITTI, AV2, PCD folders) is a
new module here and one line in FORMATS.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FORMATS = {  # name -> module with open_db, split_scene_names, read_frame
    'nuscenes': 'blendclip_core.datasets.nuscenes',
    'truckscenes': 'blendclip_core.datasets.truckscenes',
}


def get_format(name: str) -> ModuleType:
    """The reader module of a dataset format; ValueError naming the known ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f'unknown dataset {name!r}; choose one of {sorted(FORMATS)}')
    return importlib.import_module(FORMATS[name])
