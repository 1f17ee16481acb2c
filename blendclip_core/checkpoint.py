"""Encoder checkpoints: our format (weights + model card) and foreign PointBERT layouts.

Our file is a plain torch.save of {'format', 'state_dict', 'card' (JSON text), 'extra',
'content_sha256'}: tensors, strings and numbers only, so `torch.load(..., weights_only=True)` reads it
and nothing in it can run code. `content_sha256` (`seal`) is a sha256 over the rest of the payload
(tensor bytes, dtypes, shapes, keys, values) stored in the file itself, so a moved or copied file stays
checkable; `read_checkpoint` recomputes it and refuses a file whose bytes changed (torch's zip reader
does not check its CRCs: flipped bytes in a tensor otherwise load as other weights). Files without it
(older ones, foreign imports) load with a logged note. The trainer's checkpoints are sealed the same way.
ULIP-2 / BlendCLIP checkpoints (a fork of salesforce/ULIP) are read through the pure key filter
`remap_ulip_state_dict` (timm's checkpoint_filter_fn pattern).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from blendclip_core.atomic import atomic_write
from blendclip_core.encoder import EncoderConfig, PointEncoder, create_model, get_config
from blendclip_core.normalization import CAPS, DEFAULT_CAP, NORMALIZATIONS, REFERENCE_NORMALIZATION

log = logging.getLogger(__name__)

FORMAT = 'blendclip-encoder/1'
DEFAULT_NAME = 'blendclip-default.pt'
ENV_MODEL = 'BLENDCLIP_MODEL'
HASH_KEY = 'content_sha256'


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or its content differs from its hash."""


# ---------------------------------------------------------------------------------------- integrity

def _feed(h, obj: Any) -> None:
    """Hash `obj` with its structure (type tags and lengths), so different payloads cannot collide."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f't{t.dtype}{tuple(t.shape)};'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f'd{len(obj)};'.encode())
        for k, v in obj.items():  # pickle keeps insertion order, so the loaded dict hashes alike
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f'l{len(obj)};'.encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, (str, bytes)):
        b = obj.encode() if isinstance(obj, str) else obj
        h.update(f'{type(obj).__name__}{len(b)};'.encode())
        h.update(b)
    else:  # numbers, bool, None: repr round-trips floats exactly
        h.update(f'{type(obj).__name__}:{obj!r};'.encode())


def content_digest(payload: dict[str, Any]) -> str:
    """sha256 over everything in `payload` except its own hash field."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != HASH_KEY})
    return h.hexdigest()


