"""The curriculum: how many real samples each batch holds, and which ones, as a pure function of the step.

BlendCLIP's contribution is to compose every batch explicitly: n_real = round(r(t) * B) real samples and
B - n_real synthetic ones, both drawn with replacement and shuffled inside the batch. Because the
composition depends only on (seed, step, rank), a resumed run sees exactly the batches an uninterrupted
run would, and each rank of a DDP job draws its own stream without talking to the others.

A global step of a W-rank job is the concatenation of the W per-rank batches; a single process can
stand in for W ranks (`compose_global_batch`), which is how the DDP-equivalence test builds its reference.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_STREAM_COMPOSE = 1  # SeedSequence key that separates composition draws from augmentation draws
STREAM_AUGMENT = 2


def round_half_up(x: float) -> int:
    """round() rounds 0.5 to even; the method means the usual rounding."""
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class RampSchedule:
    """r = 0 for t < warmup, then linear to max_fraction over `ramp` units, then flat (the method's)."""

    warmup: float = 1.0
    ramp: float = 0.0
    max_fraction: float = 0.3

    def __call__(self, t: float) -> float:
        if t < self.warmup:
            return 0.0
        if self.ramp <= 0:
            return self.max_fraction
        return self.max_fraction * min(1.0, (t - self.warmup) / self.ramp)


@dataclass(frozen=True)
class StaticSchedule:
    """The ablation: the same real fraction from the first step."""

    fraction: float = 0.0

    def __call__(self, t: float) -> float:
        return self.fraction


@dataclass(frozen=True)
class PiecewiseSchedule:
    """Linear between (t, fraction) points, flat outside them."""

    points: tuple[tuple[float, float], ...] = ((0.0, 0.0),)

    def __post_init__(self) -> None:
        ts = [p[0] for p in self.points]
        if not self.points or ts != sorted(ts):
            raise ValueError(f'schedule points must be non-empty and sorted by t, got {self.points}')

    def __call__(self, t: float) -> float:
        ts = [p[0] for p in self.points]
        i = bisect.bisect_right(ts, t)
        if i == 0:
            return self.points[0][1]
        if i == len(ts):
            return self.points[-1][1]
        (t0, r0), (t1, r1) = self.points[i - 1], self.points[i]
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)


Schedule = Callable[[float], float]
SCHEDULES: dict[str, type] = {'ramp': RampSchedule, 'static': StaticSchedule, 'points': PiecewiseSchedule}


def build_schedule(kind: str, **params) -> Schedule:
    if kind not in SCHEDULES:
        raise ValueError(f'unknown curriculum schedule {kind!r}; choose one of {sorted(SCHEDULES)}')
    if kind == 'points':
        params = {'points': tuple(tuple(map(float, p)) for p in params.get('points', ()))}
    return SCHEDULES[kind](**params)


def real_fraction(schedule: Schedule, t: float) -> float:
    r = float(schedule(t))
    if not 0.0 <= r <= 1.0:
        raise ValueError(f'real fraction {r} at t={t} is outside [0, 1]')
    return r


def real_pool(labels: Sequence[str], excluded_classes: Iterable[str] = ()) -> np.ndarray:
    """Indices of the real samples the composer may draw (classes held out for unseen-class tests)."""
    excluded = set(excluded_classes)
    return np.asarray([i for i, lab in enumerate(labels) if lab not in excluded], dtype=np.int64)


@dataclass(frozen=True)
class ComposedBatch:
    """Rank's batch: item j is real_indices[order[j]] if order[j] < n_real, else synthetic
    synth_indices[order[j] - n_real]. Use `items()` for (domain_is_real, index) pairs in batch order."""

    real_indices: np.ndarray
    synth_indices: np.ndarray
    order: np.ndarray
    fraction: float

    @property
    def n_real(self) -> int:
        return len(self.real_indices)

    def items(self) -> list[tuple[bool, int]]:
        n = self.n_real
        return [(True, int(self.real_indices[o])) if o < n else (False, int(self.synth_indices[o - n]))
                for o in self.order]


def _pool_size(pool: int | np.ndarray) -> int:
    return int(pool) if np.ndim(pool) == 0 else len(pool)


def _draw(pool: int | np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """k draws with replacement from range(pool) or from the index array pool."""
    if k == 0:
        return np.zeros(0, np.int64)
    picks = rng.integers(0, _pool_size(pool), size=k).astype(np.int64)
    return picks if np.ndim(pool) == 0 else np.asarray(pool, np.int64)[picks]


def compose_batch(step: int, batch_size: int, n_real: int | np.ndarray, n_synth: int | np.ndarray,
                  schedule: Schedule,
                  rng_seed: int, rank: int = 0, world_size: int = 1, t: float | None = None,
                  excluded_real_classes: Iterable[str] = (),
                  real_labels: Sequence[str] | None = None) -> ComposedBatch:
    """Rank `rank`'s batch at `step`: round(r(t) * batch_size) real, the rest synthetic, with replacement.

    n_real, n_synth: size of each set, or an index array of the samples that may be drawn (`real_pool`).
    t: where the schedule is read (step, or epoch = step / steps_per_epoch); defaults to step.
    excluded_real_classes + real_labels: an alternative to passing a pool, for one-off calls.
    An empty side is replaced by the other, so a run without real data trains on synthetic only.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} outside world size {world_size}')
    pool = n_real
    if real_labels is not None:
        keep = real_pool(real_labels, excluded_real_classes)
        pool = np.intersect1d(np.arange(pool) if np.ndim(pool) == 0 else pool, keep)
    r = real_fraction(schedule, float(step) if t is None else t)
    k = round_half_up(r * batch_size)
    if _pool_size(pool) == 0:
        k = 0
    if _pool_size(n_synth) == 0:
        if _pool_size(pool) == 0:
            raise ValueError('both the real and the synthetic sets are empty')
        k = batch_size
    rng = np.random.default_rng([rng_seed, _STREAM_COMPOSE, step, rank])
    real = _draw(pool, rng, k)
    synth = _draw(n_synth, rng, batch_size - k)
    return ComposedBatch(real, synth, rng.permutation(batch_size), r)


def compose_global_batch(step: int, batch_size: int, world_size: int, **kwargs) -> list[ComposedBatch]:
    """All ranks' batches at `step`, in rank order: what one process needs to stand in for a W-rank job."""
    return [compose_batch(step, batch_size, rank=r, world_size=world_size, **kwargs)
            for r in range(world_size)]
