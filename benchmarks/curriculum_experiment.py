"""The curriculum experiment on generated data, and the GPU run that also trains the shipped default model.

    # everything (GPU: minutes): build the sets, time a probe, train the 3 curriculum runs (+ the default
    # model with --with-default) side by side, collect accuracies
    python benchmarks/curriculum_experiment.py run --out runs/curriculum --budget-s 300 --with-default
    # CPU, tiny budget (fixed steps, no probe)
    python benchmarks/curriculum_experiment.py run --out runs/curriculum --steps 60 --device cpu
    # table + plot from the collected results
    python benchmarks/curriculum_experiment.py report --results benchmarks/results/curriculum.json

Runs: training/configs/curriculum_{static0,static1p5,ramp30}.yaml (0 %, 1.5 % and a ramp to 30 %
scan-like samples per batch), same seed, data and number of steps. Accuracy is zero-shot top-1/top-3 over
the 10 nuScenes classes on held-out simulated scans, and on the real sweep's boxes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, also where the package is not installed (GPU machine)
RUNS = {'static0': '0 %', 'static1p5': '1.5 % (1 in 64)', 'ramp30': 'ramp to 30 %'}
EVAL_SETS = ('scan_like_heldout', 'nuscenes_sample_20pts', 'nuscenes_sample_all')


def _train_entry(argv: list[str]) -> int:
    """blendclip-train, with plotting turned off where matplotlib is not installed (the GPU image)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from blendclip_core.evaluation import plots

        for name in dir(plots):
            if name.startswith('plot_'):
                setattr(plots, name, lambda *a, **k: None)
    from training.train import main

    return main(argv)


