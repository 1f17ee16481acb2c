"""What a run writes about itself: metrics.jsonl (main rank) + optional TensorBoard scalars, and the
running means of the loss terms between two records (summed on the device: no per-step host sync)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from blendclip_core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


class MetricsLog:
    """metrics.jsonl (always, main rank) + TensorBoard scalars (optional)."""

    def __init__(self, out_dir: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = out_dir / 'metrics.jsonl'
        if resume_step is not None and self.path.exists():
            # Drop what the interrupted run logged after its checkpoint: one trajectory in the file.
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)['step'] <= resume_step]
            atomic_write_bytes(self.path, ''.join(k + '\n' for k in keep).encode())
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / 'tensorboard'), purge_step=resume_step)
            except ImportError:  # tensorboard is optional for the library
                log.warning('tensorboard is not installed: writing metrics.jsonl only')

    def write(self, record: dict) -> None:
        with open(self.path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self.writer is not None:
            kind = record['kind']
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ('step', 'kind'):
                    self.writer.add_scalar(f'{kind}/{k}', v, record['step'])

    def records(self) -> list[dict]:
        return [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()] \
            if self.path.exists() else []

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class RunningMeans:
    """Loss terms summed on the device since the last record (skipped steps left out) and the step rate."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.t_last, self.steps = time.perf_counter(), 0

    def add(self, res) -> None:
        """Add one StepResult (blendclip_core.train.step)."""
        self.steps += 1
        ok = ~res.skipped
        for k, v in {'loss': res.loss, **res.terms, '_n': ok.float()}.items():
            v = torch.where(ok, v.float(), 0.0)
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def pop(self, last_loss: torch.Tensor) -> tuple[dict[str, float], float]:
        """(means since the last pop, steps per second) and start over. All steps skipped: the last loss."""
        now = time.perf_counter()
        rate = self.steps / max(now - self.t_last, 1e-9)
        host = {k: float(v) for k, v in self.sums.items()}
        n = host.pop('_n', 0.0)
        means = {k: v / n for k, v in host.items()} if n else {'loss': float(last_loss)}
        self.sums, self.t_last, self.steps = {}, now, 0
        return means, rate
