"""The curriculum experiment with real objects (#16 item 4): synthetic only vs a static 1.5 % real share vs
the ramp to 30 %, where the real side is the simulated scans plus the AV2 training share
(training/configs/default_model.yaml's `data.real`), each scored on the real dev set through
label_frame (benchmarks/real_eval.py) and on held-out simulated scans.

    # GPU (minutes): the three runs side by side, same seed and steps
    python benchmarks/curriculum_real.py run --out runs/curriculum_real --steps 1700 --device cuda
    # ablations: --normalization unit_sphere, --box-size (the box l/w/h as 3 input channels)
    python benchmarks/curriculum_real.py report --results benchmarks/results/curriculum_real.json

Runs: training/configs/curriculum_{static0,static1p5,ramp30}.yaml with the real side replaced, written to
<out>/<run>.yaml. The AV2 share must be stored first (runs/data/driving/av2_train.npz:
python -m blendclip_core.datasets.real_source, where MiniLM is installed); the real dev set is read from
../shared/data or $BLENDCLIP_REAL_DATA (absent: the real scores are skipped and the JSON says so).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import curriculum_experiment as ce  # benchmarks/ (this script's folder is on sys.path)

REPO = ce.REPO
DATA_DIR = 'runs/data/driving'
REAL_SIDE_CONFIG = REPO / 'training/configs/default_model.yaml'
RESULTS = REPO / 'benchmarks/results/curriculum_real.json'
HEADLINE = ('dev_top1_min5', 'dev_classmean_min5', 'av2_top1_min5', 'nuscenes_top1_min5', 'kitti_top1_min5',
            'dev_top1_min1', 'train_av2_top1_min5')
SIM_SET = 'scan_like_heldout'


def _paths_to(value, data_dir: str):
    """Every string under `value` with the generated sets' folder moved to data_dir."""
    if isinstance(value, dict):
        return {k: _paths_to(v, data_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_paths_to(v, data_dir) for v in value]
    return value.replace(DATA_DIR, data_dir) if isinstance(value, str) else value


def run_config(name: str, args: argparse.Namespace) -> dict:
    """curriculum_<name>.yaml with the real side of default_model.yaml (the input options go to the
    trainer as overrides: curriculum_experiment.input_overrides)."""
    from blendclip_core.train.config import read_yaml

    cfg = read_yaml(REPO / f'training/configs/curriculum_{name}.yaml')
    cfg['data']['real'] = read_yaml(REAL_SIDE_CONFIG)['data']['real']
    return _paths_to(cfg, args.data_dir)


def train_runs(args: argparse.Namespace, out: Path) -> dict[str, int]:
    import yaml

    device = ['device=' + args.device] if args.device else []
    procs = {}
    for name in ce.RUNS:
        config = out / f'{name}.yaml'
        config.write_text(yaml.safe_dump(run_config(name, args), sort_keys=False))
        procs[name] = ce._launch(str(config), out / name,
                                 device + ce._schedule_overrides(args.steps, args.workers)
                                 + ce.input_overrides(args.normalization, args.box_size) + args.set,
                                 out / f'{name}.log')
    return {name: p.wait() for name, p in procs.items()}


def real_scores(encoder: Path, device: str, text_space: str) -> dict:
    """real_eval's scores of one trained encoder (every key), or why there are none. text_space: the
    run's (a file: space of precomputed class embeddings needs no text model on the GPU machine)."""
    from blendclip_core.datasets.splits import missing_files

    missing = missing_files('dev') + missing_files('train')
    if missing:
        return {'skipped': f'real data missing: {", ".join(map(str, missing))}'}
    import real_eval

    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.vocabulary import NUSCENES_10

    classifier = ZeroShotClassifier.from_checkpoint(encoder, vocabulary=NUSCENES_10, device=device or 'cpu',
                                                    text_space=text_space)
    return real_eval.evaluate(classifier, None)[0]


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data_dir == DATA_DIR:
        ce.build_data(args.workers * 4, args.text_cache)
    av2 = REPO / args.data_dir / 'av2_train.npz'
    if not av2.is_file():
        raise SystemExit(f'{av2} missing: python -m blendclip_core.datasets.real_source --out {av2} '
                         f'(needs MiniLM)')
    codes = train_runs(args, out)
    res = {'device': ce.collect(out, args.steps)['device'], 'date': datetime.date.today().isoformat(),
           'steps': args.steps, 'normalization': args.normalization, 'box_size_input': args.box_size,
           'real_side': 'simulated scans + AV2 training share (log 7fab2350) x25', 'exit_codes': codes,
           'results': {}}
    for name in ce.RUNS:
        summary = out / name / 'summary.json'
        if not summary.is_file():
            continue
        final = json.loads(summary.read_text())['final_eval']
        sim = {k.split('/', 1)[1]: v for k, v in final.items() if k.startswith(SIM_SET + '/')}
        space = run_config(name, args)['text_space']['spec']
        res['results'][name] = {'simulated_heldout': sim,
                                'real': real_scores(out / name / 'encoder.pt', args.device, space)}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(res, indent=1) + '\n')
    return res


