"""Depth-view zero-shot cost: a realistic 64-object frame through DepthViewClassifier.classify.

    python benchmarks/depth_views_bench.py --device cuda   # the issue's figure: one H100, ViT-B-16
    python benchmarks/depth_views_bench.py --device cpu --model ViT-B-32 --reps 3

End to end as label_frame sees it: cropped objects on the host -> top-k labels on the host (rendering
of every object from every view on the device, the OpenCLIP image tower over all views, the view mean,
similarities), synchronised. Also the rendering alone. The frames are encoder_bench's realistic ones
(64 objects, log-uniform 3..4000 points, several frames cycled). The image tower is randomly
initialised: its cost is that of the trained weights; no download is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder_bench import realistic_frame, time_calls  # noqa: E402 (this folder is on sys.path)
from machine import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / 'results' / 'depth_views.json'
FRAMES = 4  # distinct realistic frames, cycled


def bench(model: str, device: torch.device, reps: int, precision: str) -> dict[str, float]:
    """p50/p99 ms of a whole frame and of its rendering, and the image count per frame."""
    from blendclip_core.depth_render import render_depth
    from blendclip_core.depth_views import DepthViewClassifier
    from blendclip_core.text_space import OpenClipSpace
    from blendclip_core.vocabulary import NUSCENES_10

    classifier = DepthViewClassifier(OpenClipSpace(model).load(), NUSCENES_10, device=str(device),
                                     precision=precision)
    rng = np.random.default_rng(0)
    frames = [realistic_frame(rng) for _ in range(FRAMES)]
    classifier.classify(frames[0], top_k=1)  # warm-up: allocator, kernels, autotuning
    frame_ms = time_calls(lambda b: classifier.classify(b, top_k=1), frames, reps, device)
    render = classifier.encoder.render

    def render_only(batch) -> torch.Tensor:
        points = torch.from_numpy(batch.points[:, :3]).to(device)
        return render_depth(points, torch.from_numpy(batch.offsets).to(device), render,
                            classifier.encoder.image_size)

    render_ms = time_calls(render_only, frames, reps, device)
    return {'depth_views_frame64_ms_p50': float(np.percentile(frame_ms, 50)),
            'depth_views_frame64_ms_p99': float(np.percentile(frame_ms, 99)),
            'depth_views_render64_ms_p50': float(np.percentile(render_ms, 50)),
            'views_per_object': len(render.views), 'image_size': classifier.encoder.image_size,
            'render_resolution': render.resolution}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--model', default='ViT-B-16', help='OpenCLIP architecture (random weights)')
    ap.add_argument('--reps', type=int, default=None, help='timed frames (default: 50 on CUDA, 3 on CPU)')
    ap.add_argument('--precision', default='bf16', choices=('bf16', 'fp32'), help='image tower on CUDA')
    ap.add_argument('--threads', type=int, default=1, help='CPU threads')
    ap.add_argument('--out', type=Path, default=OUT)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    reps = args.reps or (50 if device.type == 'cuda' else 3)
    results = bench(args.model, device, reps, args.precision)
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else f'cpu: {cpu_name()} ({args.threads} torch threads)')
    precision = args.precision if device.type == 'cuda' else 'fp32'
    doc = {'device': name, 'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
           'model': f'openclip:{args.model} (random init)', 'precision': precision,
           'frame': '64 objects, log-uniform 3..4000 points (encoder_bench.realistic_frame)',
           'reps': reps, 'torch': torch.__version__, 'results': results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + '\n')
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
