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
import logging
import sys
from pathlib import Path

from blendclip_core.evaluation.labelled import MATCH_MODES


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
    from blendclip_ros.bag.evaluate import run
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
