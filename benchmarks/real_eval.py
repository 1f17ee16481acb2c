"""Real-data accuracy of a checkpoint on the fixed real splits (blendclip_core.datasets.splits).

    python benchmarks/real_eval.py [--checkpoint model.pt] [--out benchmarks/results/real_eval.json]

Every labelled box of the dev set (AV2 logs adcf7d18 + 02a00399, the nuScenes sample sweep, KITTI
000008) and of the AV2 training share (log 7fab2350) goes through `label_frame` (the node's path,
default PipelineConfig) with the nuScenes-10 vocabulary and the model's prompt templates. Scored per
source and overall: top-1, top-3 and class-mean top-1 at >= 1, 5 and 20 points, each beside the
"always the majority class" baseline of the same set; an AV2 track seen in two sweeps counts once
(the sweep with most points). Also per-class top-1 and top-1 by point count on the dev set, and the
dev confusion matrix (>= 5 points) as a PNG beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / 'benchmarks' / 'results' / 'real_eval.json'
DEV_SOURCES = ('av2', 'nuscenes', 'kitti')
HEADLINE_MIN_POINTS = 5  # the per-class, confusion and issue figures


def evaluate(classifier, root: Path | None) -> tuple[dict, dict]:
    """(flat results, details): every score key `<set>_<metric>_min<m>[_majority]`."""
    from blendclip_core.datasets.splits import split_frames
    from blendclip_core.evaluation import real

    dev = real.once_per_track(real.label_objects(split_frames('dev', root), classifier))
    train = real.once_per_track(real.label_objects(split_frames('train', root), classifier))
    sets = {s: [o for o in dev if o.source == s] for s in DEV_SOURCES}
    sets.update(dev=dev, train_av2=train)
    results = {}
    for name, objects in sets.items():
        for m in real.MIN_POINTS:
            for key, value in real.score(objects, m).items():
                metric, _, tail = key.partition('_')
                results[f'{name}_{metric}_min{m}' + (f'_{tail}' if tail else '')] = value
    results.update({f'dev_{k}': v for k, v in real.by_points(dev).items()})
    headline = real.metrics([o for o in dev if o.num_points >= HEADLINE_MIN_POINTS])
    for i, name in enumerate(headline.class_names):
        if headline.counts[i]:
            key = f'dev_min{HEADLINE_MIN_POINTS}_top1_{name.replace(" ", "_")}'
            results[key] = float(headline.per_class[1][i])
    present = [float(v) for v, n in zip(headline.per_class[1], headline.counts) if n]
    results[f'dev_min{HEADLINE_MIN_POINTS}_worst_class_top1'] = min(present) if present else float('nan')
    details = {'dev_min5_per_class': headline.table(), 'dev_min5_confusion': headline.confusion.tolist(),
               'class_names': list(headline.class_names)}
    return results, details


def _device(classifier) -> str:
    import torch
    if classifier.device.type == 'cuda':
        return torch.cuda.get_device_name(classifier.device)
    return f'cpu: {cpu_name()} ({torch.get_num_threads()} torch threads)'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', default=None, help='default: the shipped default model')
    p.add_argument('--data-root', type=Path, default=None, help='default: ../shared/data beside the repo')
    p.add_argument('--device', default='cpu')
    p.add_argument('--classifier', default='points', help='points (default), depth_views (OpenCLIP on depth '
                   'renders, CLIP2Point) or both (mean logits): blendclip_core.depth_views.load_classifier')
    p.add_argument('--depth-space', default=None, help="the depth views' OpenCLIP model, "
                   "openclip:<model>:<weights> (default: ViT-B-16 DataComp)")
    p.add_argument('--out', type=Path, default=OUT)
    args = p.parse_args(argv)

    from blendclip_core.depth_views import load_classifier
    from blendclip_core.evaluation.plots import plot_confusion_matrix
    from blendclip_core.vocabulary import NUSCENES_10
    classifier = load_classifier(args.checkpoint, NUSCENES_10, classifier=args.classifier, device=args.device,
                                 depth_space=args.depth_space)
    results, details = evaluate(classifier, args.data_root)
    png = args.out.with_name(args.out.stem + '_confusion.png')
    plot_confusion_matrix(details['dev_min5_confusion'], details['class_names'], png,
                          title=f'real dev set, >= {HEADLINE_MIN_POINTS} points: top-1 '
                                f'{100 * results["dev_top1_min5"]:.1f} % ({results["dev_n_min5"]} objects)')
    record = {'device': _device(classifier), 'date': datetime.now(timezone.utc).strftime('%Y-%m-%d'),
              'command': 'python benchmarks/real_eval.py' + ''.join(f' {a}' for a in (argv or sys.argv[1:])),
              'model': args.checkpoint or 'shipped default', 'classifier': args.classifier,
              'model_name': classifier.model_name, 'vocabulary': list(NUSCENES_10),
              'prompt_templates': list(classifier.templates), 'splits': 'blendclip_core.datasets.splits',
              'note': 'majority = always the most frequent class(es) of that same set; an AV2 track in two '
                      'sweeps counts once (the sweep with most points); points = points in the box crop',
              'results': results, **details, 'confusion_png': png.name}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + '\n')
    print(details['dev_min5_per_class'])
    print(json.dumps({k: v for k, v in results.items() if '_min5' in k},
                     indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
