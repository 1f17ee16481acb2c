"""`export_artefact`: a checkpoint + a vocabulary -> an artefact folder (blendclip-export's work)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from blendclip_core.checkpoint import ModelCard, default_checkpoint_path, load_checkpoint
from blendclip_core.classifier import ZeroShotClassifier, text_space_for_checkpoint
from blendclip_core.encoder import PointEncoder
from blendclip_core.export.artefact import (
    FORMAT,
    MANIFEST,
    MODEL_FILES,
    VOCABULARY_FILE,
    ArtefactError,
    card_digest,
    write_manifest,
    write_vocabulary,
)
from blendclip_core.export.graph import OPSET, compile_aoti, export_program, shape_limits, write_onnx
from blendclip_core.vocabulary import DEFAULT_TEMPLATES, DRIVING

log = logging.getLogger(__name__)
FORMATS = tuple(MODEL_FILES)
INPUT_SHAPES = {'patches': ['P', 'G', 'C'], 'centres': ['P', 3], 'order': ['T'], 'cls_rows': ['n'],
                'pool_index': ['n', 'K'], 'pad_index': ['n', 'L'], 'pad_valid': ['n', 'L'], 'pad_flat': ['T']}


def export_artefact(checkpoint: str | Path | None, fmt: str, out: str | Path,
                    labels: Sequence[str] | None = None, templates: Sequence[str] | None = None,
                    device: str = 'cpu', opset: int = OPSET, input_normalization: str | None = None) -> Path:
    """Write `out`/ (manifest.json, vocabulary.npz, encoder.pt2 or encoder.onnx); returns the folder.

    checkpoint None: the shipped default. labels / templates None: the driving vocabulary and the card's
    templates. device: where an AOTInductor package runs (cpu or cuda); ONNX is device-neutral.
    input_normalization: for a card that does not record it (load_checkpoint's); the manifest's card
    records it, and load_exported applies it as the checkpoint's classifier does.
    """
    if fmt not in FORMATS:
        raise ArtefactError(f'unknown export format {fmt!r}; choose one of {FORMATS}')
    path = Path(checkpoint) if checkpoint else default_checkpoint_path()
    if path is None:
        raise ArtefactError('no checkpoint given and no packaged default model found')
    encoder, card = load_checkpoint(path, map_location='cpu', input_normalization=input_normalization)
    space = text_space_for_checkpoint(path, card.text_space)
    templates = list(templates or card.prompt_templates or DEFAULT_TEMPLATES)
    classifier = ZeroShotClassifier(encoder, space, list(labels or DRIVING), templates, device='cpu',
                                    logit_scale=card.logit_scale)
    vocab = classifier.vocabulary
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)  # no manifest until every file it lists is complete
    write_vocabulary(root / VOCABULARY_FILE, list(vocab.labels), list(vocab.templates),
                     vocab.embeddings.cpu().numpy(), space.spec, space.weights_id)
    model = _write_model(encoder, card, fmt, root, torch.device(device if fmt == 'aoti' else 'cpu'), opset)
    vocabulary = {'labels': list(vocab.labels), 'templates': list(vocab.templates), 'size': len(vocab.labels),
                  'text_space': space.spec, 'version': vocab.version, 'file': VOCABULARY_FILE}
    write_manifest(root, card, model, vocabulary)
    log.info('exported %s (%s) with %d labels to %s', card.name, fmt, len(vocab.labels), root)
    return root


def _write_model(encoder: PointEncoder, card: ModelCard, fmt: str, root: Path, device: torch.device,
                 opset: int) -> dict[str, Any]:
    """The exported file, written under a temporary name and renamed; its manifest entry."""
    name = MODEL_FILES[fmt]
    tmp = root / f'.{name}.tmp-{os.getpid()}{Path(name).suffix}'
    metadata = {'format': FORMAT, 'card_sha256': card_digest(card), 'embed_dim': str(card.embed_dim)}
    program = export_program(encoder, device)
    try:
        if fmt == 'aoti':
            compile_aoti(program, tmp, metadata)
        else:
            write_onnx(program, encoder, tmp, metadata, opset)
        os.replace(tmp, root / name)
    finally:
        tmp.unlink(missing_ok=True)
    entry = {'format': fmt, 'file': name, 'device': device.type, 'precision': 'fp32',
             'inputs': INPUT_SHAPES, 'output': ['n', card.embed_dim], 'shape_limits': shape_limits(encoder),
             'group_size': encoder.config.group_size, 'in_channels': encoder.in_channels,
             'torch': torch.__version__}
    if fmt == 'onnx':
        entry['opset'] = opset
    return entry
