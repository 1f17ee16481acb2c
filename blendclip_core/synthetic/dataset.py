"""Triplet sets of generated driving objects, for both sides of the curriculum and for evaluation.

`generate(cfg)` draws objects (numpy + trimesh, deterministic per (seed, class, index)), `embed(...)` adds
text embeddings from any text space, `save_npz/load_npz` store a set compactly (float16 points, one
embedding per distinct caption), and `source(...)` is what a trainer config names as a 'callable' source:

    data:
      synthetic: [{kind: callable, name: cad, target: 'blendclip_core.synthetic.dataset:source',
                   kwargs: {path: runs/data/generated.npz, domain: synthetic}}]

Loading an .npz needs numpy only (no trimesh, no text model), so a GPU machine can train from a set
generated elsewhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from blendclip_core.data.triplet import REAL, SYNTHETIC, Triplet

log = logging.getLogger(__name__)

DOMAINS = (SYNTHETIC, REAL)


@dataclass(frozen=True)
class GeneratorConfig:
    classes: tuple[str, ...] = ()  # class names (shapes.CLASSES names); () = all generator classes
    per_class: int = 100  # objects per class
    domain: str = SYNTHETIC  # 'synthetic': dense surface samples; 'real': simulated LiDAR sweep
    seed: int = 0  # every object's generator is seeded by (seed, class index, object index)
    dense_points: int = 1024  # points per object in the synthetic domain
    min_points: int = 3  # real-like: scans with fewer points in the box are redrawn (a new range)
    max_tries: int = 8  # redraws (each closer than the last) before keeping what the last try gave
    range_min: float = 5.0  # real-like: object range drawn uniformly in [range_min, range_max]
    range_max: float = 50.0
    canonical_yaw: bool = False  # False: objects keep a yaw (random for synthetic, the scan's for real)
    max_points: int = 8192  # cap per object (as in blendclip_core.preprocess)


@dataclass
class GeneratedSet:
    """Objects of one domain before/after embedding: packed points and what was drawn."""

    points: list[np.ndarray]
    labels: list[str]
    variants: list[str]
    captions: list[list[str]]
    domain: str
    meta: list[dict] = field(default_factory=list)
    text_embeddings: np.ndarray | None = None  # (B, D) float32, unit rows

    def __len__(self) -> int:
        return len(self.points)


def _rotate_z(points: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return (points @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])).astype(np.float32)


def _one_object(spec, class_index: int, index: int, cfg: GeneratorConfig, lidar_cfg):
    from blendclip_core.preprocess import crop_objects
    from blendclip_core.synthetic import captions, lidar, shapes

    rng = np.random.default_rng([cfg.seed, class_index, index])
    obj = shapes.make_object(spec, rng)
    if cfg.domain == SYNTHETIC:
        pts = shapes.sample_surface(obj.mesh, cfg.dense_points, rng)
        pts = pts - pts.mean(axis=0)
        yaw = 0.0 if cfg.canonical_yaw else float(rng.uniform(-np.pi, np.pi))
        pts = _rotate_z(pts, yaw) if yaw else pts
        meta = {'variant': obj.variant, 'size_lwh': [round(float(v), 3) for v in obj.size_lwh]}
        meta['box_lwh'] = meta['size_lwh']  # the box a detector would give: the object's extent
        caps = captions.make_captions(spec.name, obj.variant, obj.size_lwh, spec.size_mean[0], rng)
        return pts, caps, meta
    far = cfg.range_max
    for _ in range(cfg.max_tries):  # too few points: try again closer (as a detector only boxes what it sees)
        range_m = float(rng.uniform(cfg.range_min, far))
        scan = lidar.scan_object(obj.mesh, obj.size_lwh, rng, lidar_cfg, range_m=range_m)
        far = max(cfg.range_min, range_m)
        crop = crop_objects(scan.points, scan.box, max_points=cfg.max_points, canonical_yaw=cfg.canonical_yaw)
        if crop.points_in_box[0] >= cfg.min_points:
            break
    pts = crop.batch.object(0).copy()
    meta = {'variant': obj.variant, 'size_lwh': [round(float(v), 3) for v in obj.size_lwh],
            'range_m': round(scan.range_m, 2), 'num_points': int(len(pts)),
            'box_lwh': [round(float(v), 3) for v in scan.box.sizes[0]]}  # the (noisy) annotated box
    caps = captions.make_captions(spec.name, obj.variant, obj.size_lwh, spec.size_mean[0], rng, scan.range_m)
    return pts, caps, meta


def _class_chunk(args) -> list:
    cfg, name, class_index = args
    from blendclip_core.synthetic import lidar, shapes

    lidar_cfg = lidar.LidarConfig(range_min=cfg.range_min, range_max=cfg.range_max)
    spec = shapes.get_class(name)
    return [(spec.name, *_one_object(spec, class_index, i, cfg, lidar_cfg)) for i in range(cfg.per_class)]


def generate(cfg: GeneratorConfig, progress: bool = False, workers: int = 1) -> GeneratedSet:
    """Draw cfg.per_class objects of every class in one domain (no text embeddings yet).

    workers > 1 draws classes in parallel processes; the result is identical (objects are seeded by
    (seed, class, index), not by draw order).
    """
    from blendclip_core.synthetic import shapes

    if cfg.domain not in DOMAINS:
        raise ValueError(f'domain must be one of {DOMAINS}, got {cfg.domain!r}')
    names = [shapes.get_class(n).name for n in (cfg.classes or shapes.class_names())]
    all_names = shapes.class_names()
    jobs = [(cfg, n, all_names.index(n)) for n in names]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context('fork').Pool(min(workers, len(jobs))) as pool:
            chunks = pool.imap(_class_chunk, jobs)
            chunks = list(_progress(chunks, len(jobs), f'generating {cfg.domain}', 'class', progress))
    else:
        chunks = [_class_chunk(j) for j in _progress(jobs, len(jobs), f'generating {cfg.domain}', 'class',
                                                       progress)]
    out = GeneratedSet([], [], [], [], cfg.domain)
    for name, pts, caps, meta in (item for chunk in chunks for item in chunk):
        out.points.append(pts)
        out.labels.append(name)
        out.variants.append(meta['variant'])
        out.captions.append(caps)
        out.meta.append(meta)
    return out


def _progress(items, total: int, desc: str, unit: str, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit)


def caption_universe(classes: Sequence[str] = ()) -> list[str]:
    """Every caption the generator can give objects of these classes (all classes by default)."""
    from blendclip_core.synthetic import captions, shapes

    specs = [shapes.get_class(n) for n in (classes or shapes.class_names())]
    return list(dict.fromkeys(c for s in specs for c in captions.all_captions(s.name, tuple(
        v.name for v in s.variants))))


def embed(gen: GeneratedSet, embed_texts: Callable[[list[str]], np.ndarray],
          batch: int = 256) -> GeneratedSet:
    """Text target per object: the normalised mean of its captions' embeddings (distinct texts once)."""
    unique = sorted({c for caps in gen.captions for c in caps})
    if not unique:
        raise ValueError('generated set has no captions to embed')
    table = np.concatenate([np.asarray(embed_texts(unique[a:a + batch]), np.float32)
                            for a in range(0, len(unique), batch)])
    index = {c: i for i, c in enumerate(unique)}
    gen.text_embeddings = _mean_rows(table, [[index[c] for c in caps] for caps in gen.captions])
    gen.meta = [dict(m) for m in gen.meta]
    return gen


