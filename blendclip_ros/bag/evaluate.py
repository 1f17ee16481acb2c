"""Evaluation of a labelled bag (blendclip-label-bag output or a recording of the node), and what
blendclip-eval does with its parsed arguments.

Each box of /blendclip/objects is paired with /ground_truth/categories by header stamp and box id (or
centre distance); the protocol's filters and the metrics are blendclip_core.evaluation's. Writes
metrics.json, per_class.md, confusion.png and bev.png (the bird's-eye view of one frame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blendclip_core.evaluation import report
from blendclip_core.evaluation.labelled import (
    MATCH_DISTANCE_M,
    LabelledEvaluation,
    evaluate_frames,
    frame_matches,
)
from blendclip_core.evaluation.protocol import Protocol, get_protocol

from .labelled import GROUND_TRUTH, PREDICTIONS, LabelledBag, read_cloud_xyz, read_labelled_bag


def evaluate_labelled_bag(path: str | Path, protocol: str | Protocol = 'nuscenes', min_points: int = 1,
                          closed_set: bool = False, out_dir: str | Path | None = None,
                          bev_stamp_ns: int | None = None, predictions_topic: str = PREDICTIONS,
                          ground_truth_topic: str = GROUND_TRUTH, match: str = 'auto') -> dict:
    """Evaluate a labelled bag; returns every number (and writes the files when out_dir is given)."""
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    bag = read_labelled_bag(path, predictions_topic, ground_truth_topic)
    ev = evaluate_frames(bag.frames, bag.ego_centers, protocol, min_points, closed_set, match)
    distance = ('ground-plane, from base_link' if bag.frame_to_ego
                else 'ground-plane, from the cloud frame (no /tf_static)')
    summary = report.summary(
        ev.result, protocol, source=str(path), model=bag.model, vocabulary_version=bag.vocabulary_version,
        filters={'min_points': min_points, 'closed_set': closed_set, 'match': ev.match,
                 'match_distance_m': MATCH_DISTANCE_M if ev.match == 'center' else None,
                 'ranges_m': protocol.ranges_m, 'distance': distance},
        counts={'frames': len(bag.frames), 'frames_without_labels': ev.unlabelled_frames,
                'gt_boxes': sum(len(f.gt) for f in bag.frames), 'evaluated': len(ev.targets),
                'evaluated_without_prediction': ev.without_prediction, **ev.skipped,
                'prediction_frames_without_gt': bag.unmatched_prediction_frames,
                'corrupt_messages': bag.corrupt.total},
        corrupt_messages=bag.corrupt.as_dict())
    if out_dir is not None:
        report.write_outputs(Path(out_dir), ev.result, summary)
        summary['files']['bev'] = str(write_bev(Path(out_dir) / 'bev.png', path, bag, ev, protocol,
                                                bev_stamp_ns))
        report.write_metrics(Path(out_dir), summary)
    return summary


def write_bev(path: Path, bag_path, bag: LabelledBag, ev: LabelledEvaluation, protocol: Protocol,
              stamp_ns: int | None) -> Path:
    """The requested frame, else the one with the most evaluated boxes."""
    from blendclip_core.evaluation.bev import CORRECT, NOT_EVALUATED, WRONG, plot_bev
    if not bag.frames:
        raise ValueError('the bag holds no ground-truth frames to draw')
    hits = ev.hits()
    if stamp_ns is None:
        frame = max(bag.frames, key=lambda f: sum((f.stamp_ns, i) in hits for i in f.gt.ids))
    else:
        matches = [f for f in bag.frames if f.stamp_ns == stamp_ns]
        if not matches:
            raise ValueError(f'no frame with stamp {stamp_ns}')
        frame = matches[0]
    outcome, texts = [], []
    matched = frame_matches(frame, ev.match)
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


def expected_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises (bags, shards, checkpoints, text spaces); anything else is a bug."""
    from rosbags.highlevel import AnyReaderError

    from blendclip_core.data.shards import ShardError
    from blendclip_core.text_space.base import TextSpaceError
    return ValueError, OSError, AnyReaderError, ShardError, TextSpaceError


def run(args: argparse.Namespace) -> int:
    """blendclip-eval on its parsed arguments: evaluate, print the table and headline; 2 on bad input."""
    from blendclip_core.evaluation.shards import evaluate_shards
    try:
        if args.bag is not None:
            summary = evaluate_labelled_bag(args.bag, args.protocol, args.min_points, args.closed_set,
                                            args.out, args.bev_stamp, args.predictions_topic,
                                            args.ground_truth_topic, args.match)
        else:
            summary = evaluate_shards(args.shards, args.checkpoint or None, args.protocol, args.split,
                                      args.min_points, args.text_space, args.device, out_dir=args.out)
    except expected_errors() as exc:
        # Missing or damaged input, an incomplete bag, a wrong topic or checkpoint: one line, no traceback.
        print(f'blendclip-eval: error: {_one_line(exc)}', file=sys.stderr)
        return 2
    print((Path(args.out) / 'per_class.md').read_text())
    print(f"top-1 {100 * summary['top1']:.2f} %  top-5 {100 * summary['top5']:.2f} %  "
          f"mean per class top-1 {100 * summary['mean_class_top1']:.2f} %  "
          f"({summary['counts']['evaluated']} boxes)  -> {Path(args.out) / 'metrics.json'}")
    corrupt = summary.get('corrupt_messages') or {}
    if corrupt.get('total'):
        named = ', '.join(f"{c['topic']} at {c['log_time_ns']} ns" for c in corrupt['first'])
        print(f"skipped {corrupt['total']} corrupt messages (not evaluated): {named}")
    return 0


def _one_line(exc: BaseException) -> str:
    """rosbags and YAML errors span lines; the CLI prints one."""
    return ' '.join(str(exc).split()) or type(exc).__name__
