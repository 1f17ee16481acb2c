"""create_model / list_models: architectures are JSON files in model_configs/ (open_clip style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blendclip_core.encoder.config import EncoderConfig
from blendclip_core.encoder.model import PointEncoder

CONFIG_DIR = Path(__file__).resolve().parent / 'model_configs'


def list_models() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob('*.json'))


def get_config(name_or_path: str | Path | EncoderConfig, **overrides: Any) -> EncoderConfig:
    """A config by name ('pointbert-s'), by JSON path, or an EncoderConfig, with field overrides."""
    if isinstance(name_or_path, EncoderConfig):
        return name_or_path.replace(**overrides) if overrides else name_or_path
    path = Path(name_or_path)
    if path.suffix != '.json':
        path = CONFIG_DIR / f'{name_or_path}.json'
        if not path.is_file():
            raise ValueError(f'unknown encoder {name_or_path!r}; known: {", ".join(list_models())}')
    elif not path.is_file():
        raise FileNotFoundError(f'encoder config not found: {path}')
    return EncoderConfig.from_json(path, **overrides)


def create_model(name_or_path: str | Path | EncoderConfig, **overrides: Any) -> PointEncoder:
    """A randomly initialised encoder; load weights with blendclip_core.checkpoint.load_checkpoint."""
    return PointEncoder(get_config(name_or_path, **overrides))
