"""blendclip-eval: zero-shot accuracy following the method's protocol (classes, class ranges, prompt).

From a labelled bag (blendclip-label-bag output or a recording of the node): each box of
/blendclip/objects is paired with /ground_truth/categories by header stamp and box id; boxes outside the
protocol's classes or beyond their class range (ego distance, via /tf_static) are left out, and so are
boxes the encoder saw fewer than --min-points points of. A box without a label counts as a miss.

From mined triplet shards + a checkpoint: the classifier embeds the protocol's classes with its
prompt ('point cloud of a {}.') and classifies every real triplet whose label_coarse is a class.

Writes into --out: metrics.json (every number), per_class.md, confusion.png and, for bags, bev.png.

  blendclip-eval --bag labelled_bag --out eval/ --min-points 20
  blendclip-eval --shards data/triplets/nuscenes --split val --checkpoint model.pt --out eval/
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.evaluation.metrics import ZeroShotResult, confusion_matrix, topk_hits
from blendclip_core.evaluation.protocol import Protocol, get_protocol, ground_distance

log = logging.getLogger('blendclip-eval')

TOPK = (1, 5)
MATCH_DISTANCE_M = 2.0  # nuScenes detection's tightest centre-distance threshold
MATCH_MODES = ('auto', 'id', 'center')


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises (bags, shards, checkpoints, text spaces); anything else is a bug."""
    from rosbags.highlevel import AnyReaderError

    from blendclip_core.data.shards import ShardError
    from blendclip_core.text_space.base import TextSpaceError
    return ValueError, OSError, AnyReaderError, ShardError, TextSpaceError


def metrics_from_ranked(order: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        topk: Sequence[int] = TOPK) -> ZeroShotResult:
    """Like metrics.zero_shot_metrics, but from ranked class indices (N, k) with -1 for 'no class'
    (a label outside the protocol or no label at all): what a labelled bag holds, scores of only k."""
    order, labels = np.asarray(order, np.int64).reshape(len(labels), -1), np.asarray(labels, np.int64)
    num_classes = len(class_names)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
    overall, mean_pc, per_class = {}, {}, {}
    for k in topk:
        hits = topk_hits(order, labels, k) if len(labels) else np.zeros(0, bool)
        overall[k] = float(hits.mean()) if len(hits) else float('nan')
        per_hits = np.bincount(labels[hits], minlength=num_classes)[:num_classes]
        with np.errstate(invalid='ignore', divide='ignore'):
            per_class[k] = np.where(counts > 0, per_hits / np.maximum(counts, 1), np.nan)
        mean_pc[k] = float(np.nanmean(per_class[k])) if (counts > 0).any() else float('nan')
    top1 = order[:, 0] if order.shape[1] else np.full(len(labels), -1)
    return ZeroShotResult(tuple(class_names), tuple(topk), overall, mean_pc, per_class, counts,
                          confusion_matrix(top1, labels, num_classes), int(len(labels)))


def rank_labels(labels: Sequence[str], protocol: Protocol, k: int, closed_set: bool) -> list[int]:
    """A published ranking -> k class indices. Open (default): labels outside the protocol stay in
    their rank as -1 (a miss). Closed set: they are dropped, which ranks exactly as a classifier
    restricted to the protocol's classes would, as far as the published top-k reaches."""
    idx = [protocol.class_index(lab) for lab in labels]
    if closed_set:
        idx = [i for i in idx if i >= 0]
    return (idx + [-1] * k)[:k]


def match_by_center(gt_centers: np.ndarray, predictions: dict,
                    max_distance: float = MATCH_DISTANCE_M) -> dict:
    """GT index -> prediction, greedily closest pair first, centre distance in the ground plane <= max.
    For bags whose boxes came from a detector (ids unrelated to the ground truth's)."""
    if not predictions or not len(gt_centers):
        return {}
    preds = list(predictions.values())
    p_xy = np.array([p.center[:2] for p in preds], dtype=np.float64)
    d = np.linalg.norm(np.asarray(gt_centers)[:, None, :2] - p_xy[None], axis=-1)
    out, used_gt, used_pred = {}, set(), set()
    for flat in np.argsort(d, axis=None, kind='stable'):
        g, q = np.unravel_index(flat, d.shape)
        if d[g, q] > max_distance:
            break
        if g in used_gt or q in used_pred:
            continue
        out[int(g)] = preds[q]
        used_gt.add(g)
        used_pred.add(q)
    return out