def table(data: dict) -> str:
    rows = ['| real share per batch | held-out scans top-1 | ' + ' | '.join(HEADLINE) + ' |',
            '|---|---|' + '---|' * len(HEADLINE)]
    for name, label in ce.RUNS.items():
        r = data['results'].get(name, {})
        real = r.get('real', {})
        cells = [f'{100 * real[k]:.1f}' if k in real else '-' for k in HEADLINE]
        rows.append(f'| {label} | {100 * r.get("simulated_heldout", {}).get("top1", float("nan")):.1f} | '
                    + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def plot(data: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    sets = [('simulated_heldout', 'top1', 'held-out simulated scans'),
            ('real', 'dev_top1_min5', 'real dev, >= 5 pts'),
            ('real', 'dev_classmean_min5', 'real dev class-mean, >= 5 pts'),
            ('real', 'av2_top1_min5', 'AV2 dev logs, >= 5 pts')]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for i, (name, label) in enumerate(ce.RUNS.items()):
        r = data['results'].get(name, {})
        vals = [100 * r.get(part, {}).get(key, np.nan) for part, key, _ in sets]
        bars = ax.bar(np.arange(len(sets)) + (i - 1) * 0.25, vals, 0.25, label=label)
        ax.bar_label(bars, fmt='%.0f', fontsize=7)
    ax.set_xticks(np.arange(len(sets)), [t for *_, t in sets], fontsize=8)
    ax.set_ylabel('zero-shot top-1 (%)')
    ax.set_title(f'Curriculum with real objects: {data["steps"]} steps, {data["normalization"]}'
                 f'{", box size input" if data["box_size_input"] else ""}, {data["device"]}', fontsize=9)
    ax.legend(fontsize=7, title='real samples per batch', title_fontsize=7, loc='upper left',
              bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['train']:
        return ce._train_entry(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run')
    r.add_argument('--out', default='runs/curriculum_real')
    r.add_argument('--steps', type=int, default=1700, help='steps per run (the same for all three)')
    r.add_argument('--device', default='')
    r.add_argument('--workers', type=int, default=3, help='DataLoader workers per run')
    ce.add_input_options(r)
    r.add_argument('--data-dir', default=DATA_DIR,
                   help='generated sets + av2_train.npz (built only for the default folder)')
    r.add_argument('--text-cache', default='.carry/caption_cache.npz')
    r.add_argument('--set', action='append', default=[], help='extra trainer override for every run')
    r.add_argument('--results', default=str(RESULTS))
    rep = sub.add_parser('report')
    rep.add_argument('--results', default=str(RESULTS))
    rep.add_argument('--png', default='')
    args = p.parse_args(argv)
    data = run(args) if args.cmd == 'run' else json.loads(Path(args.results).read_text())
    print(table(data))
    png = Path(getattr(args, 'png', '') or Path(args.results).with_suffix('.png'))
    try:
        plot(data, png)
        print(f'plot: {png}')
    except ImportError:
        print('matplotlib not installed: no plot (run report where it is)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
