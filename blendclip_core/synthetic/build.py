"""Generate the default model's training and held-out sets, and the text-embedding cache it needs.

    python -m blendclip_core.synthetic.build --out runs/data/driving \
        --text-space minilm:all-MiniLM-L6-v2 --cache models/default/text_cache.npz

Writes one .npz per set (dataset.save_npz) and a TextEmbeddingCache holding every prompt the trainer's
evaluation and the node embed for the default vocabulary, so training can run where the text model
cannot load (a GPU machine without the MiniLM package): the .npz files already hold the captions'
embeddings. Every set is a pure function of its seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from blendclip_core.data.triplet import REAL, SYNTHETIC
from blendclip_core.synthetic import dataset
from blendclip_core.vocabulary import DEFAULT_TEMPLATES, NUSCENES_EVAL_TEMPLATES, prompts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetPlan:
    name: str  # file stem
    config: dataset.GeneratorConfig


def default_plan(per_class_synthetic: int = 400, per_class_real: int = 800, per_class_eval: int = 100,
                 dense_points: int = 512, real_max_points: int = 1024) -> list[SetPlan]:
    """Train sets of both domains and held-out sets (other seeds: no object is in two sets)."""
    g = dataset.GeneratorConfig
    return [SetPlan('synthetic_train', g(per_class=per_class_synthetic, domain=SYNTHETIC, seed=0,
                                         dense_points=dense_points)),
            SetPlan('real_train', g(per_class=per_class_real, domain=REAL, seed=1,
                                    max_points=real_max_points)),
            SetPlan('real_heldout', g(per_class=per_class_eval, domain=REAL, seed=2,
                                      max_points=real_max_points)),
            SetPlan('synthetic_heldout', g(per_class=per_class_eval // 2, domain=SYNTHETIC, seed=3,
                                           dense_points=dense_points))]


def vocabulary_prompts(labels, template_sets=(DEFAULT_TEMPLATES, NUSCENES_EVAL_TEMPLATES)) -> list[str]:
    return list(dict.fromkeys(p for t in template_sets for lab in labels for p in prompts(lab, t)))


def write_class_file(space, labels, templates, path: Path) -> Path:
    """names + (K, D) class embeddings (mean over templates): the trainer's `text_space.spec: file:<path>`,
    which lets a machine without the text model evaluate during training."""
    import numpy as np

    from blendclip_core.text_space import build_zero_shot_classifier

    emb = build_zero_shot_classifier(space, list(labels), list(templates)).numpy().astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array(list(labels)), embeddings=emb, templates=np.array(list(templates)),
             spec=np.array(space.spec), weights_id=np.array(space.weights_id))
    return path


def write_caption_cache(space, path: Path) -> Path:
    """Every generator caption and every vocabulary prompt, embedded once (then build anywhere)."""
    from blendclip_core.synthetic import shapes
    from blendclip_core.text_space import TextEmbeddingCache

    texts = dataset.caption_universe() + vocabulary_prompts(shapes.class_names())
    return TextEmbeddingCache.from_space(space, texts, batch=512).save(path)


def build(out: Path, space, plans: list[SetPlan], cache_path: Path | None = None,
          class_file: Path | None = None, workers: int = 1) -> dict:
    from blendclip_core.synthetic import lidar, shapes
    from blendclip_core.text_space import TextEmbeddingCache

    out.mkdir(parents=True, exist_ok=True)
    embed_texts = dataset.text_embedder(space)
    manifest = {'text_space': space.spec, 'weights_id': space.weights_id, 'sets': {},
                'sensor_mix': dict(lidar.DEFAULT_LIDAR.sensor_mix),  # the LiDARs the 'real' sets simulate
                'variants': {s.name: [v.name for v in s.variants] for s in shapes.CLASSES}}
    for plan in plans:
        t0 = time.perf_counter()
        gen = dataset.embed(dataset.generate(plan.config, progress=True, workers=workers), embed_texts)
        path = dataset.save_npz(out / f'{plan.name}.npz', gen, plan.config)
        counts = [len(p) for p in gen.points]
        manifest['sets'][plan.name] = {'config': asdict(plan.config), 'objects': len(gen),
                                       'median_points': float(sorted(counts)[len(counts) // 2]),
                                       'seconds': round(time.perf_counter() - t0, 1),
                                       'bytes': path.stat().st_size}
        log.info('%s: %d objects in %.0f s -> %s', plan.name, len(gen), time.perf_counter() - t0, path)
    if cache_path is not None:
        cache = TextEmbeddingCache.from_space(space, vocabulary_prompts(shapes.class_names()))
        cache.save(cache_path)
        manifest['text_cache'] = {'path': str(cache_path), 'texts': len(cache)}
    if class_file is not None:
        write_class_file(space, shapes.class_names(), NUSCENES_EVAL_TEMPLATES, class_file)
        manifest['class_file'] = str(class_file)
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default='runs/data/driving', help='folder for the .npz sets')
    p.add_argument('--text-space', default='minilm:all-MiniLM-L6-v2')
    p.add_argument('--cache', default='', help='also write the vocabulary prompt cache here')
    p.add_argument('--text-cache', default='',
                   help='serve caption embeddings from this TextEmbeddingCache (no text model needed)')
    p.add_argument('--write-caption-cache', default='',
                   help='embed every generator caption + vocabulary prompt into this cache, then exit')
    p.add_argument('--workers', type=int, default=1, help='parallel generator processes')
    p.add_argument('--class-file', default='', help='also write class embeddings (trainer file: spec) here')
    p.add_argument('--per-class-synthetic', type=int, default=400)
    p.add_argument('--per-class-real', type=int, default=800)
    p.add_argument('--per-class-eval', type=int, default=100)
    p.add_argument('--dense-points', type=int, default=512)
    p.add_argument('--only', nargs='*', default=(), help='build only these sets (names of the plan)')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    import torch

    from blendclip_core.text_space import create_text_space

    torch.set_num_threads(2)
    space = create_text_space(args.text_space)
    if args.write_caption_cache:
        print(write_caption_cache(space, Path(args.write_caption_cache)))
        return 0
    if args.text_cache:
        from blendclip_core.text_space import CachedTextSpace, TextEmbeddingCache

        space = CachedTextSpace(args.text_space, TextEmbeddingCache.load(args.text_cache), fallback=space)
    plans = default_plan(args.per_class_synthetic, args.per_class_real, args.per_class_eval,
                         args.dense_points)
    if args.only:
        plans = [pl for pl in plans if pl.name in args.only]
    try:
        build(Path(args.out), space, plans, Path(args.cache) if args.cache else None,
              Path(args.class_file) if args.class_file else None, args.workers)
    except Exception as err:  # a CLI: say what failed, no traceback wall
        print(f'build failed: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

