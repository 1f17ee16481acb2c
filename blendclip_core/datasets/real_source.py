"""Real objects for the curriculum's real side: the AV2 training share as Triplets.

Only `splits.SPLITS['train']` is ever read here (AV2 log 7fab2350, both sweeps): the dev set never
reaches training. Every labelled box of a nuScenes-10 class is cropped as the node crops it
(`blendclip_core.preprocess.crop_objects`, centred on the box, no cap beyond the crop's), captioned from its
class name with the generated objects' templates (a class prompt, a LiDAR range caption, a synonym:
`blendclip_core.synthetic.captions`) and given the normalised mean of its captions' embeddings in the
same text space as the generated objects (`synthetic.dataset.embed` / `text_embedder`, served from the
caption cache when given). The result is stored as a generated-set .npz (`synthetic.dataset.save_npz`),
so a machine without the text model or the real files trains from the file alone:

    python -m blendclip_core.datasets.real_source --out runs/data/driving/av2_train.npz \
        --text-space minilm:all-MiniLM-L6-v2            # on a CPU with MiniLM; carry the .npz to the GPU

A training config names it as a 'callable' source:
'blendclip_core.datasets.real_source:av2_train_source'.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.data.triplet import REAL

log = logging.getLogger(__name__)

TRAIN_SPLIT = 'train'  # the only split this module reads
DEFAULT_OUT = 'runs/data/driving/av2_train.npz'
DEFAULT_TEXT_SPACE = 'minilm:all-MiniLM-L6-v2'


def real_captions(name: str, range_m: float, rng: np.random.Generator) -> list[str]:
    """Three captions of a real box from its class alone: a class prompt, a range caption, a synonym
    (no colour, variant or state: nothing in the annotation says them)."""
    from blendclip_core.synthetic import captions

    return [str(rng.choice(captions.CLASS_PROMPTS)).format(name),
            str(rng.choice(captions.SCAN_TEMPLATES)).format(name=name, range=captions._range_word(range_m)),
            captions.with_article(f'{rng.choice(captions.SYNONYMS.get(name, (name,)))}.')]


def read_training_share(root: str | Path | None = None, seed: int = 0, min_points: int = 1):
    """The AV2 training share's labelled boxes (nuScenes-10 classes, >= min_points points) as a
    GeneratedSet without text embeddings. meta: frame, track, range_m, box_lwh, num_points."""
    from blendclip_core.datasets.splits import split_frames
    from blendclip_core.preprocess import crop_objects
    from blendclip_core.synthetic.dataset import GeneratedSet
    from blendclip_core.vocabulary import NUSCENES_10_NAMES

    gen = GeneratedSet([], [], [], [], REAL)
    for f_index, (_, frame) in enumerate(split_frames(TRAIN_SPLIT, root)):
        boxes = frame.boxes
        crop = crop_objects(frame.points, boxes, min_points=max(1, min_points), channels=3)
        for i, (label, ann) in enumerate(zip(frame.labels, frame.annotations)):
            if label not in NUSCENES_10_NAMES or crop.points_in_box[i] < max(1, min_points):
                continue
            name = NUSCENES_10_NAMES[label]
            range_m = float(np.hypot(*boxes.centers[i, :2]))
            pts = crop.batch.object(i).copy()
            gen.points.append(pts)
            gen.labels.append(name)
            gen.variants.append('')
            gen.captions.append(real_captions(name, range_m, np.random.default_rng([seed, f_index, i])))
            gen.meta.append({'frame': frame.token, 'track': ann.instance_token, 'range_m': round(range_m, 2),
                             'box_lwh': [round(float(v), 3) for v in boxes.sizes[i]],
                             'num_points': int(len(pts))})
    log.info('AV2 training share: %d objects of %d classes', len(gen), len(set(gen.labels)))
    return gen


def build(out: str | Path = DEFAULT_OUT, text_space: str = DEFAULT_TEXT_SPACE, text_cache: str = '',
          root: str | Path | None = None, seed: int = 0, min_points: int = 1) -> Path:
    """Read, caption, embed and store the training share (the text model or cache is needed here)."""
    from blendclip_core.synthetic.dataset import embed, save_npz, text_embedder

    gen = embed(read_training_share(root, seed, min_points), text_embedder(text_space, text_cache))
    return save_npz(out, gen)


class Repeated(Sequence):
    """A source seen `times` times over (index modulo its length): weights a small real set against
    the simulated scans it shares the curriculum's real side with (draws are uniform over the pool)."""

    def __init__(self, items, times: int) -> None:
        self.items, self.times = items, max(1, int(times))
        self.labels = list(items.labels) * self.times
        self.num_points = list(items.num_points) * self.times

    def __len__(self) -> int:
        return len(self.items) * self.times

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.items[i % len(self.items)]


def av2_train_source(path: str = DEFAULT_OUT, text_space: str = DEFAULT_TEXT_SPACE, text_cache: str = '',
                     data_root: str = '', seed: int = 0, min_points: int = 1, classes=(), repeat: int = 1):
    """The trainer's 'callable' source: the stored training share, built on first use when missing
    (that needs the real files and the text space or its cache). repeat: see Repeated."""
    from blendclip_core.synthetic.dataset import GeneratedTriplets, _filter, load_npz

    if not Path(path).is_file():
        build(path, text_space, text_cache, data_root or None, seed, min_points)
    gen = load_npz(path)
    if gen.domain != REAL:
        raise ValueError(f'{path} holds the {gen.domain!r} domain, not real objects')
    triplets = GeneratedTriplets(_filter(gen, classes, 0), Path(path).stem)
    return Repeated(triplets, repeat) if repeat > 1 else triplets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description='Store the AV2 training share as curriculum triplets (.npz).')
    p.add_argument('--out', default=DEFAULT_OUT)
    p.add_argument('--text-space', default=DEFAULT_TEXT_SPACE)
    p.add_argument('--text-cache', default='', help='a TextEmbeddingCache holding the captions (optional)')
    p.add_argument('--data-root', default=None, help='default: ../shared/data ($BLENDCLIP_REAL_DATA)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    print(build(args.out, args.text_space, args.text_cache, args.data_root, args.seed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
