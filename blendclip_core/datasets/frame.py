"""The one frame type every dataset reader returns, and the rigid transform its poses are written in.

A `Frame` is what one annotated key frame (a dataset sample) holds, expressed in one reference frame:
the LiDAR sweeps as the files store them (with the transform into the reference and their time lag),
the annotated boxes, and the calibrated cameras. Mining, bag conversion and evaluation read the same
`Frame`; each turns it into what it needs (aggregated sweeps, messages, crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blendclip_core.geometry import Boxes, matrix_to_quaternion, quaternion_to_matrix


class CorruptInputError(ValueError):
    """A sensor file that is missing or unreadable; `reason` is the counted skip reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class DatasetNotFoundError(FileNotFoundError):
    """The dataroot or its table folder does not exist."""


@dataclass(frozen=True)
class Rigid:
    """p_parent = rotation @ p_child + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> Rigid:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_matrix(cls, m) -> Rigid:
        m = np.asarray(m, dtype=np.float64)
        return cls(m[:3, :3], m[:3, 3])

    @classmethod
    def from_wxyz(cls, translation, rotation_wxyz) -> Rigid:
        """nuScenes-format calibrated_sensor / ego_pose records (quaternion w, x, y, z)."""
        w, x, y, z = np.asarray(rotation_wxyz, dtype=np.float64)
        return cls(quaternion_to_matrix(np.array([[x, y, z, w]]))[0], np.asarray(translation, np.float64))

    @property
    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.translation
        return m

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return matrix_to_quaternion(self.rotation[None])[0]

    def inverse(self) -> Rigid:
        return Rigid(self.rotation.T, -self.rotation.T @ self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points of the child frame -> the parent frame (float64)."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def __matmul__(self, other: Rigid) -> Rigid:
        return Rigid(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)


@dataclass(frozen=True)
class Sweep:
    """One LiDAR file of a frame: points as stored, float32 (N, C) with x, y, z, intensity first
    (nuScenes .pcd.bin: C = 5, the ring last; TruckScenes .pcd: C = 4)."""

    channel: str
    points: np.ndarray
    ref_from_sensor: Rigid  # the sensor at its own time -> the frame's reference
    time_lag: float  # seconds this sweep is older than the reference time (>= 0)
    filename: str
    key: bool  # the channel's key sweep (else an older one along its `prev` chain)


@dataclass(frozen=True)
class Annotation:
    """One annotated box in the frame's reference."""

    token: str
    category: str  # the dataset's fine category ('' where the source has none)
    detection_class: str  # the benchmark class ('' outside them)
    center: np.ndarray  # (3,)
    quaternion: np.ndarray  # (4,) x, y, z, w: box-to-reference
    size_lwh: np.ndarray  # (3,) length, width, height
    velocity: np.ndarray  # (3,) in the reference, zeros when unknown
    velocity_valid: bool = False
    instance_token: str = ''
    attributes: tuple[str, ...] = ()
    visibility: int = 0  # dataset visibility level (nuScenes 1..4), 0 when unknown
    distance: float = float('nan')  # xy distance from the ego origin, metres
    num_lidar_pts: int = -1  # what the dataset says (key frame only)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) box-to-reference (NaN for an unusable quaternion)."""
        return quaternion_to_matrix(self.quaternion[None])[0]


@dataclass(frozen=True)
class Camera:
    """A calibrated camera image of the frame (`jpeg` only when the reader was asked for images)."""

    channel: str
    path: Path
    stamp_ns: int
    intrinsic: np.ndarray  # (3, 3)
    cam_from_ref: np.ndarray  # (4, 4) reference -> camera at the image's own time
    sensor_to_ego: Rigid
    ego_to_global: Rigid | None = None  # ego pose at the image's time, when known
    width: int = 0
    height: int = 0
    jpeg: bytes = b''


@dataclass(frozen=True)
class Frame:
    """One annotated key frame in its reference frame (a LiDAR's at its key time, or the ego's)."""

    dataset: str
    token: str  # sample token
    scene: str
    timestamp_us: int  # the sample's time
    stamp_ns: int  # the reference time (the reference LiDAR's key sweep): message stamps
    reference: str  # name of the reference frame ('LIDAR_TOP', 'ego', ...)
    reference_to_ego: Rigid
    ego_to_global: Rigid  # ego pose at the reference time
    sweeps: tuple[Sweep, ...]  # the reference LiDAR's key sweep first (when it has one)
    annotations: tuple[Annotation, ...]
    cameras: tuple[Camera, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (reason, file) of sweeps that could not be read

    @property
    def boxes(self) -> Boxes:
        """The annotations as Boxes in the reference; ids = tokens, detector_labels = fine categories."""
        anns = self.annotations
        if not anns:
            return Boxes.empty(self.reference)
        return Boxes(np.stack([a.center for a in anns]), np.stack([a.size_lwh for a in anns]),
                     np.stack([a.quaternion for a in anns]), tuple(a.token for a in anns), self.reference,
                     tuple(a.category for a in anns))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(a.detection_class for a in self.annotations)

    @property
    def labels(self) -> tuple[str | None, ...]:
        """The benchmark class of each box, None outside them (what real-data evaluation reads)."""
        return tuple(a.detection_class or None for a in self.annotations)

    @property
    def points(self) -> np.ndarray:
        """float32 (N, >= 4) x, y, z, intensity first, every sweep moved into the reference: the cloud a
        labeller crops the boxes from (a single sweep already in the reference is returned as read)."""
        if len(self.sweeps) == 1 and np.array_equal(self.sweeps[0].ref_from_sensor.matrix, np.eye(4)):
            return self.sweeps[0].points
        parts = [np.column_stack([s.ref_from_sensor.apply(s.points[:, :3]), s.points[:, 3:4]])
                 for s in self.sweeps]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 4), np.float32)

    @property
    def num_lidar_points(self) -> np.ndarray:
        return np.array([a.num_lidar_pts for a in self.annotations], dtype=np.int64)
