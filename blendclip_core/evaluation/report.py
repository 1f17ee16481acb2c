"""What an evaluation writes: metrics.json (every number), per_class.md and confusion.png."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from blendclip_core.evaluation.metrics import ZeroShotResult
from blendclip_core.evaluation.protocol import Protocol


def summary(result: ZeroShotResult, protocol: Protocol, **extra) -> dict:
    """The metrics.json content: protocol, date, headline numbers, `extra` (source, filters, counts)."""
    return {'protocol': protocol.name, 'classes': list(protocol.class_names),
            'prompt_templates': list(protocol.templates),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            **result.scalars(), **extra, 'result': result.to_dict(), 'files': {}}


def write_outputs(out: Path, result: ZeroShotResult, summary: dict) -> None:
    """per_class.md and confusion.png into `out`; their paths (and metrics.json's) into summary['files']."""
    from blendclip_core.evaluation.plots import plot_confusion_matrix
    out.mkdir(parents=True, exist_ok=True)
    (out / 'per_class.md').write_text(result.table() + '\n')
    title = f'{summary["protocol"]}: top-1 {100 * result.overall[1]:.1f} % ({result.num_samples} boxes)'
    plot_confusion_matrix(result.confusion, result.class_names, out / 'confusion.png', title=title)
    summary['files'].update({'per_class': str(out / 'per_class.md'), 'confusion': str(out / 'confusion.png'),
                             'metrics': str(out / 'metrics.json')})


def write_metrics(out: Path, summary: dict) -> None:
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2))
