"""The encoder benchmark runs to completion on a CI CPU with the tiny config (issue 3).

Speed is never asserted here (numbers come from benchmarks/, on the machine they name); this checks
that the script a user runs works end to end and writes the result format the README's table reads.
"""

import json
import math
import subprocess
import sys

from conftest import REPO

REQUIRED = ('frame64_realistic_ms_p50', 'frame64_realistic_ms_p99', 'frame64_loop_ms_p50',
            'frame64_dense_ms_p50', 'dense_objects_per_s')


def test_encoder_benchmark_completes_on_cpu_with_tiny_config(tmp_path):
    out = tmp_path / 'encoder.json'
    subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'encoder_bench.py'), '--device', 'cpu',
                    '--config', 'pointbert-tiny', '--quick', '--out', str(out)],
                   cwd=REPO, check=True, timeout=300, capture_output=True)
    data = json.loads(out.read_text())
    assert data['device'].startswith('cpu') and data['date']
    for key in REQUIRED:
        assert math.isfinite(data['results'][key]) and data['results'][key] > 0, key


def test_trainer_benchmark_runs_on_cpu_and_merges(tmp_path):
    """One tiny CPU run, tagged as the 1-GPU machine, merges into the result keys issue 5 names."""
    run = tmp_path / 'run.json'
    subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'trainer_bench.py'), '--device', 'cpu',
                    '--model', 'pointbert-tiny', '--batch', '4', '--points', '256', '--steps', '2',
                    '--warmup', '1', '--machine', 'h100', '--json', str(run)],
                   cwd=REPO, check=True, timeout=300, capture_output=True)
    r = json.loads(run.read_text())
    assert r['world_size'] == 1 and r['step_ms_async'] > 0 and r['objects_per_s_total_async'] > 0
    out = tmp_path / 'trainer.json'
    subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'trainer_bench.py'), '--merge', str(run),
                    '--out', str(out)], cwd=REPO, check=True, timeout=120, capture_output=True)
    res = json.loads(out.read_text())['results']
    assert res['train_objects_per_s_1gpu'] == r['objects_per_s_total_async']


def test_step_floor_counts_every_matrix_product_of_the_model():
    """The floor benchmark's product shapes carry exactly the model's matrix FLOPs (attention aside)."""
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from step_floor_bench import linear_shapes
    from trainer_bench import forward_flops_per_object

    from blendclip_core.encoder.config import EncoderConfig

    cfg = EncoderConfig(depth=2, width=64, num_heads=4, embed_dim=32)
    batch, points = 3, 1024
    linear = sum(2.0 * m * k * n for m, k, n, _ in linear_shapes(cfg, batch, points))
    seq = cfg.num_patches(points) + 1
    attention = 2.0 * cfg.depth * 2 * seq * seq * cfg.width * batch
    assert math.isclose(linear + attention, forward_flops_per_object(cfg, points) * batch, rel_tol=1e-12)


def test_trainer_merge_takes_the_median_of_repeats_and_pairs_variants(tmp_path):
    """Repeated runs of a setting count by their median (not the best), and 2-GPU scaling compares
    the same variant on the same machine."""
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from trainer_bench import merge

    def run(world, variant, per_s):
        return {'machine': 'h200x2', 'world_size': world, 'variant': variant, 'device': 'NVIDIA H200',
                'objects_per_s_total': per_s, 'objects_per_s_total_async': per_s,
                'mfu': 0.1, 'mfu_async': 0.1}

    runs = [run(1, 'compile', 1400), run(1, 'compile', 1300), run(1, 'eager', 1000),
            run(2, 'compile_globalbn', 2400), run(2, 'compile_globalbn', 2000),
            run(2, 'compile_globalbn', 2100),
            run(2, 'eager_bf16comm', 1800)]
    paths = []
    for i, r in enumerate(runs):
        paths.append(tmp_path / f'{i}.json')
        paths[-1].write_text(json.dumps(r))
    doc = merge([str(p) for p in paths], str(tmp_path / 'trainer.json'))
    res = doc['results']
    assert res['train_objects_per_s_2gpu'] == 2100  # the median of 2000, 2100, 2400
    assert res['scaling_2gpu'] == 2100 / 1300  # lower middle of two 1-GPU repeats
    assert res['best_scaling_2gpu'] == 1800 / 1000
    picked = [r for r in doc['runs'] if r['variant'] == 'compile_globalbn']
    assert len(doc['runs']) == len(runs) and len(picked) == 3  # every run is kept in the file
    assert doc['repeats']['h200x2 x2 compile_globalbn'] == [2000, 2100, 2400]
    named = merge([str(p) for p in paths], str(tmp_path / 'trainer.json'), headline_2gpu='eager_bf16comm')
    assert named['results']['train_objects_per_s_2gpu'] == 1800 and named['results']['scaling_2gpu'] == 1.8


