"""The training loop: model + loss under DDP, the step, evaluation, logging and checkpoints.

`Trainer(config).fit()` is all the CLI does. The batch at step s is a pure function of (seed, s, rank)
(see curriculum and sources), the checkpoint holds everything else that changes (weights, optimizer,
scheduler, RNG, counters), so `--resume` continues the exact trajectory of an uninterrupted run.
Checkpoints carry a content hash (blendclip_core.checkpoint.seal); `--resume` (auto) takes the newest
one that is intact and names every newer one it skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blendclip_core.atomic import atomic_write, atomic_write_bytes, remove_stale_temporaries
from blendclip_core.checkpoint import CheckpointError, init_from_checkpoint, read_checkpoint, seal
from blendclip_core.train import curriculum, distributed, optim
from blendclip_core.train.config import TrainConfig, to_dict
from blendclip_core.train.losses import PointTextImageLoss, total_loss
from blendclip_core.train.sources import ComposerSpec, CurriculumBatches, TrainBatch, TripletPool, build_pool

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = 'step_*.pt'


class NonFiniteLossError(RuntimeError):
    """Too many steps had a non-finite loss or gradient: the run is diverging."""


# --------------------------------------------------------------------------------------------- model


def create_encoder(cfg: TrainConfig) -> nn.Module:
    from blendclip_core.encoder import create_model

    encoder = create_model(cfg.model.name, **cfg.model.overrides)
    if cfg.model.init_checkpoint:
        init_from_checkpoint(encoder, cfg.model.init_checkpoint)
    return encoder


def embed_dim_of(encoder: nn.Module) -> int:
    config = getattr(encoder, 'config', None)
    dim = getattr(config, 'embed_dim', None) or getattr(encoder, 'embed_dim', None)
    if not dim:
        raise ValueError('cannot tell the encoder output width (expected encoder.config.embed_dim)')
    return int(dim)


def compile_encoder(encoder: nn.Module, dynamic: bool | None = None) -> None:
    """torch.compile the heavy submodules in place (tokenizer, transformer blocks): the host-side
    planning stays eager, and state_dict keys do not change (Module.compile wraps the call only)."""
    parts = [getattr(encoder, 'tokenizer', None), *getattr(encoder, 'blocks', [])]
    parts = [p for p in parts if p is not None] or [encoder]
    for part in parts:
        part.compile(dynamic=dynamic)


class TrainModule(nn.Module):
    """Encoder + loss as one module, so DDP sees (and averages) the logit scale's gradient too."""

    def __init__(self, encoder: nn.Module, loss: PointTextImageLoss) -> None:
        super().__init__()
        self.encoder, self.loss = encoder, loss

    def forward(self, points, counts, text, image, image_valid) -> dict[str, torch.Tensor]:
        feats = self.encoder.encode_packed(points, counts)
        return self.loss(feats.float(), text, image, image_valid)


# ---------------------------------------------------------------------------------------------- step