def seal(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` plus its content hash, checked by read_checkpoint."""
    return {**payload, HASH_KEY: content_digest(payload)}


def verify_seal(payload: dict[str, Any], path: str | Path) -> None:
    if HASH_KEY not in payload:
        log.info('%s has no content hash (an older or foreign checkpoint): loaded without an integrity '
                 'check', path)
        return
    if content_digest(payload) != payload[HASH_KEY]:
        raise CheckpointError(f'{path}: content differs from its hash ({HASH_KEY}): the file is corrupted; '
                              f'use another copy or checkpoint')


@dataclass
class ModelCard:
    """What a checkpoint is: enough to use it correctly and to know what to expect from it."""

    name: str
    architecture: dict[str, Any] = field(default_factory=dict)  # EncoderConfig.to_dict()
    embed_dim: int = 512
    text_space: str = ''  # e.g. 'openclip:ViT-B-16:datacomp_xl_s13b_b90k' or 'minilm:all-MiniLM-L6-v2'
    prompt_templates: list[str] = field(default_factory=lambda: ['point cloud of a {}.'])
    input_channels: int = 3
    max_points: int = 8192
    training_data: dict[str, Any] = field(default_factory=dict)  # free form: sets, ratios, epochs
    classes_seen: list[str] = field(default_factory=list)  # classes present in the real training data
    metrics: dict[str, float] = field(default_factory=dict)
    logit_scale: float = 1.0 / 0.07
    # Encoder precision on CUDA: 'bf16' (fast) or 'fp32' for models whose class margins are too small
    # for bf16 (the shipped MiniLM default). The CPU always runs fp32.
    inference_precision: str = 'bf16'
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec='seconds'))
    notes: str = ''
    # The encoder's input normalisation (blendclip_core.normalization): 'metric' (our models: metres,
    # centred by the crop) or 'unit_sphere' (ULIP-2/BlendCLIP). A stored card without it is refused at
    # load unless the caller names one (load_checkpoint(input_normalization=...)).
    input_normalization: str = 'metric'
    input_cap: str = ''  # 'fps' or 'uniform' above max_points; '' = normalization.DEFAULT_CAP of the kind

    @property
    def cap(self) -> str:
        return self.input_cap or DEFAULT_CAP[self.input_normalization]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            log.warning('model card: ignoring unknown fields %s', extra)
        return cls(**{k: v for k, v in d.items() if k in known})


def save_checkpoint(path: str | Path, model: PointEncoder, card: ModelCard,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically (temporary file + rename): a crash never leaves a half-written checkpoint.
    The card's architecture, embed_dim, input_channels and max_points are taken from the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    card.architecture = model.config.to_dict()
    card.embed_dim = model.embed_dim
    card.input_channels = model.in_channels
    card.max_points = model.config.max_points
    payload = seal({'format': FORMAT, 'state_dict': {k: v.detach().cpu().contiguous()
                                                     for k, v in model.state_dict().items()},
                    'card': card.to_json(), 'extra': extra or {}})
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """The raw payload, loaded safely (argparse.Namespace, which ULIP files carry, is allowed) and checked
    against its content hash. Any damage raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        try:
            return {'state_dict': load_file(str(path), device=str(map_location))}
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f'{path}: unreadable safetensors file ({e})') from e
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # pickle and zip errors come in many types
            raise CheckpointError(f'{path}: unreadable checkpoint (truncated, corrupted, or not loadable '
                                  f'with safe loading): {e}') from e
    if not isinstance(payload, dict):
        raise CheckpointError(f'{path}: expected a dict checkpoint, got {type(payload).__name__}')
    verify_seal(payload, path)
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu',
                    input_normalization: str | None = None,
                    **overrides: Any) -> tuple[PointEncoder, ModelCard]:
    """Our checkpoint or a ULIP-2/BlendCLIP one -> (model in eval mode, card).

    input_normalization: what the encoder's inputs are ('metric' or 'unit_sphere'); needed only for a
    card of ours that does not record it (trained before it was recorded: refused otherwise), and it
    overrides a recorded one (logged). Foreign checkpoints get the reference's 'unit_sphere' + FPS cap.
    overrides change config fields that do not touch weight shapes (e.g. max_points, drop_path);
    for a foreign checkpoint they also pick the architecture (config='pointbert-s' by default).
    """
    payload = read_checkpoint(path, map_location)
    unknown: list[str] = []
    state = encoder_state_dict(payload, path, unknown)
    if payload.get('format') == FORMAT:
        card = card_with_normalization(json.loads(payload['card']), path, input_normalization)
        config = EncoderConfig.from_dict(card.architecture, **overrides)
    else:
        base = overrides.pop('config', 'pointbert-s')
        config = get_config(base, embed_dim=int(state['proj.weight'].shape[0]), **overrides)
        card = ModelCard(name=Path(path).stem, notes=f'imported from a ULIP-2/BlendCLIP-style checkpoint; '
                         f'{len(unknown)} foreign keys ignored; text space unknown: set it',
                         input_normalization=_checked_kind(input_normalization or REFERENCE_NORMALIZATION))
        card.architecture, card.embed_dim = config.to_dict(), config.embed_dim
        card.max_points = config.max_points  # the reference's npoints (8,192): FPS caps above it
    model = create_model(config)
    load_weights(model, state, path)
    return model.to(map_location).eval(), card


def _checked_kind(kind: str) -> str:
    if kind not in NORMALIZATIONS:
        raise CheckpointError(f'unknown input normalisation {kind!r}; choose one of {NORMALIZATIONS}')
    return kind


def card_with_normalization(stored: dict[str, Any], path: str | Path,
                            input_normalization: str | None = None) -> ModelCard:
    """The card of one of our checkpoints, its input normalisation checked (see load_checkpoint)."""
    recorded = stored.get('input_normalization', '')
    if not recorded and input_normalization is None:
        raise CheckpointError(
            f'{path}: the model card does not record its input normalisation (a checkpoint from before '
            f'it was recorded); say which its encoder was trained on: input_normalization="metric" '
            f'(our models until now: metres, centred by the crop) or "unit_sphere" (ULIP-2/BlendCLIP), '
            f'or re-save it with the field (ModelCard.input_normalization)')
    card = ModelCard.from_dict(stored)
    if input_normalization is not None:
        if recorded and recorded != input_normalization:
            log.warning('%s: card records input normalisation %r; using %r as asked', path, recorded,
                        input_normalization)
        card.input_normalization = input_normalization
    _checked_kind(card.input_normalization)
    if card.input_cap not in ('', *CAPS):
        raise CheckpointError(f'{path}: unknown input cap {card.input_cap!r}; choose one of {CAPS}')
    return card


def encoder_state_dict(payload: dict[str, Any], path: str | Path,
                       unknown: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The encoder weights of a payload from read_checkpoint: ours as stored, a foreign one remapped
    (its left-out keys appended to `unknown`)."""
    if payload.get('format') == FORMAT:
        return payload['state_dict']
    state = remap_ulip_state_dict(payload.get('state_dict', payload.get('model', payload)), unknown)
    if 'proj.weight' not in state:
        raise CheckpointError(f'{path}: no point encoder weights found (keys like {list(payload)[:5]})')
    return state


def load_weights(model: PointEncoder, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy `state` into `model`; every weight must fit (a clear error naming the file otherwise)."""
    name = getattr(getattr(model, 'config', None), 'name', type(model).__name__)
    own = model.state_dict()
    shapes = [f'{k} {tuple(v.shape)} (model {tuple(own[k].shape)})' for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if shapes:  # checked here: torch's own message spans many lines
        raise CheckpointError(f'{path}: weights do not fit {name}: {len(shapes)} of other shapes, e.g. '
                              f'{"; ".join(shapes[:3])}')
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f'{path}: weights do not fit {name}: missing {missing[:8]}, '
                              f'unexpected {unexpected[:8]}')


def init_from_checkpoint(model: PointEncoder, path: str | Path) -> PointEncoder:
    """Start `model` (built from its own config) from the encoder weights in `path` (our format or a
    ULIP-2/BlendCLIP one): the trainer's model.init_checkpoint."""
    load_weights(model, encoder_state_dict(read_checkpoint(path), path), path)
    log.info('encoder weights initialised from %s', path)
    return model


# ----------------------------------------------------------------------------------- foreign layouts

_CLIP_PREFIXES = ('open_clip_model.', 'visual.', 'transformer.', 'token_embedding.', 'ln_final.',
                  'image_projection', 'text_projection', 'positional_embedding', 'logit_scale')
_RENAMES = [  # (pattern on the key without 'point_encoder.', replacement)
    (r'^encoder\.(first_conv|second_conv)\.', r'tokenizer.\1.'),
    (r'^blocks\.blocks\.(\d+)\.', r'blocks.\1.'),
    (r'^(reduce_dim|pos_embed|norm)\.', r'\1.'),
    (r'^(cls_token|cls_pos)$', r'\1'),
]


def remap_ulip_state_dict(state: dict[str, torch.Tensor],
                          unknown: list[str] | None = None) -> dict[str, torch.Tensor]:
    """ULIP-2 / BlendCLIP PointBERT keys -> PointEncoder keys (pure: returns a new dict).

    Strips 'module.' and 'point_encoder.' prefixes, renames encoder.* -> tokenizer.*,
    blocks.blocks.N -> blocks.N, squeezes 1x1 Conv1d weights to Linear, and turns the (768, D)
    `pc_projection` matrix into proj.weight (D, 768). Keys it does not know (CLIP towers, heads) are
    left out, appended to `unknown` and logged. Already-remapped keys pass through unchanged.
    """
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, value in state.items():
        k = key
        while k.startswith('module.'):
            k = k[len('module.'):]
        if k == 'pc_projection':
            out['proj.weight'] = value.t().contiguous()
            continue
        if k.startswith('point_encoder.'):
            k = k[len('point_encoder.'):]
        new = None
        for pattern, repl in _RENAMES:
            if re.match(pattern, k):
                new = re.sub(pattern, repl, k)
                break
        if new is None and re.match(r'^(tokenizer\.|blocks\.\d+\.|proj\.weight$)', k):
            new = k  # our own layout
        if new is None:
            skipped.append(key)
            continue
        if value.ndim == 3 and value.shape[-1] == 1 and new.startswith('tokenizer.'):
            value = value[..., 0]
        out[new] = value
    if skipped:
        clip = sum(s.startswith(_CLIP_PREFIXES) or '.'.join(s.split('.')[1:]).startswith(_CLIP_PREFIXES)
                   for s in skipped)
        log.info('remap: left out %d keys (%d of the CLIP towers), e.g. %s', len(skipped), clip, skipped[:5])
        if unknown is not None:
            unknown.extend(skipped)
    return out


# ------------------------------------------------------------------------------------ default model

def default_checkpoint_path() -> Path | None:
    """$BLENDCLIP_MODEL, else the repository's models/default, else an installed share/blendclip copy."""
    env = os.environ.get(ENV_MODEL)
    if env:
        return Path(env).expanduser()
    rel = Path('models') / 'default' / DEFAULT_NAME
    candidates = [Path(__file__).resolve().parents[1] / rel]
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates += [Path(p) / 'share' / 'blendclip' / rel for p in [*prefixes, sys.prefix]]
    for c in candidates:
        if c.is_file():
            return c
    return None
