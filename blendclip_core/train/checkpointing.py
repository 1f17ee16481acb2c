"""Training checkpoints: sealed atomic writes, RNG state as plain tensors, and finding the checkpoint to
resume from. Every checkpoint carries a content hash (blendclip_core.checkpoint.seal); `--resume` (auto)
takes the newest one that is intact and names every newer one it skipped."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from blendclip_core.atomic import atomic_write
from blendclip_core.checkpoint import CheckpointError, read_checkpoint, seal

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = 'step_*.pt'
TRAINING_KEYS = ('module', 'optimizer', 'scheduler', 'rng', 'state')


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_write(path) as f:
        torch.save(obj, f)


def save_training_checkpoint(state: dict, path: Path) -> None:
    """Atomically, with the content hash that read_checkpoint checks."""
    atomic_torch_save(seal(state), path)


def step_checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / 'checkpoints' / f'step_{step:08d}.pt'


def prune_checkpoints(directory: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (keep_last <= 0: keep all)."""
    ckpts = sorted(directory.glob(CHECKPOINT_GLOB))
    for old in ckpts[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)


def rng_state() -> dict:
    """All RNG states as tensors and plain numbers, so the checkpoint loads with weights_only=True."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {'torch': torch.get_rng_state(),
             'numpy': {'kind': kind, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'gauss': float(gauss)},
             'python': {'version': version, 'state': torch.tensor(py_state, dtype=torch.int64),
                        'gauss': py_gauss}}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'].cpu())
    n = state['numpy']
    keys = n['keys'].cpu().numpy().astype(np.uint32)
    np.random.set_state((n['kind'], keys, n['pos'], n['has_gauss'], n['gauss']))
    p = state['python']
    random.setstate((p['version'], tuple(int(x) for x in p['state'].tolist()), p['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def check_training_checkpoint(ckpt: dict, path: str | Path) -> None:
    """CheckpointError unless `ckpt` holds everything a resumed run needs."""
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f'{path}: not a training checkpoint (no {", ".join(missing)}); an exported '
                              f'encoder goes in model.init_checkpoint')


def newest_intact_checkpoint(output_dir: str | Path) -> tuple[Path, dict] | None:
    """(path, payload) of the newest step checkpoint that loads and matches its content hash; newer
    damaged ones (truncated, flipped bytes) are skipped with a warning naming them. None when there is
    no checkpoint; CheckpointError when there are some but none is intact."""
    ckpts = sorted((Path(output_dir) / 'checkpoints').glob(CHECKPOINT_GLOB), reverse=True)
    for path in ckpts:
        try:
            return path, read_checkpoint(path)
        except CheckpointError as e:
            log.warning('skipping damaged checkpoint %s: %s', path.name, e)
    if ckpts:
        raise CheckpointError(f'no intact checkpoint in {Path(output_dir) / "checkpoints"}: all '
                              f'{len(ckpts)} are damaged ({", ".join(p.name for p in ckpts[:5])})')
    return None