def frame_matches(frame, match: str) -> dict:
    """GT index -> its prediction in one labelled frame ('id' or 'center' pairing)."""
    if match == 'center':
        return match_by_center(frame.gt.centers, frame.predictions)
    return {i: frame.predictions[b] for i, b in enumerate(frame.gt.ids) if b in frame.predictions}


def evaluate_labelled_bag(path: str | Path, protocol: str | Protocol = 'nuscenes', min_points: int = 1,
                          closed_set: bool = False, out_dir: str | Path | None = None,
                          bev_stamp_ns: int | None = None, predictions_topic: str = '/blendclip/objects',
                          ground_truth_topic: str = '/ground_truth/categories', match: str = 'auto') -> dict:
    """Evaluate a labelled bag; returns every number (and writes the files when out_dir is given)."""
    from blendclip_ros.bag.labelled import read_labelled_bag
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    bag = read_labelled_bag(path, predictions_topic, ground_truth_topic)
    if match not in MATCH_MODES:
        raise ValueError(f'match must be one of {MATCH_MODES}, got {match!r}')
    if match == 'auto':
        # Ground-truth boxes replayed as detections keep their ids; a detector's boxes do not.
        shared = any(set(f.predictions) & set(f.gt.ids) for f in bag.frames)
        match = 'id' if shared or not any(f.predictions for f in bag.frames) else 'center'
    kmax = max(TOPK)
    order, targets, keys = [], [], []
    skipped = {'outside_classes': 0, 'out_of_range': 0, 'below_min_points': 0}
    missing = unlabelled_frames = 0
    for frame in bag.frames:
        unlabelled_frames += not frame.labelled
        cls = protocol.class_indices(frame.gt_classes)
        in_range = protocol.in_range(cls, ground_distance(bag.ego_centers(frame)))
        matched = frame_matches(frame, match)
        for i, box_id in enumerate(frame.gt.ids):
            pred = matched.get(i)
            if cls[i] < 0:
                skipped['outside_classes'] += 1
                continue
            if not in_range[i]:
                skipped['out_of_range'] += 1
                continue
            n_points = pred.num_points if pred is not None else int(frame.gt_num_points[i])
            if n_points < min_points:
                skipped['below_min_points'] += 1
                continue
            missing += pred is None
            order.append(rank_labels(pred.labels if pred else (), protocol, kmax, closed_set))
            targets.append(int(cls[i]))
            keys.append((frame.stamp_ns, box_id))
    result = metrics_from_ranked(np.array(order, np.int64).reshape(-1, kmax), np.array(targets, np.int64),
                                 protocol.class_names)
    distance = ('ground-plane, from base_link' if bag.frame_to_ego
                else 'ground-plane, from the cloud frame (no /tf_static)')
    summary = _summary(result, protocol, source=str(path), model=bag.model,
                       vocabulary_version=bag.vocabulary_version,
                       filters={'min_points': min_points, 'closed_set': closed_set, 'match': match,
                                'match_distance_m': MATCH_DISTANCE_M if match == 'center' else None,
                                'ranges_m': protocol.ranges_m, 'distance': distance},
                       counts={'frames': len(bag.frames), 'frames_without_labels': unlabelled_frames,
                               'gt_boxes': sum(len(f.gt) for f in bag.frames), 'evaluated': len(targets),
                               'evaluated_without_prediction': missing, **skipped,
                               'prediction_frames_without_gt': bag.unmatched_prediction_frames,
                               'corrupt_messages': bag.corrupt.total},
                       corrupt_messages=bag.corrupt.as_dict())
    if out_dir is not None:
        hits = {key: bool(o[0] == t) for key, o, t in zip(keys, order, targets)}
        _write_outputs(Path(out_dir), result, summary)
        summary['files']['bev'] = str(_write_bev(Path(out_dir) / 'bev.png', path, bag, hits, protocol,
                                                 bev_stamp_ns, match))
        (Path(out_dir) / 'metrics.json').write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_shards(shards: str | Path, checkpoint: str | Path | None,
                    protocol: str | Protocol = 'nuscenes', split: str | None = None, min_points: int = 1,
                    text_space: str | None = None, device: str = 'auto', batch_size: int = 256,
                    out_dir: str | Path | None = None) -> dict:
    """Evaluate mined real triplets (label_coarse = class) with a checkpoint's zero-shot classifier.
    Range filter uses meta['distance'] (ego ground distance written by the miner) when present."""
    import torch

    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.data.shards import iter_shards, read_index
    from blendclip_core.types import ObjectBatch
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    read_index(Path(shards))  # not a shard folder: say so before the model loads
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    classifier = ZeroShotClassifier.from_checkpoint(checkpoint, vocabulary=protocol.class_names,
                                                    templates=protocol.templates, text_space=text_space,
                                                    device=device)
    skipped = {'outside_classes': 0, 'out_of_range': 0, 'below_min_points': 0}
    batch, targets, order = [], [], []

    def flush():
        if batch:
            preds = classifier.classify(ObjectBatch.from_list([b[0] for b in batch]))
            order.extend(np.asarray(preds.indices)[:, :max(TOPK)].tolist())
            targets.extend(b[1] for b in batch)
            batch.clear()

    for t in iter_shards(Path(shards), split=split):
        cls = protocol.class_index(t.label_coarse) if t.label_coarse else -1
        if cls < 0:
            skipped['outside_classes'] += 1
            continue
        dist = t.meta.get('distance')
        if dist is not None and not protocol.in_range(np.array([cls]), np.array([dist]))[0]:
            skipped['out_of_range'] += 1
            continue
        if len(t.points) < min_points:
            skipped['below_min_points'] += 1
            continue
        batch.append((t.points, cls))
        if len(batch) >= batch_size:
            flush()
    flush()
    kmax = max(TOPK)
    order = [list(o) + [-1] * (kmax - len(o)) for o in order]
    result = metrics_from_ranked(np.array(order, np.int64).reshape(-1, kmax), np.array(targets, np.int64),
                                 protocol.class_names)
    summary = _summary(result, protocol, source=str(shards), model=str(checkpoint or 'default'),
                       vocabulary_version=getattr(classifier, 'vocabulary_version', ''),
                       filters={'min_points': min_points, 'split': split, 'ranges_m': protocol.ranges_m},
                       counts={'evaluated': len(targets), **skipped})
    if out_dir is not None:
        _write_outputs(Path(out_dir), result, summary)
        (Path(out_dir) / 'metrics.json').write_text(json.dumps(summary, indent=2))
    return summary


