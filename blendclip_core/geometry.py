"""3D boxes and the rotations between box and sensor frames.

Boxes are the core type shared by the node (our box messages, vision_msgs), the bag tools and the
miners. Orientation is kept as a full quaternion so that poses round-trip exactly through messages;
`yaws` is derived for the common z-up case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A box larger than these is no road object but a unit error (millimetres) or a hostile message; such
# boxes are INVALID_BOX, so one frame's crop cost cannot grow with its box sizes (issue #14).
MAX_BOX_SIZE = 30.0  # metres, any of length, width, height (an articulated truck is about 25 m long)
MAX_BOX_VOLUME = 2000.0  # cubic metres (a 25 x 3 x 4.5 m truck is about 340)
MIN_QUATERNION_NORM = 1e-9  # shorter quaternions carry no usable orientation
# Quaternions whose largest component lies outside this range are scaled by it before normalising, so
# squaring neither overflows (1e300) nor underflows; inside it the arithmetic is unchanged (bit-identical).
_SAFE_QUATERNION_RANGE = (1e-150, 1e150)


class InvalidBoxesError(ValueError):
    """Box arrays whose shapes or values cannot describe boxes."""


def _rescaled(q: np.ndarray) -> np.ndarray:
    """q with rows of extreme magnitude made unit length (scaled by their largest |component| first);
    other rows untouched, so ordinary quaternions keep their exact bits."""
    big = np.max(np.abs(q), axis=-1, keepdims=True)
    lo, hi = _SAFE_QUATERNION_RANGE
    extreme = np.isfinite(big) & (big > 0) & ((big < lo) | (big > hi))
    if not extreme.any():
        return q
    with np.errstate(invalid='ignore', divide='ignore'):
        scaled = q / np.where(extreme, big, 1.0)
        return np.where(extreme, scaled / np.linalg.norm(scaled, axis=-1, keepdims=True), q)


def quaternion_norm(q: np.ndarray) -> np.ndarray:
    """(N,) Euclidean norms of (N, 4) quaternions, without overflow or underflow for huge/tiny ones."""
    q = np.asarray(q, dtype=np.float64)
    big = np.max(np.abs(q), axis=-1)
    with np.errstate(invalid='ignore', divide='ignore', over='ignore'):  # 1e308 * 2 -> inf: still > 0
        unit = q / np.where(big > 0, big, 1.0)[..., None]
        return np.where(big > 0, big * np.linalg.norm(unit, axis=-1), 0.0)


def yaw_to_quaternion(yaw: np.ndarray) -> np.ndarray:
    """(N,) yaw about +z -> (N, 4) quaternions (x, y, z, w)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.zeros(yaw.shape + (4,), dtype=np.float64)
    q[..., 2] = np.sin(yaw / 2.0)
    q[..., 3] = np.cos(yaw / 2.0)
    return q


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w), normalised here -> (N, 3, 3) rotation matrices."""
    q = _rescaled(np.asarray(q, dtype=np.float64))
    with np.errstate(invalid='ignore', divide='ignore'):  # zero/NaN rows (invalid boxes) give NaN
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def quaternion_to_yaw(q: np.ndarray) -> np.ndarray:
    """Heading about +z of (N, 4) quaternions (x, y, z, w), normalised here where not unit."""
    q = _rescaled(np.asarray(q, dtype=np.float64))
    # the formula below assumes unit length; rows that are unit already keep their exact bits
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    off = (np.abs(norm - 1.0) > 1e-12) & (norm > 0)
    with np.errstate(invalid='ignore'):  # NaN rows stay NaN
        q = np.where(off, q / np.where(off, norm, 1.0), q)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


@dataclass(frozen=True)
class Boxes:
    """N oriented 3D boxes in one frame.

    centers: (N, 3) geometric centres, metres.
    sizes: (N, 3) length (along the box x axis), width, height, metres.
    quaternions: (N, 4) orientation of the box in `frame_id`, (x, y, z, w).
    ids: N strings, echoed into every output so results can be matched to inputs.
    detector_labels / detector_scores: what the upstream detector said, if anything
        ('' and NaN where it said nothing).
    """

    centers: np.ndarray
    sizes: np.ndarray
    quaternions: np.ndarray
    ids: tuple[str, ...]
    frame_id: str = ''
    detector_labels: tuple[str, ...] = field(default=())
    detector_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name, width in (('centers', 3), ('sizes', 3), ('quaternions', 4)):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n, width):
                raise InvalidBoxesError(f'{name} must have shape ({n}, {width}), got {arr.shape}')
            object.__setattr__(self, name, arr)
        if not self.detector_labels:
            object.__setattr__(self, 'detector_labels', ('',) * n)
        if len(self.detector_labels) != n:
            raise InvalidBoxesError('detector_labels must have one entry per box')
        scores = self.detector_scores
        scores = np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise InvalidBoxesError(f'detector_scores must have shape ({n},), got {scores.shape}')
        object.__setattr__(self, 'detector_scores', scores)
        object.__setattr__(self, 'ids', tuple(str(i) for i in self.ids))

    @classmethod
    def from_yaw(cls, centers, sizes, yaws, ids=None, frame_id: str = '', **kwargs) -> Boxes:
        yaws = np.asarray(yaws, dtype=np.float64).reshape(-1)
        if ids is None:
            ids = tuple(str(i) for i in range(len(yaws)))
        return cls(np.asarray(centers).reshape(-1, 3), np.asarray(sizes).reshape(-1, 3),
                   yaw_to_quaternion(yaws), tuple(ids), frame_id, **kwargs)

    @classmethod
    def empty(cls, frame_id: str = '') -> Boxes:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), (), frame_id)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def yaws(self) -> np.ndarray:
        return quaternion_to_yaw(self.quaternions)

    @property
    def rotations(self) -> np.ndarray:
        """(N, 3, 3) box-to-frame rotation matrices."""
        return quaternion_to_matrix(self.quaternions)

    def valid_mask(self, max_size: float | None = MAX_BOX_SIZE,
                   max_volume: float | None = MAX_BOX_VOLUME) -> np.ndarray:
        """Boxes that can hold points: finite pose, positive size no larger than `max_size` on any
        axis and `max_volume` in all (None: no bound), quaternion of norm > MIN_QUATERNION_NORM."""
        finite = (np.isfinite(self.centers).all(1) & np.isfinite(self.sizes).all(1)
                  & np.isfinite(self.quaternions).all(1))
        ok = finite & (self.sizes > 0).all(1)
        if max_size is not None:
            ok &= (self.sizes <= max_size).all(1)
        if max_volume is not None:
            with np.errstate(over='ignore'):
                ok &= np.prod(self.sizes, axis=1) <= max_volume
        return ok & (quaternion_norm(np.nan_to_num(self.quaternions)) > MIN_QUATERNION_NORM)

    def subset(self, index) -> Boxes:
        index = np.arange(len(self))[index]
        return Boxes(self.centers[index], self.sizes[index], self.quaternions[index],
                     tuple(self.ids[i] for i in index), self.frame_id,
                     tuple(self.detector_labels[i] for i in index), self.detector_scores[index])

    def transformed(self, rotation: np.ndarray, translation: np.ndarray, frame_id: str) -> Boxes:
        """The same boxes expressed in another frame: p_new = rotation @ p + translation."""
        rotation = np.asarray(rotation, dtype=np.float64)
        centers = self.centers @ rotation.T + np.asarray(translation, dtype=np.float64)
        q_rot = matrix_to_quaternion(rotation[None])[0]
        # extreme-magnitude quaternions are rescaled first: the product would overflow to inf
        with np.errstate(invalid='ignore', over='ignore'):  # inf/NaN rows stay invalid
            quats = quaternion_multiply(np.broadcast_to(q_rot, self.quaternions.shape),
                                        _rescaled(self.quaternions))
        return Boxes(centers, self.sizes, quats, self.ids, frame_id, self.detector_labels,
                     self.detector_scores)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (N, 4) quaternions (x, y, z, w)."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], -1)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) quaternions (x, y, z, w), w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Shepperd's method on all four branches, then pick the best-conditioned one per matrix.
    cand = np.stack([
        np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1], 1 + tr], -1),
        np.stack([1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
        np.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                  m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], m[..., 1, 0] - m[..., 0, 1]], -1),
    ], -2)
    best = np.argmax(np.stack([1 + tr, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                               1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                               1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1), -1)
    q = np.take_along_axis(cand, best[..., None, None], -2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)
