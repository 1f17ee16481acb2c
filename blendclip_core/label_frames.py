"""Label your own sensor's frames without a bag: points + boxes files in, a table, labels.json and a
bird's-eye PNG per frame out, through the same `label_frame` the node runs.

Inputs are whatever `datasets.labelled.read_labelled_frames` reads (a KITTI / AV2 / nuScenes-sample
folder or file, or a points file with a boxes file: KITTI label_2, AV2 annotations JSON or a simple
JSON list). Ground-truth labels, where the files have them, are shown beside the prediction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from blendclip_core.types import ObjectStatus
from blendclip_core.vocabulary import VOCABULARIES


@dataclass(frozen=True)
class LabelRow:
    frame: str
    box: str
    label: str  # best label ('' when the box was not classified)
    score: float
    top: tuple[str, ...]
    points: int
    status: str
    truth: str  # nuScenes-10 class from the files, '' when unknown


def parse_vocabulary(text: str | None) -> tuple[str, ...]:
    """A vocabulary name (nuscenes, driving, truckscenes) or comma-separated labels; None: driving."""
    if not text:
        return VOCABULARIES['driving']
    if text in VOCABULARIES:
        return VOCABULARIES[text]
    return tuple(label.strip() for label in text.split(',') if label.strip())


def _rows(frame, pred) -> list[LabelRow]:
    rows = []
    for i, box in enumerate(frame.boxes.ids):
        labelled = pred.indices[i, 0] >= 0
        top = tuple(pred.vocabulary[j] for j in pred.indices[i] if j >= 0)
        rows.append(LabelRow(frame.token, box, top[0] if labelled else '',
                             float(pred.scores[i, 0]) if labelled else 0.0, top, int(pred.num_points[i]),
                             ObjectStatus(int(pred.status[i])).name, frame.labels[i] or ''))
    return rows


def _plot(frame, rows: list[LabelRow], path: Path) -> Path:
    from blendclip_core.evaluation.bev import CORRECT, NOT_EVALUATED, WRONG, plot_bev
    from blendclip_core.evaluation.protocol import normalise_label

    outcome = [NOT_EVALUATED if not r.truth or not r.label else
               CORRECT if normalise_label(r.label) == normalise_label(r.truth) else WRONG for r in rows]
    texts = [f'{r.label} {r.score:.2f}' if r.label else r.status.lower() for r in rows]
    title = f'{frame.token}: {len(rows)} boxes'
    return plot_bev(frame.points, frame.boxes, outcome, texts, path, title=title)


def label_files(source: str | Path, boxes: str | Path | None, out: str | Path, checkpoint: str | None = None,
                vocabulary: str | None = None, device: str = 'auto', classifier: str = 'points',
                depth_space: str | None = None) -> list[LabelRow]:
    """Label every frame of the files; writes out/labels.json and out/<frame>_bev.png. classifier and
    depth_space: as blendclip_core.depth_views.load_classifier (points, depth_views or both)."""
    from blendclip_core.datasets.labelled import read_labelled_frames
    from blendclip_core.depth_views import load_classifier
    from blendclip_core.pipeline import label_frame

    frames = list(read_labelled_frames(source, boxes))  # file errors before the model loads
    model = load_classifier(checkpoint, parse_vocabulary(vocabulary), classifier=classifier, device=device,
                            depth_space=depth_space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, pngs = [], []
    for frame in frames:
        frame_rows = _rows(frame, label_frame(frame.points, frame.boxes, model))
        pngs.append(str(_plot(frame, frame_rows, out / f'{frame.token}_bev.png')))
        rows += frame_rows
    (out / 'labels.json').write_text(json.dumps(
        {'model': checkpoint or 'shipped default', 'classifier': classifier, 'vocabulary': list(model.labels),
         'bev': pngs,
         'objects': [asdict(r) for r in rows]}, indent=1) + '\n')
    return rows


def format_table(rows: list[LabelRow]) -> str:
    """A fixed-width text table: frame, box, label, score, points, status, ground truth."""
    head = ('frame', 'box', 'label', 'score', 'points', 'status', 'truth')
    cells = [head] + [(r.frame, r.box[:12], r.label, f'{r.score:.2f}', str(r.points), r.status, r.truth)
                      for r in rows]
    widths = np.max([[len(c) for c in row] for row in cells], axis=0)
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
