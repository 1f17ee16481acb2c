"""Zero-shot evaluation of mined real triplets (label_coarse = class) with a checkpoint's classifier:
the protocol's classes embedded with its prompt, every triplet of a class within its range classified."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.evaluation import report
from blendclip_core.evaluation.metrics import TOPK, metrics_from_ranked
from blendclip_core.evaluation.protocol import Protocol, get_protocol

MAX_TORCH_THREADS = 4  # CPU evaluation shares the machine; more threads barely help batch 256


def _ranked_triplets(classifier, triplets, protocol: Protocol, min_points: int, batch_size: int):
    """(order, targets, skipped) of every triplet the protocol evaluates."""
    from blendclip_core.types import ObjectBatch
    skipped = {'outside_classes': 0, 'out_of_range': 0, 'below_min_points': 0}
    batch, targets, order = [], [], []

    def flush():
        if batch:
            preds = classifier.classify(ObjectBatch.from_list([b[0] for b in batch]))
            order.extend(np.asarray(preds.indices)[:, :max(TOPK)].tolist())
            targets.extend(b[1] for b in batch)
            batch.clear()

    for t in triplets:
        cls = protocol.class_index(t.label_coarse) if t.label_coarse else -1
        dist = t.meta.get('distance')
        if cls < 0:
            skipped['outside_classes'] += 1
        elif dist is not None and not protocol.in_range(np.array([cls]), np.array([dist]))[0]:
            skipped['out_of_range'] += 1
        elif len(t.points) < min_points:
            skipped['below_min_points'] += 1
        else:
            batch.append((t.points, cls))
            if len(batch) >= batch_size:
                flush()
    flush()
    return order, targets, skipped


def evaluate_shards(shards: str | Path, checkpoint: str | Path | None,
                    protocol: str | Protocol = 'nuscenes', split: str | None = None, min_points: int = 1,
                    text_space: str | None = None, device: str = 'auto', batch_size: int = 256,
                    out_dir: str | Path | None = None) -> dict:
    """Every number (metrics.json) of the shards' real triplets; writes the files when out_dir is given.
    The range filter uses meta['distance'] (ego ground distance written by the miner) when present."""
    import torch

    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.data.shards import iter_shards, read_index
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    read_index(Path(shards))  # not a shard folder: say so before the model loads
    torch.set_num_threads(max(1, min(MAX_TORCH_THREADS, torch.get_num_threads())))
    classifier = ZeroShotClassifier.from_checkpoint(checkpoint, vocabulary=protocol.class_names,
                                                    templates=protocol.templates, text_space=text_space,
                                                    device=device)
    order, targets, skipped = _ranked_triplets(classifier, iter_shards(Path(shards), split=split), protocol,
                                               min_points, batch_size)
    kmax = max(TOPK)
    order = [list(o) + [-1] * (kmax - len(o)) for o in order]
    result = metrics_from_ranked(np.array(order, np.int64).reshape(-1, kmax), np.array(targets, np.int64),
                                 protocol.class_names)
    out = report.summary(result, protocol, source=str(shards), model=str(checkpoint or 'default'),
                         vocabulary_version=getattr(classifier, 'vocabulary_version', ''),
                         filters={'min_points': min_points, 'split': split, 'ranges_m': protocol.ranges_m},
                         counts={'evaluated': len(targets), **skipped})
    if out_dir is not None:
        report.write_outputs(Path(out_dir), result, out)
        report.write_metrics(Path(out_dir), out)
    return out
