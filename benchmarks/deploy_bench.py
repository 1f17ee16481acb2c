"""Exported encoders vs eager: a realistic 64-object frame, p50/p99, per format, in one run.

    python benchmarks/deploy_bench.py --device cpu                 # this machine: eager, aoti, onnx
    python benchmarks/deploy_bench.py --device cuda --config pointbert-s   # GPU: eager+graphs, aoti, onnx
Each format is timed through the classifier's `embed` (ObjectBatch on the host -> normalised
embeddings, synchronised): the grouping pre-step included, so the numbers compare what a node would
see. Frames: benchmarks/encoder_bench.realistic_frame (64 objects, 3..4000 points), 16 cycled.
Keys `frame64_realistic_ms_p50_<format>` / `_p99_` on CUDA (onnx: CUDA provider, when installed) and
`frame64_realistic_ms_p50_cpu_<format>` on the CPU; results merge into --out, so a CPU and a GPU run
share the file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from encoder_bench import realistic_frame, time_calls  # noqa: E402
from machine import cpu_name  # noqa: E402

from blendclip_core.checkpoint import ModelCard, default_checkpoint_path, save_checkpoint  # noqa: E402
from blendclip_core.classifier import ZeroShotClassifier  # noqa: E402
from blendclip_core.encoder import create_model  # noqa: E402
from blendclip_core.export import export_artefact, load_exported  # noqa: E402
from blendclip_core.vocabulary import DRIVING  # noqa: E402

log = logging.getLogger('deploy_bench')
RESULTS = Path(__file__).resolve().parent / 'results' / 'deploy.json'


def random_checkpoint(config: str, root: Path) -> Path:
    """A randomly initialised `config` model in a `file:` space of seeded class vectors (timing only)."""
    torch.manual_seed(0)
    model = create_model(config).eval()
    emb = np.random.default_rng(0).normal(size=(len(DRIVING), model.embed_dim)).astype(np.float32)
    np.savez(root / 'classes.npz', names=np.array(DRIVING), embeddings=emb)
    card = ModelCard(name=f'{config}-random', text_space=f'file:{root / "classes.npz"}')
    return save_checkpoint(root / f'{config}.pt', model, card)


def classifiers(checkpoint: Path, device: torch.device, root: Path) -> dict[str, ZeroShotClassifier]:
    """format -> classifier: the eager model (CUDA graphs on CUDA), AOTInductor, ONNX Runtime."""
    out = {'eager': ZeroShotClassifier.from_checkpoint(checkpoint, device=str(device))}
    out['aoti'] = load_exported(export_artefact(checkpoint, 'aoti', root / 'aoti', device=device.type))
    onnx_dir = export_artefact(checkpoint, 'onnx', root / 'onnx')
    import onnxruntime

    if device.type == 'cpu' or 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        out['onnx'] = load_exported(onnx_dir, device=str(device))
    else:
        log.warning('onnxruntime has no CUDA provider here: onnx not timed on %s', device)
    return out


def bench(clf: ZeroShotClassifier, frames: list, reps: int, device: torch.device) -> np.ndarray:
    for f in frames:  # warm-up: graphs captured, kernels loaded, allocator settled
        clf.embed(f)
    return time_calls(clf.embed, frames, reps, device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--checkpoint', type=Path, default=None, help='default: the shipped model')
    ap.add_argument('--config', default=None, help='time a random-weight architecture instead (pointbert-s)')
    ap.add_argument('--reps', type=int, default=None, help='timed frames (default 200 on CUDA, 30 on CPU)')
    ap.add_argument('--threads', type=int, default=1, help='CPU threads for torch and ONNX Runtime')
    ap.add_argument('--out', type=Path, default=RESULTS, help='JSON results file (merged)')
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    reps = args.reps or (200 if device.type == 'cuda' else 30)
    rng = np.random.default_rng(0)
    frames = [realistic_frame(rng) for _ in range(16)]
    prefix = 'frame64_realistic_ms_{}_' + ('cpu_' if device.type == 'cpu' else '')
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = random_checkpoint(args.config, root) if args.config else (args.checkpoint
                                                                               or default_checkpoint_path())
        for fmt, clf in classifiers(checkpoint, device, root).items():
            ms = bench(clf, frames, reps, device)
            results[prefix.format('p50') + fmt] = float(np.percentile(ms, 50))
            results[prefix.format('p99') + fmt] = float(np.percentile(ms, 99))
            log.info('%s: p50 %.2f ms, p99 %.2f ms', fmt, *np.percentile(ms, [50, 99]))
    threads = f'{cpu_name()} ({args.threads} threads)'
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else threads
    run = {'device': name, 'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
           'model': args.config or Path(checkpoint).name, 'torch': torch.__version__, 'reps': reps}
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {'results': {}, 'runs': {}}
    doc['results'].update(results)
    doc['runs'][device.type] = run
    # the results format's top-level fields: every machine that contributed keys (runs: which gave which)
    doc['device'] = '; '.join(f'{kind}: {r["device"]}' for kind, r in sorted(doc['runs'].items()))
    doc['date'] = run['date']
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + '\n')
    print(json.dumps({**run, **results}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
