"""Triplet sources for the two sides of the curriculum and the evaluation sets, and batch assembly.

A source is any sequence of Triplets (random access): the generated toy set, the shards blendclip-mine
writes (blendclip_core.data.datasets.TripletDataset), a CAD folder with the embeddings blendclip-embed --cad
wrote (blendclip_core.mining.cad.open_cad) or whatever a 'module:function' returns (the driving-object
generator). Batches are built from (seed, step, rank) alone, so a DataLoader worker
can build any step's batch and a resumed run rebuilds exactly the batches it would have seen.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from blendclip_core.data.triplet import Triplet
from blendclip_core.normalization import append_box_size, normalize_objects
from blendclip_core.train import curriculum
from blendclip_core.train.augment import AugmentConfig, augment_points
from blendclip_core.train.config import SourceConfig
from blendclip_core.train.toy_data import REAL_LIKE_DEFAULTS, ToySetConfig, make_toy_triplets
from blendclip_core.types import ObjectBatch

log = logging.getLogger(__name__)


def _load_toy(params: dict, embed_dim: int) -> Sequence[Triplet]:
    known = {f.name for f in fields(ToySetConfig)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f'unknown toy source keys {sorted(unknown)}; known: {sorted(known)}')
    base = dict(REAL_LIKE_DEFAULTS) if params.get('domain') == 'real' else {}
    p = {'dim': embed_dim, **base, **params}
    for key in ('classes', 'points'):
        if key in p:
            p[key] = tuple(p[key])
    return make_toy_triplets(ToySetConfig(**p))


def _load_shards(params: dict, embed_dim: int) -> Sequence[Triplet]:
    from blendclip_core.data.datasets import TripletDataset  # the miner's format; imported when used

    return TripletDataset(**params)


def _load_cad(params: dict, embed_dim: int) -> Sequence[Triplet]:
    """{root, layout: mesh | ulip | openshape, embeddings: <text space spec>, embeddings_root, ...the
    reader's keyword arguments}; meshes carry no embeddings of their own, so they need `embeddings`."""
    from blendclip_core.mining.cad import embed_command, open_cad

    if params.get('layout', 'mesh') == 'mesh' and not params.get('embeddings'):
        root = params.get('root', '<root>')
        command = embed_command(root, 'mesh', '<spec>')
        raise ValueError(f"meshes carry no text embeddings: run `{command}` and give the source "
                         "`embeddings: <spec>` (the training text space's spec)")
    return open_cad(**params, embed_dim=embed_dim)


def _load_callable(params: dict, embed_dim: int) -> Sequence[Triplet]:
    target = params.get('target', '')
    if ':' not in target:
        raise ValueError(f"callable source needs target 'module:function', got {target!r}")
    module, name = target.split(':', 1)
    return getattr(importlib.import_module(module), name)(**params.get('kwargs', {}))


LOADERS = {'toy': _load_toy, 'shards': _load_shards, 'cad': _load_cad, 'callable': _load_callable}


class DataSourceError(ValueError):
    """A configured source cannot be opened (missing shards, no embeddings for the text space, ...)."""


def load_source(src: SourceConfig, embed_dim: int) -> Sequence[Triplet]:
    if src.kind not in LOADERS:
        raise ValueError(f'unknown data source kind {src.kind!r}; choose one of {sorted(LOADERS)}')
    try:
        return LOADERS[src.kind](dict(src.params), embed_dim)
    except (ValueError, OSError, RuntimeError, TypeError) as e:  # the reader's own error, named
        raise DataSourceError(f'data source {src.name or src.kind!r} ({src.kind}, {src.params}): {e}') from e


def _label_of(t: Triplet) -> str:
    return t.label_coarse or t.label


class TripletPool(Sequence):
    """Several sources seen as one indexable sequence, with the class label of every item."""

    def __init__(self, sources: Sequence[Sequence[Triplet]], names: Sequence[str] = ()) -> None:
        self.sources = list(sources)
        self.names = list(names) or [f'source{i}' for i in range(len(self.sources))]
        self.starts = np.concatenate([[0], np.cumsum([len(s) for s in self.sources])]).astype(np.int64)
        self.labels, self.num_points = [], []
        for s in self.sources:
            # Datasets may know labels and point counts without loading points; lists are read once.
            labels, counts = getattr(s, 'labels', None), getattr(s, 'num_points', None)
            if labels is None or counts is None:
                labels, counts = zip(*[(_label_of(t), len(t.points)) for t in s]) if len(s) else ((), ())
            self.labels += list(labels)
            self.num_points += [int(c) for c in counts]
        self.num_points = np.asarray(self.num_points, np.int64)

    def usable(self, min_points: int) -> np.ndarray:
        """Indices of items with at least min_points points; the others are skipped (logged, counted)."""
        ok = np.flatnonzero(self.num_points >= min_points)
        if len(ok) < len(self):
            log.warning('%d of %d triplets have fewer than %d points: skipped', len(self) - len(ok),
                        len(self), min_points)
        return ok

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> Triplet:
        if not 0 <= i < len(self):
            raise IndexError(i)
        j = int(np.searchsorted(self.starts, i, side='right') - 1)
        return self.sources[j][i - int(self.starts[j])]


def build_pool(sources: Sequence[SourceConfig], embed_dim: int) -> TripletPool:
    return TripletPool([load_source(s, embed_dim) for s in sources], [s.name or s.kind for s in sources])


@dataclass
class TrainBatch:
    """One rank's batch, as numpy (a DataLoader worker builds it; the loop moves it to the device)."""

    objects: ObjectBatch
    text: np.ndarray  # (B, D) float32
    image: np.ndarray  # (B, D) float32, zeros where missing
    image_valid: np.ndarray  # (B,) bool
    is_real: np.ndarray  # (B,) bool
    labels: list[str]
    real_fraction: float = 0.0

    def __len__(self) -> int:
        return len(self.labels)

    def host_tensors(self) -> tuple[torch.Tensor, ...]:
        """points, text, image, image_valid as CPU tensors (pinned after pin_memory())."""
        pinned = getattr(self, '_pinned', None)
        if pinned is not None:
            return pinned
        arrays = (self.objects.points, self.text, self.image, self.image_valid)
        return tuple(torch.from_numpy(a) for a in arrays)

    def pin_memory(self) -> TrainBatch:
        """Called by the DataLoader's pin-memory thread (pin_memory=True on CUDA): page-locked copies
        make the host-to-device transfer asynchronous, so the GPU never waits for the next batch."""
        self._pinned = tuple(t.pin_memory() for t in self.host_tensors())
        return self


def prepare_points(points: np.ndarray, channels: int, max_points: int,
                   rng: np.random.Generator) -> np.ndarray:
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] < channels:
        raise ValueError(f'points {pts.shape} have fewer than {channels} channels')
    pts = pts[:, :channels]
    if len(pts) > max_points:
        pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
    return pts


