"""`make bench`: every benchmark this machine can run, then the README's table.

CPU benchmarks always run; the GPU ones (encoder latency on CUDA, trainer throughput/MFU) only where
CUDA is available. Each script writes its own benchmarks/results/<topic>.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'

CPU = [
    ['preprocess_bench.py', '--out', str(RESULTS / 'preprocess.json')],
    ['mining_bench.py', '--out', str(RESULTS / 'mining.json')],
    ['bags_bench.py', '--out', str(RESULTS / 'bags.json')],
    ['encoder_bench.py', '--device', 'cpu', '--out', str(RESULTS / 'encoder_cpu.json')],
    ['node_bench.py', '--out', str(RESULTS / 'node.json')],
]
GPU = [
    ['encoder_bench.py', '--device', 'cuda', '--out', str(RESULTS / 'encoder.json')],
    ['trainer_bench.py', '--out', str(RESULTS / 'trainer.json')],
    ['step_floor_bench.py', '--out', str(RESULTS / 'step_floor.json')],
]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    runs = CPU + (GPU if _cuda_available() else [])
    failed = []
    for i, (script, *args) in enumerate(runs, 1):
        print(f'[{i}/{len(runs)}] {script} {" ".join(args)}', flush=True)
        if subprocess.run([sys.executable, str(ROOT / 'benchmarks' / script), *args], cwd=ROOT).returncode:
            failed.append(script)
    subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'render_table.py')], check=True)
    if failed:
        print(f'failed: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
