"""Render benchmarks/results/*.json into docs/benchmarks.md, the table the README links.

Only what the benchmark scripts measured is shown; nothing here computes or edits a number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'
OUT = ROOT / 'docs' / 'benchmarks.md'


# The figures the issues name, with their targets: (topic, key, target text, target test).
HEADLINE = [
    ('encoder', 'frame64_realistic_ms_p50', '< 3 ms', lambda v: v < 3),
    ('encoder', 'frame64_realistic_ms_p99', '< 6 ms', lambda v: v < 6),
    ('encoder', 'frame64_dense_ms_p50', '< 4 ms', lambda v: v < 4),
    ('encoder', 'frame64_loop_ms_p50', '', None),
    ('encoder', 'loop_speedup_dense', '>= 100', lambda v: v >= 100),
    ('encoder', 'dense_objects_per_s', '>= 40,000', lambda v: v >= 40000),
    ('trainer', 'train_objects_per_s_1gpu', '', None),
    ('trainer', 'mfu_1gpu', '>= 0.35', lambda v: v >= 0.35),
    ('trainer', 'train_objects_per_s_2gpu', '', None),
    ('trainer', 'scaling_2gpu', '>= 1.8', lambda v: v >= 1.8),
    ('trainer', 'best_scaling_2gpu', '>= 1.8', lambda v: v >= 1.8),
    ('step_floor', 'floor_step_ms', '', None),
    ('step_floor', 'mfu_ceiling', '', None),
    ('step_floor', 'mfu_ceiling_best_attention', '', None),
    ('node', 'e2e_latency_ms_p50', '', None),
    ('node', 'e2e_latency_ms_p99', '', None),
    ('node', 'ros_overhead_ms_p99', '< 5 ms', lambda v: v < 5),
    ('node', 'frames_dropped', '0 over 2 min', lambda v: v == 0),
    ('node', 'ros_overhead_ms_p99_worst_run', '< 5 ms', lambda v: v < 5),
    ('node', 'frames_dropped_worst_run', '0 over 2 min', lambda v: v == 0),
    ('bags', 'convert_frames_per_s', '', None),
    ('bags', 'label_bag_frames_per_s', '', None),
    ('mining', 'mine_boxes_per_s_1sweep', '', None),
    ('mining', 'mine_boxes_per_s_10sweeps', '', None),
    ('real_eval', 'dev_top1_min5', '>= 0.85', lambda v: v >= 0.85),
    ('real_eval', 'dev_top1_min5_majority', '', None),
    ('real_eval', 'dev_classmean_min5', '>= 0.80', lambda v: v >= 0.80),
    ('real_eval', 'dev_classmean_min5_majority', '', None),
    ('real_eval', 'av2_top1_min5', '', None),
    ('real_eval', 'nuscenes_top1_min5', '', None),
    ('real_eval', 'kitti_top1_min5', '', None),
    ('real_eval', 'train_av2_top1_min5', '', None),
    ('real_eval', 'dev_min5_worst_class_top1', '> 0 (no dev class at 0 %)', lambda v: v > 0),
    ('input_ablation', 'before_dev_top1_min5', '', None),
    ('input_ablation', 'metric_dev_top1_min5', '', None),
    ('input_ablation', 'unit_sphere_dev_top1_min5', '', None),
    ('input_ablation', 'unit_sphere_box_dev_top1_min5', '', None),
    ('input_ablation', 'unit_sphere_box_sim_heldout_top1', '>= 0.70 (shipped default)', lambda v: v >= 0.70),
    ('curriculum_real_metric', 'static0/real/dev_top1_min5', '', None),
    ('curriculum_real_metric', 'static1p5/real/dev_top1_min5', '', None),
    ('curriculum_real_metric', 'ramp30/real/dev_top1_min5', '', None),
    ('curriculum_real', 'static0/real/dev_top1_min5', '', None),
    ('curriculum_real', 'static1p5/real/dev_top1_min5', '', None),
    ('curriculum_real', 'ramp30/real/dev_top1_min5', '', None),
    ('curriculum_real', 'ramp30/simulated_heldout/top1', '', None),
    ('reliability', 'fuzz_messages', '>= 10,000', lambda v: v >= 10000),
    ('reliability', 'fuzz_node_crashes', '0', lambda v: v == 0),
    ('reliability', 'fuzz_valid_frames_answered_fraction', '1.0', lambda v: v == 1.0),
    ('reliability', 'fuzz_rss_growth_mb', '', None),
    ('reliability', 'worst_frame_ms', '< 1000 ms', lambda v: v < 1000),
    ('reliability', 'vocab_change_max_gap_ms', '<= one frame period beyond the normal gap', None),
    ('reliability', 'vocab_change_baseline_max_gap_ms', '', None),
    ('deploy', 'frame64_realistic_ms_p50_eager', '', None),
    ('deploy', 'frame64_realistic_ms_p50_aoti', '<= 1.2 ms (H100, best format)', None),
    ('deploy', 'frame64_realistic_ms_p50_onnx', '<= 1.2 ms (H100, best format)', None),
    ('depth_views', 'depth_views_frame64_ms_p50', '', None),
    ('proxy_mining', 'proxy_recall_20pts', '>= 0.80', lambda v: v >= 0.80),
    ('proxy_mining', 'proxy_precision', '', None),
]


def _headline(results_dir: Path) -> list[str]:
    lines = ['## Headline figures', '', '| topic | key | measured | target | met | device |',
             '|---|---|---|---|---|---|']
    for topic, key, target, test in HEADLINE:
        path = results_dir / f'{topic}.json'
        if not path.exists():
            lines.append(f'| {topic} | {key} | not measured | {target} | | |')
            continue
        data = json.loads(path.read_text())
        value = _flat(data.get('results', {})).get(key)
        met = '' if value is None or test is None else ('yes' if test(value) else '**no**')
        shown = 'not measured' if value is None else _fmt(value)
        lines.append(f'| {topic} | {key} | {shown} | {target} | {met} | {data.get("device", "?")} |')
    return lines + ['']


def _flat(results: dict, prefix: str = '') -> dict:
    """Nested results (e.g. one dict per run) as 'run/set/key' -> number."""
    out = {}
    for key, value in results.items():
        if isinstance(value, dict):
            out.update(_flat(value, f'{prefix}{key}/'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _fmt(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


def render(results_dir: Path = RESULTS) -> str:
    lines = ['# Benchmark results', '',
             'Generated by `benchmarks/render_table.py` from `benchmarks/results/*.json`; each file is',
             'written by the benchmark script of the same topic (see that script for the method).', '']
    lines += _headline(results_dir)
    for path in sorted(results_dir.glob('*.json')):
        data = json.loads(path.read_text())
        lines += [f'## {path.stem}', '', f'- device: {data.get("device", "?")}',
                  f'- date: {data.get("date", "?")}', f'- file: `benchmarks/results/{path.name}`', '',
                  '| key | value |', '|---|---|']
        for key, value in _flat(data.get('results', {})).items():
            lines.append(f'| {key} | {_fmt(value)} |')
        lines.append('')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    OUT.write_text(render())
    print(f'wrote {OUT}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
