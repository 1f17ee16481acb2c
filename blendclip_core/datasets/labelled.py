"""One way in for labelled real frames: `read_labelled_frames(source, boxes=None)` yields `Frame`s whose
`points`, `boxes` and `labels` (nuScenes-10 class or None) are what evaluation and labelling need.

`source` is a folder or file a registered reader claims (datasets.FILE_FORMATS: KITTI, AV2, the
nuScenes sample), or, with `boxes`, a points file (points.POINT_SUFFIXES: .pcd.bin, .bin, .npy, .pcd,
.feather) and its boxes: a KITTI label_2 .txt (calib from ../calib/<id>.txt), an AV2 annotations JSON
or a simple JSON box list (files.read_box_list).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

from blendclip_core.datasets import FILE_FORMATS
from blendclip_core.datasets.files import FileFormat, UnknownFormatError, read_box_list, single_sweep_frame
from blendclip_core.datasets.frame import DatasetNotFoundError, Frame
from blendclip_core.datasets.points import POINT_SUFFIXES, read_points

USER_REFERENCE = 'sensor'  # frame name of a user's points file (boxes are in the same frame)


def get_file_format(name: str) -> FileFormat:
    if name not in FILE_FORMATS:
        raise ValueError(f'unknown file format {name!r}; choose one of {sorted(FILE_FORMATS)}')
    module, attribute = FILE_FORMATS[name]
    return getattr(importlib.import_module(module), attribute)


def detect_format(path: Path) -> FileFormat:
    """The first registered reader that claims `path`; UnknownFormatError saying what each reads."""
    formats = [get_file_format(name) for name in FILE_FORMATS]
    found = next((f for f in formats if f.claims(path)), None)
    if found is None:
        accepted = '; '.join(f'{f.name}: {f.accepts}' for f in formats)
        raise UnknownFormatError(f'{path}: no reader recognises it (alone it must be {accepted}; or give a '
                                 f'points file ({POINT_SUFFIXES}) with a boxes file)')
    return found


def _is_av2_json(path: Path) -> bool:
    from blendclip_core.datasets.av2 import ANNOTATIONS_SUFFIX

    if path.name.endswith(ANNOTATIONS_SUFFIX):
        return True
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    objects = content.get('objects') if isinstance(content, dict) else None
    return bool(objects) and isinstance(objects[0], dict) and 'track_uuid' in objects[0]


def _points_and_boxes(points: Path, boxes: Path) -> Frame:
    if not boxes.is_file():
        raise DatasetNotFoundError(f'boxes file missing: {boxes}')
    if boxes.suffix == '.txt':
        from blendclip_core.datasets.kitti import read_label_frame
        return read_label_frame(boxes, points=points)
    if _is_av2_json(boxes):
        from blendclip_core.datasets.av2 import read_annotations_json
        return read_annotations_json(boxes, points)
    annotations = read_box_list(boxes)
    return single_sweep_frame('points', points.name, read_points(points), annotations, USER_REFERENCE,
                              points.name)


def read_labelled_frames(source: str | Path, boxes: str | Path | None = None) -> Iterator[Frame]:
    """Labelled frames of `source` (see the module docstring). DatasetNotFoundError for a missing path,
    UnknownFormatError for one no reader takes, CorruptInputError for a broken file."""
    source = Path(source)
    if not source.exists():
        raise DatasetNotFoundError(f'no such file or folder: {source}')
    if boxes is not None:
        yield _points_and_boxes(source, Path(boxes))
        return
    yield from detect_format(source).read(source)