def _mean_rows(table: np.ndarray, rows: Sequence[Sequence[int]]) -> np.ndarray:
    table = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
    out = np.stack([table[list(r)].mean(axis=0) for r in rows]) if rows else np.zeros((0, table.shape[1]))
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def to_triplets(gen: GeneratedSet, key_prefix: str = 'gen') -> list[Triplet]:
    if gen.text_embeddings is None:
        raise ValueError('generated set has no text embeddings: call embed() first')
    return [Triplet(key=f'{key_prefix}/{gen.domain}/{i:06d}', points=p, caption=caps[min(1, len(caps) - 1)],
                    label=lab, label_coarse=lab, domain=gen.domain, text_embedding=gen.text_embeddings[i],
                    meta={**m, 'captions': caps})
            for i, (p, caps, lab, m) in enumerate(zip(gen.points, gen.captions, gen.labels, gen.meta))]


# --- compact storage -----------------------------------------------------------------------------------


def save_npz(path: str | Path, gen: GeneratedSet, config: GeneratorConfig | None = None) -> Path:
    """float16 points (ample for metre-scale objects: <= 4 mm at 8 m), one row per distinct caption."""
    if gen.text_embeddings is None:
        raise ValueError('generated set has no text embeddings: call embed() first')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = np.array([len(p) for p in gen.points], np.int64)
    classes = sorted(set(gen.labels))
    points = np.concatenate(gen.points) if len(gen) else np.zeros((0, 3), np.float32)
    np.savez_compressed(
        path, points=points.astype(np.float16),
        offsets=np.concatenate([[0], np.cumsum(counts)]), classes=np.array(classes),
        label_index=np.array([classes.index(lab) for lab in gen.labels], np.int16),
        text=gen.text_embeddings.astype(np.float16), domain=np.array(gen.domain),
        captions=np.array(['\t'.join(c) for c in gen.captions]),
        variants=np.array(gen.variants), ranges=np.array([m.get('range_m', np.nan) for m in gen.meta]),
        box_lwh=np.array([m.get('box_lwh', [np.nan] * 3) for m in gen.meta], np.float32).reshape(-1, 3),
        config=np.array(json.dumps(asdict(config)) if config is not None else ''))
    return path


