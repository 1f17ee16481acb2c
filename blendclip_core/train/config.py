"""The trainer's typed configuration: frozen dataclasses read from YAML, overridable by dotted keys.

`load_config(path, overrides=['optim.lr=1e-3'])`; unknown keys are errors that name the key, so a typo
in a long run's config fails at once, not after the first epoch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendclip_core.train.augment import AugmentConfig

DDP_COMMS = ('fp32', 'bf16')  # gradient all-reduce precisions (train.distributed.wrap_ddp)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelConfig:
    name: str = 'pointbert-tiny'  # blendclip_core.encoder model config name
    overrides: dict = field(default_factory=dict)  # create_model(**overrides), e.g. {embed_dim: 32}
    init_checkpoint: str = ''  # start from these encoder weights (our format or a remapped ULIP-2 one)
    # BatchNorm statistics over the global batch (all ranks): a W-rank run then equals one process with
    # the global batch. False = per-rank statistics (the released code's behaviour, faster with compile).
    sync_batchnorm: bool = True


@dataclass(frozen=True)
class TextSpaceConfig:
    """The frozen text space the triplets were embedded with; recorded in the model card and used to
    embed the evaluation vocabulary. spec: any blendclip_core.text_space spec: 'toy' (seeded vectors, for
    --data synthetic), 'file:<path.npz>' (arrays 'names', 'embeddings'; the card records the spec the file
    names), 'openclip:ViT-B-16:datacomp_xl_s13b_b90k', 'minilm:all-MiniLM-L6-v2'."""

    spec: str = 'toy'
    params: dict = field(default_factory=dict)  # the space's constructor arguments, e.g. {text_seed: 1}
    templates: tuple[str, ...] = ('point cloud of a {}.',)


@dataclass(frozen=True)
class SourceConfig:
    """One triplet source. kind: 'toy' (generated), 'shards' (blendclip-mine output), 'cad' (a mesh,
    ULIP-2 or OpenShape folder embedded by `blendclip-embed --cad`), 'callable' ({target: 'module:function',
    kwargs: {...}} returning a sequence of Triplets). Other keys -> params."""

    kind: str = 'toy'
    name: str = ''
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    synthetic: tuple[SourceConfig, ...] = ()  # the CAD-like side of the curriculum
    real: tuple[SourceConfig, ...] = ()  # the real side (may be empty: synthetic-only training)
    eval: tuple[SourceConfig, ...] = ()  # held-out sets, each evaluated and reported under its name
    channels: int = 3  # point channels fed to the encoder (xyz only for the method)
    max_points: int = 8192  # random subset above this (the encoder also caps by FPS)
    min_points: int = 1  # triplets with fewer points are skipped (counted)
    num_workers: int = 0  # DataLoader worker processes building batches
    # The encoder's input normalisation for every source alike, before augmentation, recorded on the
    # exported card: 'metric' (coordinates as stored, uniform cap) or 'unit_sphere' (the reference:
    # pc_normalize, then FPS cap at max_points). blendclip_core.normalization.
    normalization: str = 'metric'


@dataclass(frozen=True)
class CurriculumConfig:
    schedule: str = 'ramp'  # ramp | static | points
    unit: str = 'epoch'  # the schedule's t: 'epoch' (step / steps_per_epoch) or 'step'
    warmup: float = 1.0  # ramp: t at r = 0
    ramp: float = 0.0  # ramp: length of the linear rise (0 = jump to max_fraction)
    max_fraction: float = 0.3  # ramp: final real fraction
    fraction: float = 0.0  # static: the real fraction
    points: tuple[tuple[float, float], ...] = ()  # points: ((t, fraction), ...)
    excluded_real_classes: tuple[str, ...] = ()  # held out of the real side (unseen-class tests)
    compose_as_ranks: int = 0  # 0: the real world size; W: one process composes W ranks' batches

    def schedule_params(self) -> dict:
        by_kind = {'ramp': {'warmup': self.warmup, 'ramp': self.ramp, 'max_fraction': self.max_fraction},
                   'static': {'fraction': self.fraction}, 'points': {'points': self.points}}
        if self.schedule not in by_kind:
            raise ConfigError(f'curriculum.schedule must be one of {sorted(by_kind)}, got {self.schedule!r}')
        return by_kind[self.schedule]


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_epochs: float = 1.0  # linear lr warm-up
    grad_clip: float = 0.0  # max global grad norm (0 = off)
    max_nonfinite_steps: int = 100  # stop the run after this many skipped (non-finite) steps


@dataclass(frozen=True)
class LossConfig:
    init_logit_scale: float = 1 / 0.07
    max_logit_scale: float = 100.0
    text_weight: float = 1.0
    image_weight: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    every_steps: int = 0  # 0: only at epoch ends listed by every_epochs
    every_epochs: float = 1.0
    batch_size: int = 64
    topk: tuple[int, ...] = (1, 5)
    best_metric: str = ''  # e.g. 'real_heldout/top1'; '' = first eval set's top1
    vocabulary: tuple[str, ...] = ()  # class names; () = the classes found in the eval sets


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int = 500
    keep_last: int = 3
    keep_best: bool = True
    export_name: str = 'encoder.pt'  # final encoder + model card, blendclip_core.checkpoint format


@dataclass(frozen=True)
class LogConfig:
    every_steps: int = 10
    tensorboard: bool = True
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    output_dir: str = 'runs/blendclip'
    device: str = 'auto'  # auto | cpu | cuda
    precision: str = 'bf16'  # bf16 autocast on CUDA; fp32 always on CPU
    compile: bool = False  # torch.compile the encoder
    ddp_comm: str = 'fp32'  # gradient all-reduce under DDP: fp32, or bf16 (half the bytes; CUDA only)
    batch_size: int = 64  # per rank (the method: 64 per GPU x 8 GPUs)
    epochs: float = 250.0
    steps_per_epoch: int = 0  # 0: enough steps to see epoch_coverage of the synthetic set per epoch
    epoch_coverage: float = 0.8
    max_steps: int = 0  # >0 caps the run (smoke tests)
    model: ModelConfig = field(default_factory=ModelConfig)
    text_space: TextSpaceConfig = field(default_factory=TextSpaceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.ddp_comm not in DDP_COMMS:
            raise ConfigError(f"ddp_comm must be 'fp32' or 'bf16', got {self.ddp_comm!r}")
        from blendclip_core.normalization import NORMALIZATIONS
        if self.data.normalization not in NORMALIZATIONS:
            raise ConfigError(f'data.normalization must be one of {NORMALIZATIONS}, '
                              f'got {self.data.normalization!r}')


# `--data synthetic`: generated shapes on both sides of the curriculum and two held-out sets (seeds differ,
# so no held-out object was trained on). The toy 'dim' is filled in from the model's output width.
SYNTHETIC_DATA = {
    'synthetic': [{'kind': 'toy', 'name': 'synthetic', 'domain': 'synthetic', 'seed': 0}],
    'real': [{'kind': 'toy', 'name': 'real', 'domain': 'real', 'seed': 1}],
    'eval': [{'kind': 'toy', 'name': 'real_heldout', 'domain': 'real', 'seed': 2, 'per_class': 32},
             {'kind': 'toy', 'name': 'synthetic_heldout', 'domain': 'synthetic', 'seed': 3, 'per_class': 32}],
}


def _source_from(value: Any, where: str) -> SourceConfig:
    if isinstance(value, SourceConfig):
        return value
    if not isinstance(value, dict) or 'kind' not in value:
        raise ConfigError(f'{where}: a source needs a mapping with a "kind", got {value!r}')
    rest = {k: v for k, v in value.items() if k not in ('kind', 'name', 'params')}
    return SourceConfig(str(value['kind']), str(value.get('name', '')), {**value.get('params', {}), **rest})


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if tp is SourceConfig:
            return _source_from(value, where)
        return from_dict(tp, value, where + '.')
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {value!r}')
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f'{where}[{i}]') for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f'{where}: expected {len(args)} values, got {value!r}')
        return tuple(_convert(a, v, f'{where}[{i}]') for i, (a, v) in enumerate(zip(args, value))) \
            if args else tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected a mapping, got {value!r}')
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true/false, got {value!r}')
        return value
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 2e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp in (int, float):
        wrong = isinstance(value, bool) or not isinstance(value, (int, float))
        if wrong or (tp is int and value != int(value)):
            raise ConfigError(f'{where}: expected {tp.__name__}, got {value!r}')
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {value!r}')
        return value
    return value


def from_dict(cls: type, data: dict | None, where: str = '') -> Any:
    """Build dataclass `cls` from a (YAML) mapping, converting nested dataclasses and checking keys."""
    data = {} if data is None else data
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f'{where or "config"}: expected a mapping, got {data!r}')
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f'unknown config key(s) {", ".join(where + k for k in unknown)}; '
                          f'known under {where.rstrip(".") or "top level"}: {sorted(names)}')
    kwargs = {k: _convert(hints[k], v, f'{where}{k}') for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> Any:
    """Plain dict/list form (for YAML, checkpoints and logs)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split('.')
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f'cannot set {key}: {p} is not a section')
    d[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=1e-3' -> ('optim.lr', 0.001); values are YAML (lists, numbers, true/false)."""
    import yaml

    if '=' not in text:
        raise ConfigError(f'override {text!r} is not key=value')
    key, raw = text.split('=', 1)
    return key.strip(), yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (),
                base: dict | None = None) -> TrainConfig:
    """Defaults <- base dict <- YAML file (after the file it `extends`) <- dotted overrides."""
    data: dict = to_dict(TrainConfig()) if base is None else base
    data = dict(data)
    if path:
        data = _merge(data, read_yaml(path))
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        _set_dotted(data, key, value)
    return from_dict(TrainConfig, data)


def read_yaml(path: str | Path) -> dict:
    """A config file as a dict; `extends: other.yaml` (relative to the file) is read first and this
    file's keys merged over it (mappings key by key, lists replaced), so a variant names only what differs."""
    import yaml

    with open(path) as f:
        loaded = yaml.safe_load(f) or {}
    parent = loaded.pop('extends', None)
    return _merge(read_yaml(Path(path).parent / parent), loaded) if parent else loaded


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            and k not in ('overrides', 'params') else v
    return out
