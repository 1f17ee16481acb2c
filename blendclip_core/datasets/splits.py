"""The real-data splits, fixed here and nowhere else (read by real-data evaluation, the trainer and the
model card).

AV2 log 7fab2350 (both sweeps) is the only real training data; the dev set is AV2 logs adcf7d18 and
02a00399, the nuScenes sample sweep and KITTI 000008. Never train, tune thresholds or pick
checkpoints on anything outside the training share. Paths are relative to the real-data root,
../shared/data beside the repository (BLENDCLIP_REAL_DATA overrides it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blendclip_core.datasets.frame import DatasetNotFoundError, Frame

DATA_ENV = 'BLENDCLIP_REAL_DATA'
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / 'shared' / 'data'


@dataclass(frozen=True)
class Member:
    """One labelled source of a split: which benchmark source it counts for and where it lies."""

    source: str  # 'av2', 'nuscenes', 'kitti': the per-source rows of the evaluation
    path: str  # relative to the data root; read with datasets.labelled.read_labelled_frames


SPLITS: dict[str, tuple[Member, ...]] = {
    'train': (Member('av2', 'av2_sample/7fab2350_315966265259836000_annotations.json'),
              Member('av2', 'av2_sample/7fab2350_315966265360032000_annotations.json')),
    'dev': (Member('av2', 'av2_sample/adcf7d18_315973157959879000_annotations.json'),
            Member('av2', 'av2_sample/02a00399_315966070559696000_annotations.json'),
            Member('nuscenes', 'nuscenes_sample'),
            Member('kitti', 'kitti_sample/000008.pkl')),
}


def data_root(root: str | Path | None = None) -> Path:
    """`root`, else $BLENDCLIP_REAL_DATA, else ../shared/data beside the repository."""
    return Path(root or os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT)


def split_members(split: str) -> tuple[Member, ...]:
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; choose one of {sorted(SPLITS)}')
    return SPLITS[split]


def missing_files(split: str, root: str | Path | None = None) -> list[Path]:
    """The split's paths absent under the data root (empty when it is all there)."""
    root = data_root(root)
    return [root / m.path for m in split_members(split) if not (root / m.path).exists()]


def split_frames(split: str, root: str | Path | None = None) -> Iterator[tuple[str, Frame]]:
    """(source, frame) of every frame of a split; DatasetNotFoundError naming what is missing."""
    from blendclip_core.datasets.labelled import read_labelled_frames

    missing = missing_files(split, root)
    if missing:
        raise DatasetNotFoundError(f'real data of split {split!r} missing: {", ".join(map(str, missing))} '
                                   f'(set {DATA_ENV} to the folder holding av2_sample/ etc.)')
    for member in split_members(split):
        for frame in read_labelled_frames(data_root(root) / member.path):
            yield member.source, frame