def stored_config(path: str | Path) -> GeneratorConfig | None:
    """The GeneratorConfig an .npz was made with (None if it does not say)."""
    with np.load(path) as z:
        text = str(z['config']) if 'config' in z.files else ''
    if not text:
        return None
    return _generator_config(json.loads(text))


def load_npz(path: str | Path) -> GeneratedSet:
    try:
        return _load_npz(path)
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise ValueError(f'{path}: not a generated set written by save_npz '
                         f'({type(err).__name__}: {err})') from err


def _load_npz(path: str | Path) -> GeneratedSet:
    with np.load(path) as z:
        pts, off = z['points'].astype(np.float32), z['offsets']
        classes = [str(c) for c in z['classes']]
        ranges = z['ranges']
        sizes = z['box_lwh'] if 'box_lwh' in z.files else np.full((len(ranges), 3), np.nan)  # older sets
        gen = GeneratedSet(points=[pts[off[i]:off[i + 1]] for i in range(len(off) - 1)],
                           labels=[classes[i] for i in z['label_index']],
                           variants=[str(v) for v in z['variants']],
                           captions=[str(c).split('\t') for c in z['captions']], domain=str(z['domain']),
                           meta=[_stored_meta(v, r, s) for v, r, s in zip(z['variants'], ranges, sizes)],
                           text_embeddings=z['text'].astype(np.float32))
    norms = np.linalg.norm(gen.text_embeddings, axis=1, keepdims=True)
    gen.text_embeddings = gen.text_embeddings / np.maximum(norms, 1e-12)
    return gen


def _stored_meta(variant, range_m: float, box_lwh: np.ndarray) -> dict:
    meta = {'variant': str(variant)}
    if np.isfinite(range_m):
        meta['range_m'] = float(range_m)
    if np.isfinite(box_lwh).all():
        meta['box_lwh'] = [float(v) for v in box_lwh]
    return meta


class GeneratedTriplets(Sequence):
    """A generated set as a random-access Triplet sequence, with labels/num_points known up front."""

    def __init__(self, gen: GeneratedSet, key_prefix: str = 'gen') -> None:
        self._items = to_triplets(gen, key_prefix)
        self.labels = list(gen.labels)
        self.num_points = [len(p) for p in gen.points]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]


def source(path: str = '', domain: str = '', classes: Sequence[str] = (), limit_per_class: int = 0,
           generate: dict | None = None, text_space: str = '', text_cache: str = '',
           workers: int = 1) -> GeneratedTriplets:
    """The trainer's 'callable' source: a generated set, loaded from `path` or generated on first use.

    path: an .npz from save_npz. If it is missing (or was made with another `generate` config), the set is
        generated from `generate` (GeneratorConfig fields), embedded with `text_space` (a text-space spec,
        e.g. 'minilm:all-MiniLM-L6-v2'; served from the TextEmbeddingCache `text_cache` when given, which
        holds every caption, see build.py) and saved there, so a config alone reproduces the data.
    domain: must match the set's domain when given. classes / limit_per_class: keep only these classes,
        at most this many objects per class (0 = all).
    """
    want = None if generate is None else _generator_config(generate)
    gen = None
    if path and Path(path).is_file():
        gen = load_npz(path)
        made_with = stored_config(path)
        if want is not None and made_with is not None and made_with != want:
            log.warning('%s was generated with %s, the config asks for %s: regenerating', path, made_with,
                        want)
            gen = None
    if gen is None:
        if want is None or not text_space:
            raise ValueError(f'generated set {path or "(no path)"} does not exist: give `generate` '
                             '(generator settings) and `text_space` to make it, or build it with '
                             'python -m blendclip_core.synthetic.build')
        gen = embed(_draw(want, workers), text_embedder(text_space, text_cache))
        if path:
            save_npz(path, gen, want)
            gen = load_npz(path)  # what later runs will load (float16 points): the same batches every run
    if domain and domain != gen.domain:
        raise ValueError(f'{path} holds the {gen.domain!r} domain, not {domain!r}')
    gen = _filter(gen, classes, limit_per_class)
    log.info('%d generated %s objects from %s', len(gen), gen.domain, path or 'memory')
    return GeneratedTriplets(gen, Path(path).stem if path else 'gen')