def test_node_benchmark_streams_through_a_real_node_and_writes_issue_6_keys(tmp_path):
    """A few seconds of the node benchmark: two processes through rclpy, every frame answered, the node's
    scheduling recorded (SCHED_FIFO where allowed, else the reason it was refused)."""
    out = tmp_path / 'node.json'
    res = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'node_bench.py'), '--duration', '3',
                          '--warmup', '3', '--boxes', '16', '--out', str(out)],
                         cwd=REPO, timeout=300, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())
    r = data['results']
    assert r['frames_published'] >= 50 and r['frames_answered'] + r['frames_dropped'] == r['frames_published']
    assert r['frames_answered'] >= 0.9 * r['frames_published']
    for key in ('e2e_latency_ms_p50', 'e2e_latency_ms_p99', 'ros_overhead_ms_p99', 'model_ms_p50'):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert r['ros_overhead_ms_p99'] < r['e2e_latency_ms_p99']
    sched = data['config']['scheduling']
    assert sched == 'SCHED_FIFO 10' or sched.startswith('ordinary (SCHED_FIFO 10 refused: '), sched
    assert 'tiny model' in data['device'] and sched in data['device']


def test_node_fuzz_smoke_leaves_the_node_alive_and_answering(tmp_path):
    """The CI version of the reliability fuzz campaign: a few hundred hostile inputs of every kind against
    a node in its own process; no crash, no traceback in its log, every valid frame answered, and the
    vocabulary swapped while frames flow."""
    out = tmp_path / 'reliability.json'
    res = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'node_fuzz.py'), '--messages', '300',
                          '--valid-every', '15', '--valid-frames', '3', '--vocab-labels', '48', '--rate', '5',
                          '--frame-timeout', '20', '--out', str(out)],
                         cwd=REPO, timeout=900, capture_output=True, text=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    assert res.returncode == 0, (data.get('crashes'), res.stderr[-3000:])
    r = data['results']
    assert r['fuzz_messages'] == 300 and r['fuzz_node_crashes'] == 0 and r['node_log_tracebacks'] == 0
    assert r['fuzz_valid_frames_answered_fraction'] == 1.0, r
    assert r['hostile_frames_unanswered'] == 0, data['unanswered']
    assert len(data['kinds']) >= 20, data['kinds']  # the seed reaches most kinds of hostile input
    assert r['vocab_change_accepted'] and math.isfinite(r['vocab_change_max_gap_ms'])
    assert data['node_counters']['boxes_malformed'] > 0 and data['node_counters']['clouds_malformed'] > 0
    assert (tmp_path / 'reliability_vocab_gap.png').stat().st_size > 10_000


def test_input_ablation_scores_each_checkpoint_as_its_card_says(tmp_path):
    """benchmarks/input_ablation.py on two tiny random checkpoints (metric xyz; unit sphere + box size):
    the real dev set through label_frame, a stored held-out set, one JSON key set per run, a PNG."""
    import numpy as np
    import pytest
    import torch

    from blendclip_core.checkpoint import ModelCard, save_checkpoint
    from blendclip_core.datasets.splits import missing_files
    from blendclip_core.encoder import create_model
    from blendclip_core.synthetic.dataset import GeneratedSet, save_npz
    from blendclip_core.vocabulary import NUSCENES_10

    missing = missing_files('dev') + missing_files('train')
    if missing:
        pytest.skip(f'real data missing: {missing[0]} (../shared/data)')
    emb = np.random.default_rng(0).normal(size=(len(NUSCENES_10), 64)).astype(np.float32)
    np.savez(tmp_path / 'classes.npz', names=np.array(NUSCENES_10),
             embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    runs = {}
    for name, norm, overrides in (('metric', 'metric', {}),
                                  ('box', 'unit_sphere', {'in_channels': 6, 'box_size_input': True})):
        torch.manual_seed(0)
        card = ModelCard(name=name, text_space=f'file:{tmp_path / "classes.npz"}', logit_scale=30.0,
                         prompt_templates=['point cloud of a {}.'], inference_precision='fp32',
                         input_normalization=norm)
        model = create_model('pointbert-tiny', **overrides)
        runs[name] = save_checkpoint(tmp_path / f'{name}.pt', model, card)
    rng = np.random.default_rng(1)
    labels = ['car', 'pedestrian', 'barrier'] * 3
    heldout = GeneratedSet([rng.normal(0, 1, (30, 3)).astype(np.float32) for _ in labels], labels,
                           [''] * len(labels), [['x'] for _ in labels], 'real',
                           [{'box_lwh': [4.0, 2.0, 1.5]} for _ in labels])
    heldout.text_embeddings = np.ones((len(labels), 64), np.float32) / 8.0
    save_npz(tmp_path / 'heldout.npz', heldout)
    out = tmp_path / 'input_ablation.json'
    cmd = [sys.executable, 'benchmarks/input_ablation.py', '--run', f'metric={runs["metric"]}',
           '--run', f'box={runs["box"]}', '--heldout', str(tmp_path / 'heldout.npz'), '--out', str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data['runs']['metric']['box_size_input'] is False and data['runs']['box']['box_size_input'] is True
    assert data['runs']['box']['input_normalization'] == 'unit_sphere'
    for run in ('metric', 'box'):
        for key in ('dev_top1_min5', 'dev_classmean_min5', 'dev_min5_worst_class_top1', 'sim_heldout_top1'):
            assert 0.0 <= data['results'][f'{run}_{key}'] <= 1.0, (run, key)
    assert out.with_suffix('.png').stat().st_size > 5000
