"""Frames to write into a bag: the shared dataset readers (blendclip_core.datasets) over a
nuScenes/TruckScenes dataroot or the single-sweep sample, and the cloud a bag publishes of a frame.

Sources only read (and count what they could not read); nuscenes2bag writes. A bag's reference frame is
always a LiDAR's (the first channel's, at its key time): PointCloud2 and the boxes carry its frame id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blendclip_core.datasets import get_format, nuscenes_sample
from blendclip_core.datasets.frame import CorruptInputError, Frame, Sweep

log = logging.getLogger(__name__)

# x, y, z, intensity as stored (bit-exact for the reference LiDAR's key sweep); nuScenes' ring is an
# integer stored as float, published as uint16 (0 where the file has none, e.g. TruckScenes).
CLOUD_FIELDS = (('x', np.float32), ('y', np.float32), ('z', np.float32), ('intensity', np.float32),
                ('ring', np.uint16))
SWEEP_TIME_FIELD = ('time', np.float32)  # seconds the point's sweep is older than the keyframe
RING_COLUMN = 4


class SourceError(ValueError):
    """A dataroot or sample directory that cannot be read as asked (missing scene, file, channel)."""


def _structured(sweep: Sweep, in_reference: bool, time_field: bool) -> np.ndarray:
    raw = sweep.points
    out = np.zeros(len(raw), dtype=list(CLOUD_FIELDS) + ([SWEEP_TIME_FIELD] if time_field else []))
    for i, (name, _) in enumerate(CLOUD_FIELDS[:4]):
        out[name] = raw[:, i]
    if raw.shape[1] > RING_COLUMN:
        out['ring'] = raw[:, RING_COLUMN].astype(np.uint16)
    if not in_reference:
        xyz = sweep.ref_from_sensor.apply(raw[:, :3])
        out['x'], out['y'], out['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if time_field:
        out['time'] = sweep.time_lag
    return out


def cloud_points(frame: Frame, time_field: bool = False) -> np.ndarray:
    """Structured points (CLOUD_FIELDS [+ SWEEP_TIME_FIELD]) of every sweep in the frame's reference;
    the reference LiDAR's key sweep keeps the stored values bit for bit."""
    clouds = [_structured(s, s.key and s.channel == frame.reference, time_field) for s in frame.sweeps]
    return np.concatenate(clouds) if len(clouds) > 1 else clouds[0]


class DevkitSource:
    """Keyframes of the chosen scenes of a nuScenes-format dataroot, in time order."""

    def __init__(self, db, dataset: str = 'nuscenes', scenes: tuple[str, ...] = (), sweeps: int = 1,
                 lidar_channels: tuple[str, ...] = (), cameras: bool = False) -> None:
        if sweeps < 1:
            raise SourceError(f'sweeps must be >= 1, got {sweeps}')
        self.db, self.reader, self.sweeps, self.cameras = db, get_format(dataset), sweeps, cameras
        self.lidar_channels = tuple(lidar_channels)
        by_name = {s['name']: s for s in db.scene}
        missing = [s for s in scenes if s not in by_name]
        if missing:
            raise SourceError(f'scenes not in the dataroot: {missing}; it has {sorted(by_name)}')
        self.scenes = [by_name[s] for s in scenes] if scenes else list(db.scene)
        self.skipped_frames = 0  # keyframes left out because their LiDAR file is missing or corrupt
        self.skipped_frame_reasons: list[str] = []  # one line per skipped keyframe: sample, scene, why
        self.skipped_sweeps = 0  # older sweeps left out of an accumulation for the same reason

    @classmethod
    def open(cls, dataset: str, dataroot: str | Path, version: str, **kwargs) -> DevkitSource:
        try:
            reader = get_format(dataset)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        return cls(reader.open_db(dataroot, version), dataset, **kwargs)

    @property
    def time_field(self) -> bool:
        return self.sweeps > 1

    def __len__(self) -> int:
        return sum(s['nbr_samples'] for s in self.scenes)

    def __iter__(self) -> Iterator[Frame]:
        for scene in self.scenes:
            token = scene['first_sample_token']
            while token:
                sample = self.db.get('sample', token)
                token = sample['next']
                try:
                    frame = self.reader.read_frame(self.db, sample['token'], self.sweeps, scene['name'],
                                                   reference='lidar', channels=self.lidar_channels,
                                                   cameras=self.cameras, images=self.cameras)
                except (SourceError, CorruptInputError, OSError) as exc:
                    self.skipped_frames += 1
                    self.skipped_frame_reasons.append(f'sample {sample["token"]} of {scene["name"]}: {exc}')
                    log.warning('skipping sample %s of %s: %s', sample['token'], scene['name'], exc)
                    continue
                for reason, filename in frame.skipped:
                    # A lost older sweep only thins the accumulation; the keyframe stays.
                    self.skipped_sweeps += 1
                    log.warning('leaving sweep %s out of sample %s: %s', filename, sample['token'], reason)
                yield frame


class SampleDirSource:
    """The single real keyframe of data/nuscenes_sample (pcd.bin + annotations_lidar.json)."""

    time_field = False

    def __init__(self, directory: str | Path, cameras: bool = False, lidar_frame: str = 'LIDAR_TOP') -> None:
        self.directory = Path(directory)
        if not (self.directory / nuscenes_sample.ANNOTATIONS).is_file():
            raise SourceError(f'{self.directory} has no {nuscenes_sample.ANNOTATIONS}')
        self.cameras, self.lidar_frame = cameras, lidar_frame

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Frame]:
        yield nuscenes_sample.read_frame(self.directory, self.cameras, self.cameras, self.lidar_frame)