def _summary(result: ZeroShotResult, protocol: Protocol, **extra) -> dict:
    out = {'protocol': protocol.name, 'classes': list(protocol.class_names),
           'prompt_templates': list(protocol.templates),
           'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
           **result.scalars(), **extra, 'result': result.to_dict(), 'files': {}}
    return out


def _write_outputs(out: Path, result: ZeroShotResult, summary: dict) -> None:
    from blendclip_core.evaluation.plots import plot_confusion_matrix
    out.mkdir(parents=True, exist_ok=True)
    (out / 'per_class.md').write_text(result.table() + '\n')
    title = f'{summary["protocol"]}: top-1 {100 * result.overall[1]:.1f} % ({result.num_samples} boxes)'
    plot_confusion_matrix(result.confusion, result.class_names, out / 'confusion.png', title=title)
    summary['files'].update({'per_class': str(out / 'per_class.md'), 'confusion': str(out / 'confusion.png'),
                             'metrics': str(out / 'metrics.json')})


def _write_bev(path: Path, bag_path, bag, hits: dict, protocol: Protocol, stamp_ns: int | None,
               match: str = 'id') -> Path:
    """The requested frame, else the one with the most evaluated boxes."""
    from blendclip_core.evaluation.bev import CORRECT, NOT_EVALUATED, WRONG, plot_bev
    from blendclip_ros.bag.labelled import read_cloud_xyz
    if not bag.frames:
        raise ValueError('the bag holds no ground-truth frames to draw')
    if stamp_ns is None:
        frame = max(bag.frames, key=lambda f: sum((f.stamp_ns, i) in hits for i in f.gt.ids))
    else:
        matches = [f for f in bag.frames if f.stamp_ns == stamp_ns]
        if not matches:
            raise ValueError(f'no frame with stamp {stamp_ns}')
        frame = matches[0]
    outcome, texts = [], []
    matched = frame_matches(frame, match)
    for i, (box_id, gt_class) in enumerate(zip(frame.gt.ids, frame.gt_classes)):
        hit = hits.get((frame.stamp_ns, box_id))
        outcome.append(NOT_EVALUATED if hit is None else CORRECT if hit else WRONG)
        pred = matched.get(i)
        label = pred.labels[0] if pred and pred.labels else '-'
        texts.append(label if hit else f'{label} (gt {gt_class or "other"})' if hit is not None else '')
    n_eval = sum(o != NOT_EVALUATED for o in outcome)
    n_ok = sum(o == CORRECT for o in outcome)
    title = f'frame {frame.stamp_ns}: {n_ok}/{n_eval} correct ({protocol.name})'
    return plot_bev(read_cloud_xyz(bag_path, frame.stamp_ns), frame.gt, outcome, texts, path, title)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-eval', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--bag', type=Path, help='labelled bag (/blendclip/objects + /ground_truth/categories)')
    src.add_argument('--shards', type=Path, help='directory of mined triplet shards')
    p.add_argument('--out', type=Path, required=True, help='directory for metrics.json, per_class.md, PNGs')
    p.add_argument('--protocol', choices=('nuscenes', 'truckscenes'), default='nuscenes')
    p.add_argument('--min-points', type=int, default=1, help='leave out boxes with fewer points')
    p.add_argument('--closed-set', action='store_true',
                   help='bags: rank only labels that are protocol classes (drop others from the top-k)')
    p.add_argument('--bev-stamp', type=int, help='bags: header stamp (ns) of the frame to draw')
    p.add_argument('--match', choices=MATCH_MODES, default='auto',
                   help='bags: pair labels with ground truth by box id, or by centre distance <= 2 m '
                        '(auto: id when they share ids, e.g. ground-truth boxes, else centre)')
    p.add_argument('--predictions-topic', default='/blendclip/objects', help='bags: the labels')
    p.add_argument('--ground-truth-topic', default='/ground_truth/categories', help='bags: the truth')
    p.add_argument('--checkpoint', help="shards: point-encoder checkpoint ('' = packaged default)")
    p.add_argument('--text-space', help="shards: text space spec (default: the checkpoint's)")
    p.add_argument('--split', help='shards: split to evaluate (e.g. val)')
    p.add_argument('--device', default='auto')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        if args.bag is not None:
            summary = evaluate_labelled_bag(args.bag, args.protocol, args.min_points, args.closed_set,
                                            args.out, args.bev_stamp, args.predictions_topic,
                                            args.ground_truth_topic, args.match)
        else:
            summary = evaluate_shards(args.shards, args.checkpoint or None, args.protocol, args.split,
                                      args.min_points, args.text_space, args.device, out_dir=args.out)
    except _expected_errors() as exc:
        # Missing or damaged input, an incomplete bag, a wrong topic or checkpoint: one line, no traceback.
        print(f'blendclip-eval: error: {_one_line(exc)}', file=sys.stderr)
        return 2
    print((Path(args.out) / 'per_class.md').read_text())
    print(f"top-1 {100 * summary['top1']:.2f} %  top-5 {100 * summary['top5']:.2f} %  "
          f"mean per class top-1 {100 * summary['mean_class_top1']:.2f} %  "
          f"({summary['counts']['evaluated']} boxes)  -> {args.out / 'metrics.json'}")
    corrupt = summary.get('corrupt_messages') or {}
    if corrupt.get('total'):
        named = ', '.join(f"{c['topic']} at {c['log_time_ns']} ns" for c in corrupt['first'])
        print(f"skipped {corrupt['total']} corrupt messages (not evaluated): {named}")
    return 0


def _one_line(exc: BaseException) -> str:
    """rosbags and YAML errors span lines; the CLI prints one."""
    return ' '.join(str(exc).split()) or type(exc).__name__


if __name__ == '__main__':
    sys.exit(main())
