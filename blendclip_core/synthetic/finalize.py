"""Turn a trained encoder into the shipped default model: measure it, write its model card, install it.

    python -m blendclip_core.synthetic.finalize --encoder runs/default_model/encoder.pt \
        --out models/default/blendclip-default.pt

Measures zero-shot accuracy the way the product labels (blendclip_core.pipeline.run_frame on the real
sweep in data/nuscenes_sample; ZeroShotClassifier on generated held-out sets) in the text space the
trainer recorded in the card, then saves the encoder with that card plus what shipping adds: its name, the
node's prompts, the classes, every measured number and the notes; and models/default/metrics.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NOTES = ('Demo-grade default: trained in minutes into an offline sentence-embedding space '
         '(all-MiniLM-L6-v2), because no CLIP weights can be downloaded here, on generated objects plus the '
         'real AV2 training share (log 7fab2350). For real use train into OpenCLIP (ViT-B-16 '
         'datacomp_xl_s13b_b90k) on mined triplets of your own sensor. Real accuracy: '
         'benchmarks/results/real_eval.json (dev set: 75 objects of 3 sensors, far too few for a tight '
         'figure). Class margins in this text space are small: measured in fp32; bf16 autocast lowered '
         'held-out accuracy by 1-12 points. See docs/model_card.md.')


def real_training_share(data_dir: Path) -> dict:
    """What the AV2 training share (data_dir/av2_train.npz, built by datasets.real_source) held: the
    card names the real objects a model was trained on, by log and count."""
    from blendclip_core.datasets.splits import split_members
    from blendclip_core.synthetic.dataset import load_npz

    path = data_dir / 'av2_train.npz'
    if not path.is_file():
        return {}
    gen = load_npz(path)
    by_class: dict[str, int] = {}
    for label in gen.labels:
        by_class[label] = by_class.get(label, 0) + 1
    return {'split': 'train', 'files': [m.path for m in split_members('train')], 'objects': len(gen),
            'by_class': dict(sorted(by_class.items()))}


def _topk(indices: np.ndarray, targets: np.ndarray, k: int) -> float:
    if not len(targets):
        return float('nan')
    return float(np.mean([(t in row[:k]) for row, t in zip(indices, targets)]))


def evaluate_sample_sweep(classifier, sample_dir: Path, min_points: int = 1) -> dict:
    """Top-1/top-3 on the real sweep's labelled boxes (10 classes) through the node's own pipeline."""
    from blendclip_core.geometry import Boxes
    from blendclip_core.pipeline import PipelineConfig, run_frame
    from blendclip_core.vocabulary import NUSCENES_10_NAMES

    ann = json.loads((sample_dir / 'annotations_lidar.json').read_text())
    cloud = np.fromfile(sample_dir / ann['lidar_file'], dtype=np.float32).reshape(-1, 5)[:, :3]
    objs = [o for o in ann['objects'] if o['label'] in NUSCENES_10_NAMES]
    boxes = Boxes(np.array([o['center_xyz'] for o in objs]), np.array([o['size_lwh'] for o in objs]),
                  np.array([o['quaternion_xyzw'] for o in objs]), tuple(str(o['index']) for o in objs),
                  'LIDAR_TOP')
    frame = run_frame(cloud, boxes, classifier, PipelineConfig(top_k=5, min_points=1))
    pred = frame.predictions
    vocab = list(pred.vocabulary)
    targets = np.array([vocab.index(NUSCENES_10_NAMES[o['label']]) for o in objs])
    keep = frame.cropped.points_in_box >= min_points
    rows = [{'id': o['index'], 'label': NUSCENES_10_NAMES[o['label']], 'points': int(n),
             'range_m': round(float(np.hypot(*o['center_xyz'][:2])), 1),
             'predicted': pred.label(i), 'score': float(pred.scores[i, 0]) if n else float('nan')}
            for i, (o, n) in enumerate(zip(objs, frame.cropped.points_in_box)) if keep[i]]
    return {'boxes': int(keep.sum()), 'top1': _topk(pred.indices[keep], targets[keep], 1),
            'top3': _topk(pred.indices[keep], targets[keep], 3), 'rows': rows}


def evaluate_generated(classifier, path: Path, labels) -> dict:
    """Top-1/top-3 on a generated set; a model that takes the box size gets each object's annotated box."""
    from blendclip_core.normalization import append_box_size, box_size_input
    from blendclip_core.synthetic.dataset import load_npz
    from blendclip_core.types import ObjectBatch

    gen = load_npz(path)
    keep = [i for i, lab in enumerate(gen.labels) if lab in labels]
    vocab = list(classifier.labels)
    indices = []
    for a in range(0, len(keep), 512):
        chunk = keep[a:a + 512]
        batch = ObjectBatch.from_list([gen.points[i] for i in chunk])
        if box_size_input(classifier.encoder):
            batch = append_box_size(batch, [gen.meta[i]['box_lwh'] for i in chunk])
        indices.append(classifier.classify(batch).indices)
    indices = np.concatenate(indices)
    targets = np.array([vocab.index(gen.labels[i]) for i in keep])
    return {'objects': len(keep), 'top1': _topk(indices, targets, 1), 'top3': _topk(indices, targets, 3)}


