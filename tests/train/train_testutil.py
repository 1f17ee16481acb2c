"""Helpers of the trainer tests: a tiny fast CLI config, subprocess environment, metrics.jsonl reader."""

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / 'training' / 'configs' / 'smoke.yaml'


def train_records(out: Path) -> dict[int, dict]:
    """step -> train record of metrics.jsonl (one trajectory: later lines win)."""
    recs = {}
    for line in (out / 'metrics.jsonl').read_text().splitlines():
        r = json.loads(line)
        if r['kind'] == 'train':
            recs[r['step']] = r
    return recs


def cli_env(threads: int = 1) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1',
               HF_HUB_OFFLINE='1')
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, '-m', 'training.train', *args]


# Small and fast: 8 objects per batch, few points, one tiny encoder; per-step records.
FAST = ['--config', str(SMOKE), '--data', 'synthetic', '--set', 'batch_size=8', '--set', 'steps_per_epoch=10',
        '--set', 'log.every_steps=1', '--set', 'log.tensorboard=false', '--set', 'eval.every_epochs=0',
        '--set', 'data.eval=[{kind: toy, name: real_heldout, domain: real, seed: 2, per_class: 4}]',
        '--set', 'data.synthetic=[{kind: toy, name: synthetic, domain: synthetic, seed: 0, per_class: 16, '
        'points: [48, 96]}]',
        '--set', 'data.real=[{kind: toy, name: real, domain: real, seed: 1, per_class: 16}]']


def torchrun() -> list[str]:
    exe = Path(sys.executable).with_name('torchrun')
    return [str(exe)] if exe.exists() else [sys.executable, '-m', 'torch.distributed.run']