def prepare_objects(triplets: Sequence[Triplet], channels: int, max_points: int,
                    rngs: Sequence[np.random.Generator], normalization: str = 'metric') -> list[np.ndarray]:
    """Each triplet's points as the encoder takes them, before augmentation: the model's input
    normalisation and cap, once, for every domain alike. 'metric': the seeded uniform subset of
    prepare_points (coordinates as stored); other kinds: blendclip_core.normalization (unit_sphere: all
    of an object's points into the unit sphere, then seeded FPS down to max_points)."""
    if normalization == 'metric':
        return [prepare_points(t.points, channels, max_points, rng) for t, rng in zip(triplets, rngs)]
    whole = [prepare_points(t.points, channels, len(t.points), rng) for t, rng in zip(triplets, rngs)]
    batch = normalize_objects(ObjectBatch.from_list(whole, channels), normalization, max_points)
    return [batch.object(i) for i in range(len(batch))]


def box_sizes(triplets: Sequence[Triplet]) -> np.ndarray:
    """(B, 3) box l/w/h of each triplet (meta 'box_lwh'), for models with the box size as an input."""
    missing = [t.key for t in triplets if 'box_lwh' not in (t.meta or {})]
    if missing:
        raise ValueError(f'triplets without a box size (meta "box_lwh"), e.g. {missing[:3]}: the model takes '
                         f'the box size as an input; regenerate the set (synthetic.build) or give its boxes')
    return np.array([t.meta['box_lwh'] for t in triplets], np.float32).reshape(-1, 3)