@dataclass
class StepResult:
    """Device tensors (reading them syncs with the GPU: the loop does so only when it logs)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    grad_norm: torch.Tensor
    skipped: torch.Tensor  # bool: non-finite loss or gradient norm, update not applied


def autocast_for(device: torch.device, precision: str):
    if device.type == 'cuda' and precision == 'bf16':
        return torch.autocast('cuda', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_to_device(batch: TrainBatch, device: torch.device) -> tuple:
    """(points, counts (host numpy), text, image, image_valid): what TrainModule.forward takes."""
    nb = device.type == 'cuda'
    points, text, image, valid = (t.to(device, non_blocking=nb) for t in batch.host_tensors())
    return points, batch.objects.counts, text, image, valid


def train_step(module: nn.Module, loss_module: PointTextImageLoss, optimizer: torch.optim.Optimizer,
               scheduler, tensors: tuple, grad_clip: float, device: torch.device,
               precision: str = 'bf16') -> StepResult:
    """One optimizer step. A non-finite loss or gradient norm skips the update on every rank together
    (the scheduler still advances: the lr stays a function of the step).

    With a fused optimizer (CUDA) the skip happens on the device (AdamW's found_inf, as GradScaler uses
    it), so a step never waits for the GPU and the host runs ahead into the next step.
    """
    optimizer.zero_grad(set_to_none=True)
    # BatchNorm running statistics move in the forward pass: keep a copy to undo a bad step's update
    stats = [b for name, b in module.named_buffers() if name.endswith(('running_mean', 'running_var'))]
    saved = [b.clone() for b in stats]
    with autocast_for(device, precision):
        terms = module(*tensors)
    loss = total_loss(terms)
    loss.backward()  # always: under DDP every rank must join the gradient all-reduce
    params = [p for g in optimizer.param_groups for p in g['params'] if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float('inf'))
    bad = distributed.any_true(~(torch.isfinite(loss.detach()) & torch.isfinite(norm)))
    if optimizer.defaults.get('fused'):
        optimizer.found_inf = bad.float()
        optimizer.step()
        del optimizer.found_inf
        loss_module.logit_scale.clamp_()
    elif not bool(bad):
        optimizer.step()
        loss_module.logit_scale.clamp_()
    with torch.no_grad():
        for buf, old in zip(stats, saved):
            buf.copy_(torch.where(bad, old, buf))
    with warnings.catch_warnings():
        # a skipped first update makes torch warn that the schedule ran ahead of the optimizer: by design
        warnings.filterwarnings('ignore', message='Detected call of `lr_scheduler.step\\(\\)` before')
        scheduler.step()
    return StepResult(loss.detach(), {k: v.detach() for k, v in terms.items()}, norm.detach(), bad)


# ---------------------------------------------------------------------------------------- evaluation


def class_text_embeddings(cfg: TrainConfig, names: list[str], dim: int) -> np.ndarray:
    """(K, D) unit text embeddings of the vocabulary in the configured text space. Label names are
    embedded as words ('construction_vehicle' -> 'construction vehicle')."""
    spec = cfg.text_space.spec
    if spec == 'toy':
        from blendclip_core.train.toy_data import class_embeddings

        return class_embeddings(names, dim, int(cfg.text_space.params.get('text_seed', 0)))
    if spec.startswith('file:'):  # precomputed by the user: arrays 'names' and 'embeddings'
        data = np.load(spec[len('file:'):])
        lookup = {str(n): e for n, e in zip(data['names'], data['embeddings'])}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise ValueError(f'text embeddings file lacks {missing}')
        emb = np.stack([lookup[n] for n in names]).astype(np.float32)
    else:
        emb = _text_space_embeddings(cfg, [n.replace('_', ' ') for n in names])
    if emb.shape[1] != dim:
        raise ValueError(f'text space {spec!r} is {emb.shape[1]}-d but the encoder outputs {dim}-d')
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _text_space_embeddings(cfg: TrainConfig, words: list[str]) -> np.ndarray:
    from blendclip_core import text_space

    space = text_space.create_text_space(cfg.text_space.spec, **cfg.text_space.params)
    return np.asarray(space.encode_vocabulary(words, list(cfg.text_space.templates)), np.float32)


@torch.no_grad()
def embed_triplets(encoder: nn.Module, triplets: TripletPool, cfg: TrainConfig, device: torch.device,
                   indices: np.ndarray | None = None) -> np.ndarray:
    """(N, D) L2-normalised point embeddings, eval mode, no augmentation (deterministic subsets)."""
    from blendclip_core.train.sources import prepare_points
    from blendclip_core.types import ObjectBatch

    was_training = encoder.training
    encoder.eval()
    indices = np.arange(len(triplets)) if indices is None else indices
    out = []
    try:
        for s in range(0, len(indices), cfg.eval.batch_size):
            chunk = indices[s:s + cfg.eval.batch_size]
            pts = [prepare_points(triplets[int(i)].points, cfg.data.channels, cfg.data.max_points,
                                  np.random.default_rng([cfg.seed, int(i)])) for i in chunk]
            batch = ObjectBatch.from_list(pts, cfg.data.channels)
            with autocast_for(device, cfg.precision):
                feats = encoder.encode_packed(torch.from_numpy(batch.points).to(device), batch.counts)
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, embed_dim_of(encoder)), np.float32)


def evaluate_set(encoder: nn.Module, pool: TripletPool, class_names: list[str], class_emb: np.ndarray,
                 cfg: TrainConfig, device: torch.device):
    from blendclip_core.evaluation.metrics import zero_shot_metrics

    usable = pool.usable(cfg.data.min_points)
    feats = embed_triplets(encoder, pool, cfg, device, usable)
    index = {n: i for i, n in enumerate(class_names)}
    labels = np.asarray([index.get(pool.labels[i], -1) for i in usable], np.int64)
    return zero_shot_metrics(feats @ class_emb.T, labels, class_names, cfg.eval.topk)


# -------------------------------------------------------------------------------------- checkpoints


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_write(path) as f:
        torch.save(obj, f)


def save_training_checkpoint(state: dict, path: Path) -> None:
    """Atomically, with the content hash that read_checkpoint checks."""
    atomic_torch_save(seal(state), path)


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


def find_latest_checkpoint(output_dir: str | Path) -> Path | None:
    ckpts = sorted((Path(output_dir) / 'checkpoints').glob(CHECKPOINT_GLOB))
    return ckpts[-1] if ckpts else None


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


# ----------------------------------------------------------------------------------------- trainer


@dataclass
class TrainState:
    step: int = 0  # optimizer steps completed (= index of the next batch)
    nonfinite_steps: int = 0
    best_metric: float = -math.inf
    best_step: int = -1
    history: list = field(default_factory=list)


def _identity(x):
    return x


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


class Trainer:
    def __init__(self, cfg: TrainConfig, dist_info: distributed.DistInfo | None = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or distributed.DistInfo(device=distributed.resolve_device(cfg.device))
        self.out = Path(cfg.output_dir)
        self.device = self.dist.device
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts them)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

        self.encoder = create_encoder(cfg)
        self.embed_dim = embed_dim_of(self.encoder)
        self.synthetic = build_pool(cfg.data.synthetic, self.embed_dim)
        self.real = build_pool(cfg.data.real, self.embed_dim)
        self.eval_sets = {(s.name or f'eval{i}'): build_pool([s], self.embed_dim)
                          for i, s in enumerate(cfg.data.eval)}
        if not len(self.synthetic) and not len(self.real):
            raise ValueError('no training data: data.synthetic and data.real are both empty')
        self.vocabulary = list(cfg.eval.vocabulary) or sorted(
            {lab for p in self.eval_sets.values() for lab in p.labels})
        self.class_emb = class_text_embeddings(cfg, self.vocabulary, self.embed_dim) if self.vocabulary \
            else None

        ranks_composed = cfg.curriculum.compose_as_ranks or self.dist.world_size
        if self.dist.distributed and cfg.curriculum.compose_as_ranks not in (0, self.dist.world_size):
            raise ValueError('curriculum.compose_as_ranks is for single-process stand-in runs')
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
                                         self.embed_dim, self.total_steps)

        if cfg.model.sync_batchnorm and (ranks_composed > 1 or self.dist.distributed):
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
        self.state = TrainState()
        self._pending_skips = torch.zeros((), dtype=torch.int32, device=self.device)

    # -------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        return {'module': self.module.state_dict(), 'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(), 'rng': rng_state(), 'composer': asdict(self.spec),
                'state': asdict(self.state), 'config': to_dict(self.cfg),
                'logit_scale': float(self.loss.logit_scale().detach())}

    def _ckpt_module_state(self) -> dict:
        return self.module.state_dict()

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        state = self.state_dict()
        state['module'] = self._ckpt_module_state()
        path = self.out / 'checkpoints' / f'step_{self.state.step:08d}.pt'
        save_training_checkpoint(state, path)
        ckpts = sorted(path.parent.glob(CHECKPOINT_GLOB))
        for old in ckpts[:-self.cfg.checkpoint.keep_last] if self.cfg.checkpoint.keep_last > 0 else []:
            old.unlink(missing_ok=True)
        log.info('checkpoint %s', path)
        return path

    def load(self, path: str | Path, ckpt: dict | None = None) -> None:
        """Continue from checkpoint `path` (`ckpt`: its payload, when already read)."""
        if ckpt is None:
            ckpt = read_checkpoint(path)  # on the CPU: load_state_dict copies onto the model's device
        missing = [k for k in ('module', 'optimizer', 'scheduler', 'rng', 'state') if k not in ckpt]
        if missing:
            raise CheckpointError(f'{path}: not a training checkpoint (no {", ".join(missing)}); an exported '
                                  f'encoder goes in model.init_checkpoint')
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
                self._write_eval_outputs(name, res)
        return scalars

    def _write_eval_outputs(self, name: str, res) -> None:
        from blendclip_core.evaluation.plots import plot_confusion_matrix

        ev = self.out / 'eval'
        ev.mkdir(parents=True, exist_ok=True)
        (ev / f'{name}.json').write_text(json.dumps(res.to_dict(), indent=1))
        (ev / f'{name}.md').write_text(f'# {name} (step {self.state.step})\n\n{res.table()}\n')
        plot_confusion_matrix(res.confusion, res.class_names, ev / f'{name}_confusion.png',
                              f'{name}: top-1 confusion, step {self.state.step}')

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
                state = self.state_dict()
                state['module'] = self._ckpt_module_state()
                save_training_checkpoint(state, self.out / 'checkpoints' / 'best.pt')

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
            import yaml

            (self.out / 'config.yaml').write_text(yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
            log.info('training %d steps (%d per epoch), global batch %d, %d synthetic / %d real triplets',
                     self.total_steps, self.steps_per_epoch, self.global_batch, len(self.synthetic),
                     len(self.real))
        loader = torch.utils.data.DataLoader(
            self.batches, batch_size=None, sampler=range(self.state.step, self.total_steps),
            num_workers=self.cfg.data.num_workers, collate_fn=_identity,
            pin_memory=self.device.type == 'cuda', prefetch_factor=4 if self.cfg.data.num_workers else None,
            persistent_workers=False,
            # Its own generator: creating the iterator must not draw from the global torch RNG, whose
            # state (drop-path) a resumed run restores from the checkpoint.
            generator=torch.Generator().manual_seed(self.cfg.seed))
        bar = self._progress()
        eval_every = self._eval_every()
        objects_world = self.cfg.batch_size * self.spec.world_size
        self.module.train()
        t_last, n_since = time.perf_counter(), 0
        sums: dict[str, torch.Tensor] = {}  # device sums since the last record: no per-step host sync
        last_eval_step = -1
        for batch in loader:
            res = train_step(self.step_module, self.loss, self.optimizer, self.scheduler,
                             batch_to_device(batch, self.device), self.cfg.optim.grad_clip, self.device,
                             self.cfg.precision)
            self.state.step += 1
            n_since += 1
            ok = ~res.skipped
            for k, v in {'loss': res.loss, **res.terms, '_n': ok.float()}.items():
                v = torch.where(ok, v.float(), 0.0)
                sums[k] = sums[k] + v if k in sums else v
            self._pending_skips = self._pending_skips + res.skipped.int()
            if bar is not None:
                bar.update(1)
            if self._due(self.cfg.log.every_steps) or self.state.step == self.total_steps:
                self._flush_skips()
                now = time.perf_counter()
                rate = n_since * objects_world / max(now - t_last, 1e-9)
                t_last, n_since = now, 0
                # Losses are means over the steps since the last record (skipped steps left out).
                host = {k: float(v) for k, v in sums.items()}
                n = host.pop('_n', 0.0)
                means = {k: v / n for k, v in host.items()} if n else {'loss': float(res.loss)}
                sums = {}
                rec = {'kind': 'train', 'step': self.state.step,
                       'epoch': self.state.step / self.steps_per_epoch, **means,
                       'grad_norm': float(res.grad_norm), 'lr': self.optimizer.param_groups[0]['lr'],
                       'logit_scale': float(self.loss.logit_scale().detach()),
                       'real_fraction': batch.real_fraction, 'objects_per_s': rate,
                       'skipped_steps': self.state.nonfinite_steps}
                if metrics is not None:
                    metrics.write(rec)
                if bar is not None:
                    bar.set_postfix(loss=f'{means["loss"]:.3f}', real=f'{batch.real_fraction:.2f}',
                                    obj_s=f'{rate:.0f}')
            if self._due(eval_every) or self.state.step == self.total_steps:
                scalars = self.evaluate()
                last_eval_step = self.state.step
                if metrics is not None and scalars:
                    metrics.write({'kind': 'eval', 'step': self.state.step, **scalars})
                    self._after_eval(scalars)
                distributed.barrier()
            if self._due(self.cfg.checkpoint.every_steps) and self.state.step < self.total_steps:
                self._flush_skips()
                self.save()
        if bar is not None:
            bar.close()
        summary = self._finish(metrics, last_eval_step)
        distributed.barrier()
        return summary

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
            text_space=self.cfg.text_space.spec,
            prompt_templates=list(self.cfg.text_space.templates),
            input_channels=self.cfg.data.channels,
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