def measure(encoder_path: Path, sample_dir: Path, data_dir: Path, cache: Path | None,
            text_space: str) -> dict:
    """Accuracy in `text_space` (the card's), served from the text cache `cache` when there is one."""
    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.synthetic import shapes
    from blendclip_core.text_space import CachedTextSpace, TextEmbeddingCache, create_text_space
    from blendclip_core.vocabulary import NUSCENES_10, NUSCENES_EVAL_TEMPLATES

    space = create_text_space(text_space)
    if cache is not None and cache.is_file():
        space = CachedTextSpace(text_space, TextEmbeddingCache.load(cache), fallback=space)
    clf = ZeroShotClassifier.from_checkpoint(encoder_path, labels=NUSCENES_10, text_space=space,
                                             templates=NUSCENES_EVAL_TEMPLATES, device='cpu')
    m = {'protocol': 'zero-shot, prompt "point cloud of a {}.", 10 nuScenes classes unless named',
         'real_sweep_20pts': evaluate_sample_sweep(clf, sample_dir, 20),
         'real_sweep_all': evaluate_sample_sweep(clf, sample_dir, 1)}
    for name in ('real_heldout', 'synthetic_heldout'):
        path = data_dir / f'{name}.npz'
        if path.is_file():
            m[f'{name}_10'] = evaluate_generated(clf, path, NUSCENES_10)
            clf.set_vocabulary(shapes.class_names(), NUSCENES_EVAL_TEMPLATES)
            m[f'{name}_16'] = evaluate_generated(clf, path, shapes.class_names())
            clf.set_vocabulary(NUSCENES_10, NUSCENES_EVAL_TEMPLATES)
    return m


def flat_metrics(m: dict) -> dict[str, float]:
    return {f'{k}/{kk}': float(v) for k, d in m.items() if isinstance(d, dict)
            for kk, v in d.items() if kk in ('top1', 'top3', 'boxes', 'objects')}


def finalize(encoder_path: Path, out: Path, sample_dir: Path, data_dir: Path, cache: Path | None,
             train_summary: Path | None = None) -> dict:
    """Measure the trained encoder and ship it: the trainer's card (text space, logit scale, data) with
    the shipped name, prompts, classes, measured metrics and notes added."""
    from blendclip_core.checkpoint import load_checkpoint, save_checkpoint
    from blendclip_core.synthetic import shapes
    from blendclip_core.vocabulary import DEFAULT_TEMPLATES

    encoder, trained_card = load_checkpoint(encoder_path)
    m = measure(encoder_path, sample_dir, data_dir, cache, trained_card.text_space)
    summary = json.loads(train_summary.read_text()) if train_summary and train_summary.is_file() else {}
    card = dataclasses.replace(
        trained_card, name='blendclip-default', prompt_templates=list(DEFAULT_TEMPLATES),
        training_data={**trained_card.training_data,
                       'what': 'generated driving objects (blendclip_core.synthetic): dense surface samples '
                               'of parametric meshes + the same objects seen by simulated spinning LiDARs '
                               '(16-128 beams, several rigs); plus the real AV2 training share (labelled '
                               'boxes of log 7fab2350, blendclip_core.datasets.splits); no images',
                       'real_objects': real_training_share(data_dir),
                       'classes': list(shapes.class_names()), 'final_eval_during_training':
                           summary.get('final_eval', {})},
        classes_seen=list(shapes.class_names()), metrics=flat_metrics(m),
        # MiniLM's class prompts lie close together; bf16 on the GPU cost 1-12 points (model card).
        inference_precision='fp32', notes=NOTES)
    save_checkpoint(out, encoder, card)
    cache_out = out.with_suffix('').with_suffix('.text_cache.npz')
    if cache is not None and cache.is_file() and cache.resolve() != cache_out.resolve():
        cache_out.write_bytes(cache.read_bytes())
    (out.parent / 'metrics.json').write_text(json.dumps(m, indent=1))
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--encoder', required=True, help='encoder.pt exported by blendclip-train')
    p.add_argument('--out', default='models/default/blendclip-default.pt')
    p.add_argument('--sample-dir', default='data/nuscenes_sample')
    p.add_argument('--data-dir', default='runs/data/driving', help='where real_heldout.npz etc. are')
    p.add_argument('--cache', default='models/default/blendclip-default.text_cache.npz')
    p.add_argument('--train-summary', default='', help="the run's summary.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    import torch

    torch.set_num_threads(2)
    m = finalize(Path(args.encoder), Path(args.out), Path(args.sample_dir), Path(args.data_dir),
                 Path(args.cache) if args.cache else None,
                 Path(args.train_summary) if args.train_summary else None)
    print(json.dumps({k: v for k, v in flat_metrics(m).items()}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