def _generator_config(d: dict) -> GeneratorConfig:
    known = {f.name for f in fields(GeneratorConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f'unknown generator setting(s) {unknown}; known: {sorted(known)}')
    return GeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _draw(cfg: GeneratorConfig, workers: int) -> GeneratedSet:
    return generate(cfg, progress=True, workers=workers)  # `generate` is a parameter name in source()


def _filter(gen: GeneratedSet, classes: Sequence[str], limit_per_class: int) -> GeneratedSet:
    keep, seen = [], {}
    for i, lab in enumerate(gen.labels):
        if classes and lab not in classes:
            continue
        seen[lab] = seen.get(lab, 0) + 1
        if limit_per_class and seen[lab] > limit_per_class:
            continue
        keep.append(i)
    if len(keep) == len(gen):
        return gen
    return GeneratedSet([gen.points[i] for i in keep], [gen.labels[i] for i in keep],
                        [gen.variants[i] for i in keep], [gen.captions[i] for i in keep], gen.domain,
                        [gen.meta[i] for i in keep], gen.text_embeddings[keep])


def text_embedder(space, cache: str = '') -> Callable[[list[str]], np.ndarray]:
    """texts -> (N, D) unit rows, from a TextSpace or a spec for the project's text-space factory.

    With `cache` (a TextEmbeddingCache file of that space) known texts never load the model; the space
    itself is built only for misses (and fails there if it cannot load, naming the missing texts)."""
    from blendclip_core.text_space import CachedTextSpace, TextEmbeddingCache, create_text_space

    if cache:
        spec = space if isinstance(space, str) else space.spec
        fallback = (lambda: create_text_space(spec)) if isinstance(space, str) else space
        space = CachedTextSpace(spec, TextEmbeddingCache.load(cache), fallback=fallback)
    elif isinstance(space, str):
        space = create_text_space(space)
    return lambda texts: space.embed_texts(list(texts)).numpy().astype(np.float32)


# --- the real sample sweep as an evaluation source -----------------------------------------------------


def sample_sweep_source(sample_dir: str = 'data/nuscenes_sample', min_points: int = 1,
                        canonical_yaw: bool = False) -> GeneratedTriplets:
    """The labelled boxes of the real nuScenes sweep in data/nuscenes_sample as Triplets (evaluation only).

    Cropped with blendclip_core.preprocess exactly as the node crops; labels are display names
    ('traffic cone'); boxes outside the 10 classes and boxes with fewer than min_points are left out.
    Evaluation needs no text target: the embedding placeholder is a (1,) zero per box.
    """
    from blendclip_core.geometry import Boxes
    from blendclip_core.preprocess import crop_objects
    from blendclip_core.vocabulary import NUSCENES_10_NAMES

    root = Path(sample_dir)
    ann = json.loads((root / 'annotations_lidar.json').read_text())
    cloud = np.fromfile(root / ann['lidar_file'], dtype=np.float32).reshape(-1, 5)[:, :3]
    objs = [o for o in ann['objects'] if o['label'] in NUSCENES_10_NAMES]
    boxes = Boxes(np.array([o['center_xyz'] for o in objs]), np.array([o['size_lwh'] for o in objs]),
                  np.array([o['quaternion_xyzw'] for o in objs]), tuple(str(o['index']) for o in objs),
                  'LIDAR_TOP')
    crop = crop_objects(cloud, boxes, min_points=max(1, min_points), canonical_yaw=canonical_yaw)
    keep = [i for i in range(len(objs)) if crop.points_in_box[i] >= max(1, min_points)]
    labels = [NUSCENES_10_NAMES[objs[i]['label']] for i in keep]
    gen = GeneratedSet([crop.batch.object(i).copy() for i in keep], labels, [''] * len(keep),
                       [[f'point cloud of a {lab}.'] for lab in labels], REAL,
                       [{'box_index': objs[i]['index'], 'box_lwh': list(objs[i]['size_lwh']),
                         'range_m': float(np.hypot(*objs[i]['center_xyz'][:2]))} for i in keep],
                       np.zeros((len(keep), 1), np.float32))
    return GeneratedTriplets(gen, 'nuscenes_sample')