def collate(triplets: Sequence[Triplet], is_real: Sequence[bool], channels: int, max_points: int,
            augment: AugmentConfig, rngs: Sequence[np.random.Generator], embed_dim: int,
            normalization: str = 'metric', box_size: bool = False) -> TrainBatch:
    """One batch: inputs normalised (prepare_objects), then augmented; box l/w/h appended when the
    model takes them (box_size: normalization.append_box_size, not augmented)."""
    text, image, valid = [], [], []
    prepared = prepare_objects(triplets, channels, max_points, rngs, normalization)
    pts = [augment_points(p, augment, rng) for p, rng in zip(prepared, rngs)]
    for t in triplets:
        if t.text_embedding is None:
            raise ValueError(f'triplet {t.key} has no text embedding: embed its source first (blendclip-embed'
                             ' --shards DIR or --cad DIR, docs/mining.md) and name the space in the source '
                             '(`embeddings: <spec>`)')
        text.append(np.asarray(t.text_embedding, np.float32))
        has_image = t.image_embedding is not None
        image.append(np.asarray(t.image_embedding, np.float32) if has_image
                     else np.zeros(embed_dim, np.float32))
        valid.append(has_image)
    objects = ObjectBatch.from_list(pts, channels)
    if box_size:
        objects = append_box_size(objects, box_sizes(triplets))
    return TrainBatch(objects, np.stack(text), np.stack(image),
                      np.asarray(valid, bool), np.asarray(is_real, bool), [_label_of(t) for t in triplets])


def concat_batches(batches: Sequence[TrainBatch]) -> TrainBatch:
    if len(batches) == 1:
        return batches[0]
    pts = [b.objects.object(i) for b in batches for i in range(len(b))]
    return TrainBatch(ObjectBatch.from_list(pts, batches[0].objects.points.shape[1]),
                      np.concatenate([b.text for b in batches]), np.concatenate([b.image for b in batches]),
                      np.concatenate([b.image_valid for b in batches]),
                      np.concatenate([b.is_real for b in batches]), [x for b in batches for x in b.labels],
                      batches[0].real_fraction)


@dataclass(frozen=True)
class ComposerSpec:
    """What defines the batch stream: checkpointed, and checked on resume."""

    seed: int
    batch_size: int
    ranks: tuple[int, ...]  # ranks composed by this process, in order (one, or all W for a stand-in run)
    world_size: int
    steps_per_epoch: int
    unit: str  # 'epoch' or 'step'


class CurriculumBatches(torch.utils.data.Dataset):
    """Map-style dataset over steps: item `step` is this process's composed, augmented batch."""

    def __init__(self, synthetic: TripletPool, real: TripletPool, schedule, spec: ComposerSpec,
                 excluded_real_classes: Sequence[str], channels: int, max_points: int, min_points: int,
                 augment: AugmentConfig, embed_dim: int, total_steps: int, normalization: str = 'metric',
                 box_size: bool = False) -> None:
        self.synthetic, self.real, self.schedule, self.spec = synthetic, real, schedule, spec
        self.real_indices = np.intersect1d(curriculum.real_pool(real.labels, excluded_real_classes),
                                           real.usable(min_points))
        self.synth_indices = synthetic.usable(min_points)
        if len(real) and not len(self.real_indices):
            log.warning('no usable real sample (all excluded or too small): training on synthetic data only')
        self.channels, self.max_points, self.embed_dim = channels, max_points, embed_dim
        self.augment, self.total_steps = augment, total_steps
        self.normalization, self.box_size = normalization, box_size

    def __len__(self) -> int:
        return self.total_steps

    def t(self, step: int) -> float:
        return step / self.spec.steps_per_epoch if self.spec.unit == 'epoch' else float(step)

    def compose(self, step: int, rank: int) -> curriculum.ComposedBatch:
        return curriculum.compose_batch(step, self.spec.batch_size, self.real_indices, self.synth_indices,
                                        self.schedule, self.spec.seed, rank, self.spec.world_size,
                                        t=self.t(step))

    def rank_batch(self, step: int, rank: int) -> TrainBatch:
        comp = self.compose(step, rank)
        items = comp.items()
        triplets = [self.real[i] if real else self.synthetic[i] for real, i in items]
        rngs = [np.random.default_rng([self.spec.seed, curriculum.STREAM_AUGMENT, step, rank, slot])
                for slot in range(len(items))]
        batch = collate(triplets, [r for r, _ in items], self.channels, self.max_points, self.augment, rngs,
                        self.embed_dim, self.normalization, self.box_size)
        return replace(batch, real_fraction=comp.fraction)

    def __getitem__(self, step: int) -> TrainBatch:
        return concat_batches([self.rank_batch(step, r) for r in self.spec.ranks])
