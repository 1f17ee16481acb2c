"""What the encoder sees (#16 item 3, #22): checkpoints trained alike but for their input, side by side on
the real dev set (benchmarks/real_eval.py's evaluation, through label_frame) and on held-out simulated
scans (the generated real_heldout set, 10 nuScenes classes, each object with its annotated box).

    python benchmarks/input_ablation.py --run metric=runs/dmr_metric/encoder.pt \
        --run unit_sphere=runs/dmr_sphere/encoder.pt --run unit_sphere_box=runs/dmr_sphere_box/encoder.pt \
        --run before=old_default.pt

Each run's normalisation and box-size input are read from its card. Results:
benchmarks/results/input_ablation.json (keys `<run>_dev_top1_min5`, `<run>_dev_classmean_min5`,
`<run>_sim_heldout_top1`, ...) and a bar chart beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import real_eval  # benchmarks/ (this script's folder is on sys.path)
from machine import cpu_name

ROOT = real_eval.ROOT
OUT = ROOT / 'benchmarks' / 'results' / 'input_ablation.json'
KEYS = ('dev_top1_min5', 'dev_classmean_min5', 'dev_min5_worst_class_top1', 'av2_top1_min5',
        'nuscenes_top1_min5', 'kitti_top1_min5', 'dev_top1_min1')


def measure(checkpoint: Path, heldout: Path, root: Path | None) -> tuple[dict, dict]:
    """(scores, what the card says the model sees) of one checkpoint."""
    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.normalization import box_size_input
    from blendclip_core.synthetic.finalize import evaluate_generated
    from blendclip_core.vocabulary import NUSCENES_10, NUSCENES_EVAL_TEMPLATES

    clf = ZeroShotClassifier.from_checkpoint(checkpoint, labels=NUSCENES_10, device='cpu')
    results, _ = real_eval.evaluate(clf, root)
    scores = {k: results[k] for k in KEYS}
    clf.set_vocabulary(NUSCENES_10, NUSCENES_EVAL_TEMPLATES)
    scores['sim_heldout_top1'] = evaluate_generated(clf, heldout, NUSCENES_10)['top1']
    return scores, {'input_normalization': clf.input_normalization,
                    'box_size_input': box_size_input(clf.encoder), 'checkpoint': str(checkpoint)}


def plot(record: dict, png: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(record['runs'])
    shown = ('dev_top1_min5', 'dev_classmean_min5', 'dev_min5_worst_class_top1', 'sim_heldout_top1')
    fig, ax = plt.subplots(figsize=(9.5, 3.6))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [100 * record['results'][f'{name}_{k}'] for k in shown]
        bars = ax.bar(np.arange(len(shown)) + j * width, vals, width, label=name)
        ax.bar_label(bars, fmt='%.0f', fontsize=7)
    ax.set_xticks(np.arange(len(shown)) + 0.4 - width / 2,
                  ['real dev top-1', 'real dev class-mean', 'real dev worst class', 'sim held-out top-1'])
    ax.set_ylabel('% (>= 5 points on real)')
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    ax.set_title('What the encoder sees: same recipe, different input', fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', action='append', required=True, metavar='NAME=CHECKPOINT')
    p.add_argument('--heldout', type=Path, default=ROOT / 'runs/data/driving/real_heldout.npz',
                   help='generated held-out scans (python -m blendclip_core.synthetic.build)')
    p.add_argument('--data-root', type=Path, default=None, help='default: ../shared/data beside the repo')
    p.add_argument('--out', type=Path, default=OUT)
    args = p.parse_args(argv)
    if not args.heldout.is_file():
        p.error(f'{args.heldout} missing: python -m blendclip_core.synthetic.build --only real_heldout')
    runs = dict(r.split('=', 1) for r in args.run)
    command = 'python benchmarks/input_ablation.py' + ''.join(f' {a}' for a in (argv or sys.argv[1:]))
    date = datetime.now(timezone.utc).strftime('%Y-%m-%d')
    record = {'device': f'cpu: {cpu_name()}', 'date': date, 'command': command, 'results': {},
              'runs': {}}
    for name, ckpt in runs.items():
        scores, seen = measure(Path(ckpt), args.heldout, args.data_root)
        record['results'].update({f'{name}_{k}': v for k, v in scores.items()})
        record['runs'][name] = seen
        print(name, seen, {k: round(100 * v, 1) for k, v in scores.items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + '\n')
    plot(record, args.out.with_suffix('.png'))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