def _launch(config: str, out: Path, overrides: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), 'train', '--config', config, '--out', str(out)]
    for o in overrides:
        cmd += ['--set', o]
    return subprocess.Popen(cmd, cwd=REPO, stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1', 'HF_HUB_OFFLINE': '1'})


def _steps_per_second(run_dir: Path) -> float:
    recs = [json.loads(x) for x in (run_dir / 'metrics.jsonl').read_text().splitlines() if x.strip()]
    train = [r for r in recs if r['kind'] == 'train']
    import yaml

    cfg = yaml.safe_load((run_dir / 'config.yaml').read_text())
    rates = [r['objects_per_s'] for r in train[1:]] or [train[-1]['objects_per_s']]
    return sorted(rates)[len(rates) // 2] / cfg['batch_size']


def _schedule_overrides(steps: int, workers: int) -> list[str]:
    # 10 'epochs' of steps/10: warm-up (1 epoch) and ramp (5 epochs) scale with the run length.
    per_epoch = max(1, steps // 10)
    return [f'max_steps={steps}', f'steps_per_epoch={per_epoch}', 'epochs=10', f'data.num_workers={workers}',
            'eval.every_epochs=5.0', 'log.progress=false']


def input_overrides(normalization: str, box_size: bool) -> list[str]:
    """Trainer overrides for the encoder's input: the normalisation, and the box l/w/h as 3 more channels
    (the shipped model's input: unit_sphere with the box size)."""
    box = ['model.overrides.in_channels=6', 'model.overrides.box_size_input=true'] if box_size else []
    return [f'data.normalization={normalization}', *box]


def add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--normalization', default='unit_sphere', choices=('metric', 'unit_sphere'),
                        help="the encoder's input (default: the shipped model's)")
    parser.add_argument('--box-size', action=argparse.BooleanOptionalAction, default=True,
                        help='the box l/w/h as 3 input channels (default: on, as the shipped model)')


def build_data(workers: int, text_cache: str) -> None:
    """The generated sets (no-op for sets that exist), then the runs only load them."""
    cmd = [sys.executable, '-m', 'blendclip_core.synthetic.build', '--out', 'runs/data/driving',
           '--workers', str(workers)]
    if text_cache and (REPO / text_cache).is_file():  # else captions are embedded with MiniLM here
        cmd += ['--text-cache', text_cache]
    missing = [n for n in ('synthetic_train', 'real_train', 'real_heldout', 'synthetic_heldout')
               if not (REPO / 'runs/data/driving' / f'{n}.npz').is_file()]
    if missing:
        subprocess.run(cmd + ['--only', *missing], cwd=REPO, check=True)


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_data(args.workers * 4, args.text_cache)
    timing = {'build_s': round(time.perf_counter() - t0, 1)}
    device = ['device=' + args.device] if args.device else []
    steps = args.steps
    if not steps:  # probe: steps/s of the default config alone, then size every run to the budget
        probe = out / 'probe'
        p = _launch('training/configs/default_model.yaml', probe,
                    device + [f'max_steps={args.probe_steps}', 'data.eval=[]', 'eval.vocabulary=[]',
                              f'data.num_workers={args.workers}', 'log.every_steps=5', 'log.progress=false'],
                    out / 'probe.log')
        if p.wait() != 0:
            raise RuntimeError(f'probe failed, see {out / "probe.log"}')
        sps = _steps_per_second(probe)
        timing['probe_steps_per_s'] = round(sps, 2)
        # Side by side the runs share the GPU; assume each gets 1/share of the lone speed.
        steps = int(args.budget_s * sps / args.share // 100 * 100) or 100
    timing['steps'] = steps
    procs = {}
    for name in RUNS:
        procs[name] = _launch(f'training/configs/curriculum_{name}.yaml', out / name,
                              device + _schedule_overrides(steps, args.workers)
                              + input_overrides(args.normalization, args.box_size), out / f'{name}.log')
    if args.with_default:
        dsteps = int(steps * args.default_factor)
        procs['default'] = _launch('training/configs/default_model.yaml', out / 'default',
                                   device + [f'max_steps={dsteps}', f'steps_per_epoch={max(1, dsteps // 12)}',
                                             'epochs=12', f'data.num_workers={args.workers}',
                                             'eval.every_epochs=6.0', 'log.progress=false'],
                                   out / 'default.log')
        timing['default_steps'] = dsteps
    t1 = time.perf_counter()
    codes = {name: p.wait() for name, p in procs.items()}
    timing['train_s'] = round(time.perf_counter() - t1, 1)
    results = collect(out, steps)
    results['normalization'], results['box_size_input'] = args.normalization, args.box_size
    results['timing'] = timing
    results['exit_codes'] = codes
    (out / 'curriculum.json').write_text(json.dumps(results, indent=1))
    return results


def collect(out: Path, steps: int) -> dict:
    import torch
    from machine import cpu_name  # benchmarks/

    cpu = f'cpu: {cpu_name()} ({os.cpu_count()} cores, the runs side by side)'
    res = {'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu,
           'date': datetime.date.today().isoformat(), 'steps': steps, 'results': {}}
    for name in [*RUNS, 'default']:
        summary = out / name / 'summary.json'
        if not summary.is_file():
            continue
        final = json.loads(summary.read_text())['final_eval']
        for key, value in final.items():
            res['results'][f'{name}/{key}'] = value
    return res


def report(args: argparse.Namespace) -> None:
    """Markdown table on stdout and a bar plot PNG from curriculum.json."""
    data = json.loads(Path(args.results).read_text())
    r = data['results']
    rows = ['| scan-like share per batch | held-out scans top-1 | top-3 | real sweep >=20 pts top-1 | top-3 '
            '| real sweep, all boxes top-1 | top-3 |', '|---|---|---|---|---|---|---|']
    for name, label in RUNS.items():
        cells = [f'{100 * r.get(f"{name}/{s}/top{k}", float("nan")):.1f}' for s in EVAL_SETS for k in (1, 3)]
        rows.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    print('\n'.join(rows))
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.25
    titles = ('held-out simulated scans', 'real sweep, boxes >= 20 pts', 'real sweep, all boxes')
    for i, (name, label) in enumerate(RUNS.items()):
        vals = [100 * r.get(f'{name}/{s}/top1', np.nan) for s in EVAL_SETS]
        bars = ax.bar(np.arange(len(EVAL_SETS)) + (i - 1) * width, vals, width, label=label)
        ax.bar_label(bars, fmt='%.0f', fontsize=7)
    ax.axhline(10, color='grey', ls='--', lw=0.8, label='chance (10 classes)')
    ax.set_xticks(np.arange(len(EVAL_SETS)), titles)
    ax.set_ylabel('zero-shot top-1 (%)')
    normalization = data.get('normalization', 'metric')  # results written before the option: metric
    box = ', box size input' if data.get('box_size_input') else ''
    ax.set_title(f'Curriculum on generated data: {data["steps"]} steps, batch 64, {normalization}{box}\n'
                 f'{data["device"]}', fontsize=9)
    ax.legend(fontsize=7, title='scan-like samples per batch', title_fontsize=7, loc='upper left',
              bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    print(f'plot: {args.png}')


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['train']:
        return _train_entry(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run')
    r.add_argument('--out', default='runs/curriculum')
    r.add_argument('--steps', type=int, default=0, help='fixed steps per run (0: probe and use --budget-s)')
    r.add_argument('--budget-s', type=float, default=300.0, help='training wall-clock budget for the runs')
    r.add_argument('--probe-steps', type=int, default=40)
    r.add_argument('--share', type=float, default=2.5, help='slow-down of one run when all run together')
    r.add_argument('--default-factor', type=float, default=1.0, help='default model steps / curriculum steps')
    r.add_argument('--with-default', action='store_true', help='also train the default model')
    r.add_argument('--device', default='')
    r.add_argument('--workers', type=int, default=3, help='DataLoader workers per run')
    r.add_argument('--text-cache', default='.carry/caption_cache.npz')
    add_input_options(r)
    rep = sub.add_parser('report')
    rep.add_argument('--results', default='benchmarks/results/curriculum.json')
    rep.add_argument('--png', default='docs/curriculum.png')
    args = p.parse_args(argv)
    if args.cmd == 'run':
        print(json.dumps(run(args), indent=1))
    else:
        report(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
