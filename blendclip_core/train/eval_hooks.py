"""What the trainer evaluates with: the zero-shot head of the evaluation vocabulary (the one factory,
blendclip_core.text_space.build_zero_shot_classifier), point embeddings of a held-out pool, metrics, and
the files a final evaluation leaves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blendclip_core.normalization import box_size_input
from blendclip_core.text_space import TextSpace, build_zero_shot_classifier, create_text_space
from blendclip_core.train.config import TrainConfig
from blendclip_core.train.sources import TripletPool
from blendclip_core.train.step import autocast_for, embed_dim_of


def text_space_of(cfg: TrainConfig, dim: int) -> TextSpace:
    """The configured text space (a registered spec: toy, file:, openclip:, minilm:), `dim` wide."""
    return create_text_space(cfg.text_space.spec, dim=dim, **cfg.text_space.params)


def class_text_embeddings(space: TextSpace, templates, names: list[str], dim: int) -> np.ndarray:
    """(K, D) unit text embeddings of the vocabulary in `space`. Label names are embedded as words
    ('construction_vehicle' -> 'construction vehicle')."""
    words = [n.replace('_', ' ') for n in names]
    emb = build_zero_shot_classifier(space, words, list(templates)).numpy().astype(np.float32)
    if emb.shape[1] != dim:
        raise ValueError(f'text space {space.spec!r} is {emb.shape[1]}-d but the encoder outputs {dim}-d')
    return emb


@torch.no_grad()
def embed_triplets(encoder: nn.Module, triplets: TripletPool, cfg: TrainConfig, device: torch.device,
                   indices: np.ndarray | None = None) -> np.ndarray:
    """(N, D) L2-normalised point embeddings, eval mode, no augmentation (deterministic subsets); inputs
    normalised as in training (sources.prepare_objects, box sizes when the model takes them)."""
    from blendclip_core.normalization import append_box_size
    from blendclip_core.train.sources import box_sizes, prepare_objects
    from blendclip_core.types import ObjectBatch

    was_training = encoder.training
    encoder.eval()
    indices = np.arange(len(triplets)) if indices is None else indices
    out = []
    try:
        for s in range(0, len(indices), cfg.eval.batch_size):
            chunk = indices[s:s + cfg.eval.batch_size]
            items = [triplets[int(i)] for i in chunk]
            rngs = [np.random.default_rng([cfg.seed, int(i)]) for i in chunk]
            pts = prepare_objects(items, cfg.data.channels, cfg.data.max_points, rngs, cfg.data.normalization)
            batch = ObjectBatch.from_list(pts, cfg.data.channels)
            if box_size_input(encoder):
                batch = append_box_size(batch, box_sizes(items))
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


def write_eval_outputs(out_dir: Path, name: str, res, step: int) -> None:
    """eval/<name>.json, .md (the table) and _confusion.png of a final evaluation."""
    from blendclip_core.evaluation.plots import plot_confusion_matrix

    ev = out_dir / 'eval'
    ev.mkdir(parents=True, exist_ok=True)
    (ev / f'{name}.json').write_text(json.dumps(res.to_dict(), indent=1))
    (ev / f'{name}.md').write_text(f'# {name} (step {step})\n\n{res.table()}\n')
    plot_confusion_matrix(res.confusion, res.class_names, ev / f'{name}_confusion.png',
                          f'{name}: top-1 confusion, step {step}')
