"""The training loop: `Trainer(config).fit()` is all the CLI does.

The batch at step s is a pure function of (seed, s, rank) (see curriculum and sources), the checkpoint
holds everything else that changes (weights, optimizer, scheduler, RNG, counters), so `--resume`
continues the exact trajectory of an uninterrupted run. The pieces live by concept: the step
(`step`), checkpoints and resuming (`checkpointing`), metrics.jsonl (`metrics_log`), the zero-shot
evaluation (`eval_hooks`); this module builds them and runs the loop.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blendclip_core.atomic import remove_stale_temporaries
from blendclip_core.checkpoint import CheckpointError, read_checkpoint
from blendclip_core.normalization import box_size_input
from blendclip_core.train import curriculum, distributed, optim
from blendclip_core.train.checkpointing import (
    check_training_checkpoint,
    newest_intact_checkpoint,
    prune_checkpoints,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
    step_checkpoint_path,
)
from blendclip_core.train.config import TrainConfig, to_dict
from blendclip_core.train.eval_hooks import (
    class_text_embeddings,
    evaluate_set,
    text_space_of,
    write_eval_outputs,
)
from blendclip_core.train.losses import PointTextImageLoss
from blendclip_core.train.metrics_log import MetricsLog, RunningMeans
from blendclip_core.train.sources import ComposerSpec, CurriculumBatches, build_pool
from blendclip_core.train.step import (
    TrainModule,
    batch_to_device,
    compile_encoder,
    create_encoder,
    embed_dim_of,
    train_step,
)

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many steps had a non-finite loss or gradient: the run is diverging."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps completed (= index of the next batch)
    nonfinite_steps: int = 0
    best_metric: float = -math.inf
    best_step: int = -1
    history: list = field(default_factory=list)


def _identity(x):
    return x


class Trainer:
    """Builds the run from a TrainConfig (data, curriculum, model, optimizer), then `fit` trains it."""

    def __init__(self, cfg: TrainConfig, dist_info: distributed.DistInfo | None = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or distributed.DistInfo(device=distributed.rank_device(cfg.device))
        self.out = Path(cfg.output_dir)
        self.device = self.dist.device
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts them)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

        self.encoder = create_encoder(cfg)
        self.embed_dim = embed_dim_of(self.encoder)
        self._build_data()
        self._build_batches()
        self._build_optimization()
        self.state = TrainState()
        self._pending_skips = torch.zeros((), dtype=torch.int32, device=self.device)

    def _build_data(self) -> None:
        """Triplet pools, the evaluation vocabulary and its class embeddings in the text space."""
        cfg = self.cfg
        self.synthetic = build_pool(cfg.data.synthetic, self.embed_dim)
        self.real = build_pool(cfg.data.real, self.embed_dim)
        self.eval_sets = {(s.name or f'eval{i}'): build_pool([s], self.embed_dim)
                          for i, s in enumerate(cfg.data.eval)}
        if not len(self.synthetic) and not len(self.real):
            raise ValueError('no training data: data.synthetic and data.real are both empty')
        self.vocabulary = list(cfg.eval.vocabulary) or sorted(
            {lab for p in self.eval_sets.values() for lab in p.labels})
        self.text_space = text_space_of(cfg, self.embed_dim)  # lazy: loads only to embed the vocabulary
        self.class_emb = class_text_embeddings(self.text_space, cfg.text_space.templates, self.vocabulary,
                                               self.embed_dim) if self.vocabulary else None

    def _build_batches(self) -> None:
        """Steps per epoch, total steps and the curriculum's batch stream of this rank."""
        cfg = self.cfg
        ranks_composed = cfg.curriculum.compose_as_ranks or self.dist.world_size
        if self.dist.distributed and cfg.curriculum.compose_as_ranks not in (0, self.dist.world_size):
            raise ValueError('curriculum.compose_as_ranks is for single-process stand-in runs')
        self.ranks_composed = ranks_composed
        self.global_batch = cfg.batch_size * ranks_composed
        n_synth = len(self.synthetic) or len(self.real)
        self.steps_per_epoch = cfg.steps_per_epoch or max(
            1, math.ceil(cfg.epoch_coverage * n_synth / self.global_batch))
        total = int(round(cfg.epochs * self.steps_per_epoch))
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps > 0 else total
        ranks = tuple(range(ranks_composed)) if not self.dist.distributed else (self.dist.rank,)
        self.spec = ComposerSpec(cfg.seed, cfg.batch_size, ranks, ranks_composed, self.steps_per_epoch,
                                 cfg.curriculum.unit)
        schedule = curriculum.build_schedule(cfg.curriculum.schedule, **cfg.curriculum.schedule_params())
        self.batches = CurriculumBatches(self.synthetic, self.real, schedule, self.spec,
                                         cfg.curriculum.excluded_real_classes, cfg.data.channels,
                                         cfg.data.max_points, cfg.data.min_points, cfg.augment,
                                         self.embed_dim, self.total_steps, cfg.data.normalization,
                                         box_size_input(self.encoder))

    def _build_optimization(self) -> None:
        """Batch norm across ranks, loss, the stepped module (DDP, compiled), optimizer and schedule."""
        cfg = self.cfg
        if cfg.model.sync_batchnorm and (self.ranks_composed > 1 or self.dist.distributed):
            # Compiled: GlobalBatchNorm1d, which torch.compile fuses (SyncBatchNorm breaks the tokenizer's
            # graph and waits for the GPU; 2x H200 compiled step: 1,986 -> 2,000-2,407 objects/s).
            distributed.convert_batchnorm(self.encoder, self.device, torch_sync=not cfg.compile)
        self.encoder.to(self.device)
        self.loss = PointTextImageLoss(cfg.loss.init_logit_scale, cfg.loss.max_logit_scale,
                                       cfg.loss.text_weight, cfg.loss.image_weight).to(self.device)
        self.module = TrainModule(self.encoder, self.loss)
        self.optimizer = optim.build_optimizer(self.module, cfg.optim.lr, cfg.optim.weight_decay,
                                               cfg.optim.betas, cfg.optim.eps,
                                               fused=True if self.device.type == 'cuda' else None)
        warmup = int(round(cfg.optim.warmup_epochs * self.steps_per_epoch))
        self.scheduler = optim.build_scheduler(self.optimizer, self.total_steps, warmup, cfg.optim.lr,
                                               cfg.optim.lr_min)
        self.step_module: nn.Module = self.module
        if cfg.compile:
            compile_encoder(self.encoder)
        if self.dist.distributed:
            self.step_module = distributed.wrap_ddp(self.module, self.device, cfg.ddp_comm)

    # -------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        return {'module': self.module.state_dict(), 'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(), 'rng': rng_state(), 'composer': asdict(self.spec),
                'state': asdict(self.state), 'config': to_dict(self.cfg),
                'logit_scale': float(self.loss.logit_scale().detach())}

    def _ckpt_module_state(self) -> dict:
        return self.module.state_dict()

    def _save_to(self, path: Path) -> None:
        state = self.state_dict()
        state['module'] = self._ckpt_module_state()
        save_training_checkpoint(state, path)

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        path = step_checkpoint_path(self.out, self.state.step)
        self._save_to(path)
        prune_checkpoints(path.parent, self.cfg.checkpoint.keep_last)
        log.info('checkpoint %s', path)
        return path

    def load(self, path: str | Path, ckpt: dict | None = None) -> None:
        """Continue from checkpoint `path` (`ckpt`: its payload, when already read)."""
        if ckpt is None:
            ckpt = read_checkpoint(path)  # on the CPU: load_state_dict copies onto the model's device
        check_training_checkpoint(ckpt, path)
        try:
            self.module.load_state_dict(ckpt['module'])
        except RuntimeError as e:
            raise CheckpointError(f'{path} does not fit this model (was it written with another model '
                                  f'config?): {e}') from e
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        set_rng_state(ckpt['rng'])
        self.state = TrainState(**ckpt['state'])
        saved = ckpt.get('composer', {})
        if saved and saved != asdict(self.spec):
            log.warning('batch stream differs from the checkpoint (%s vs %s): the resumed run will not '
                        'match an uninterrupted one', saved, asdict(self.spec))
        log.info('resumed from %s at step %d', path, self.state.step)

    # ------------------------------------------------------------------------------------- evaluation

    def evaluate(self, final: bool = False) -> dict[str, float]:
        if not self.dist.is_main or self.class_emb is None:
            return {}
        scalars = {}
        for name, pool in self.eval_sets.items():
            res = evaluate_set(self.encoder, pool, self.vocabulary, self.class_emb, self.cfg, self.device)
            scalars.update(res.scalars(f'{name}/'))
            if final:
                write_eval_outputs(self.out, name, res, self.state.step)
        return scalars

    def _best_key(self) -> str | None:
        if self.cfg.eval.best_metric:
            return self.cfg.eval.best_metric
        return f'{next(iter(self.eval_sets))}/top1' if self.eval_sets else None

    def _after_eval(self, scalars: dict[str, float]) -> None:
        key = self._best_key()
        if key is None or key not in scalars:
            return
        if scalars[key] > self.state.best_metric:
            self.state.best_metric, self.state.best_step = scalars[key], self.state.step
            if self.cfg.checkpoint.keep_best:
                self._save_to(self.out / 'checkpoints' / 'best.pt')

    # -------------------------------------------------------------------------------------------- fit

    def _due(self, every: int) -> bool:
        return every > 0 and self.state.step % every == 0

    def _eval_every(self) -> int:
        if self.cfg.eval.every_steps > 0:
            return self.cfg.eval.every_steps
        return max(1, int(round(self.cfg.eval.every_epochs * self.steps_per_epoch))) \
            if self.cfg.eval.every_epochs > 0 else 0

    def resume(self, resume: str | Path) -> Path | None:
        """Load checkpoint `resume`, or with 'auto' the newest intact one of the output directory (None:
        there is none, start fresh). Damaged files raise CheckpointError naming them."""
        if str(resume) != 'auto':
            self.load(resume)
            return Path(resume)
        found = newest_intact_checkpoint(self.out)
        if found is None:
            log.info('no checkpoint in %s: starting fresh', self.out)
            return None
        self.load(*found)
        return found[0]

    def remove_stale_temporaries(self) -> None:
        """Temporaries a run killed mid-write left (checkpoints, export, metrics): never read, only swept."""
        n = sum(remove_stale_temporaries(d) for d in (self.out, self.out / 'checkpoints'))
        if n:
            log.info('removed %d temporary file(s) left by an interrupted run in %s', n, self.out)

    def fit(self, resume: str | Path | None = None) -> dict:
        """Train to the end; `resume`: a checkpoint path or 'auto' (see `resume`)."""
        if self.dist.is_main:
            self.remove_stale_temporaries()
        resumed = self.resume(resume) if resume else None
        self.out.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(self.out, self.state.step if resumed else None, self.cfg.log.tensorboard) \
            if self.dist.is_main else None
        if self.dist.is_main:
            self._write_run_config()
        bar = self._progress()
        eval_every = self._eval_every()
        self.module.train()
        running = RunningMeans()
        last_eval_step = -1
        for batch in self._loader():
            res = train_step(self.step_module, self.loss, self.optimizer, self.scheduler,
                             batch_to_device(batch, self.device), self.cfg.optim.grad_clip, self.device,
                             self.cfg.precision)
            self.state.step += 1
            running.add(res)
            self._pending_skips = self._pending_skips + res.skipped.int()
            if bar is not None:
                bar.update(1)
            if self._due(self.cfg.log.every_steps) or self.state.step == self.total_steps:
                self._log_train(metrics, bar, running, res, batch.real_fraction)
            if self._due(eval_every) or self.state.step == self.total_steps:
                self._evaluate_during(metrics)
                last_eval_step = self.state.step
            if self._due(self.cfg.checkpoint.every_steps) and self.state.step < self.total_steps:
                self._flush_skips()
                self.save()
        if bar is not None:
            bar.close()
        summary = self._finish(metrics, last_eval_step)
        distributed.barrier()
        return summary

    def _write_run_config(self) -> None:
        import yaml

        (self.out / 'config.yaml').write_text(yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
        log.info('training %d steps (%d per epoch), global batch %d, %d synthetic / %d real triplets',
                 self.total_steps, self.steps_per_epoch, self.global_batch, len(self.synthetic),
                 len(self.real))

    def _loader(self) -> torch.utils.data.DataLoader:
        """The batches from the current step to the end (workers compose them: pure in (seed, step))."""
        return torch.utils.data.DataLoader(
            self.batches, batch_size=None, sampler=range(self.state.step, self.total_steps),
            num_workers=self.cfg.data.num_workers, collate_fn=_identity,
            pin_memory=self.device.type == 'cuda', prefetch_factor=4 if self.cfg.data.num_workers else None,
            persistent_workers=False,
            # Its own generator: creating the iterator must not draw from the global torch RNG, whose
            # state (drop-path) a resumed run restores from the checkpoint.
            generator=torch.Generator().manual_seed(self.cfg.seed))

    def _log_train(self, metrics: MetricsLog | None, bar, running: RunningMeans, res,
                   real_fraction: float) -> None:
        """One 'train' record: losses are means over the steps since the last record (skipped steps left
        out), objects/s over the same steps."""
        self._flush_skips()
        means, steps_per_s = running.pop(res.loss)
        rate = steps_per_s * self.cfg.batch_size * self.spec.world_size
        rec = {'kind': 'train', 'step': self.state.step,
               'epoch': self.state.step / self.steps_per_epoch, **means,
               'grad_norm': float(res.grad_norm), 'lr': self.optimizer.param_groups[0]['lr'],
               'logit_scale': float(self.loss.logit_scale().detach()),
               'real_fraction': real_fraction, 'objects_per_s': rate,
               'skipped_steps': self.state.nonfinite_steps}
        if metrics is not None:
            metrics.write(rec)
        if bar is not None:
            bar.set_postfix(loss=f'{means["loss"]:.3f}', real=f'{real_fraction:.2f}', obj_s=f'{rate:.0f}')

    def _evaluate_during(self, metrics: MetricsLog | None) -> None:
        scalars = self.evaluate()
        if metrics is not None and scalars:
            metrics.write({'kind': 'eval', 'step': self.state.step, **scalars})
            self._after_eval(scalars)
        distributed.barrier()

    def _flush_skips(self) -> None:
        """Move the device count of skipped (non-finite) steps into the state; stop past the limit."""
        n = int(self._pending_skips)
        self._pending_skips = torch.zeros((), dtype=torch.int32, device=self.device)
        if not n:
            return
        self.state.nonfinite_steps += n
        log.warning('%d step(s) up to step %d had a non-finite loss or gradient and were skipped (%d in all)',
                    n, self.state.step, self.state.nonfinite_steps)
        if self.state.nonfinite_steps > self.cfg.optim.max_nonfinite_steps:
            raise NonFiniteLossError(
                f'{self.state.nonfinite_steps} non-finite steps (limit {self.cfg.optim.max_nonfinite_steps}) '
                f'by step {self.state.step}: lower the lr or check the data')

    def _progress(self):
        if not (self.dist.is_main and self.cfg.log.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=self.total_steps, initial=self.state.step, unit='step', dynamic_ncols=True,
                    desc='train')

    def _finish(self, metrics: MetricsLog | None, last_eval_step: int) -> dict:
        self.save()
        if not self.dist.is_main:
            return {}
        scalars = self.evaluate(final=True)
        if scalars and last_eval_step != self.state.step:
            metrics.write({'kind': 'eval', 'step': self.state.step, **scalars})
        from blendclip_core.evaluation.plots import plot_training_curves

        records = metrics.records()
        metrics.close()
        plot_training_curves(records, self.out / 'training_curves.png',
                             f'{self.cfg.model.name}, global batch {self.global_batch}')
        export = self.export(scalars)
        summary = {'steps': self.state.step, 'skipped_steps': self.state.nonfinite_steps,
                   'final_eval': scalars, 'best_metric': self.state.best_metric,
                   'best_step': self.state.best_step,
                   'export': str(export) if export else None, 'vocabulary': self.vocabulary}
        (self.out / 'summary.json').write_text(json.dumps(summary, indent=1))
        return summary

    def export(self, scalars: dict[str, float]) -> Path | None:
        """The trained encoder with its model card (blendclip_core.checkpoint format)."""
        from blendclip_core.checkpoint import ModelCard, save_checkpoint

        path = self.out / self.cfg.checkpoint.export_name
        enc = self.encoder
        enc_cfg = getattr(enc, 'config', None)
        seen = sorted({*self.synthetic.labels, *[self.real.labels[i] for i in self.batches.real_indices]})
        card = ModelCard(
            name=Path(self.cfg.output_dir).name,
            embed_dim=self.embed_dim,
            text_space=self.text_space.spec,  # what the space is (a file: space names the one it holds)
            prompt_templates=list(self.cfg.text_space.templates),
            input_channels=self.cfg.data.channels,
            input_normalization=self.cfg.data.normalization,
            max_points=int(getattr(enc_cfg, 'max_points', self.cfg.data.max_points)),
            training_data={'synthetic': [to_dict(s) for s in self.cfg.data.synthetic],
                           'real': [to_dict(s) for s in self.cfg.data.real],
                           'curriculum': to_dict(self.cfg.curriculum), 'steps': self.state.step,
                           'global_batch': self.global_batch, 'seed': self.cfg.seed,
                           'model_config': self.cfg.model.name},
            classes_seen=seen,
            metrics=scalars,
            logit_scale=float(self.loss.logit_scale().detach()),
        )
        save_checkpoint(path, enc, card, extra={'text_space_params': dict(self.cfg.text_space.params)})
        return path

