"""benchmarks/curriculum_real.py end to end on tiny stored sets: three runs of a few steps on the CPU,
the real dev scores through label_frame (when the real files are there), the JSON and the table."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from blendclip_core.synthetic.dataset import GeneratedSet, save_npz

REPO = Path(__file__).resolve().parents[2]
CLASSES = ['car', 'pedestrian', 'barrier']


def _tiny_set(path: Path, domain: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = CLASSES * 4
    gen = GeneratedSet([rng.normal(0, 1, (int(rng.integers(8, 60)), 3)).astype(np.float32) for _ in labels],
                       labels, [''] * len(labels), [[f'point cloud of a {c}.'] for c in labels], domain,
                       [{'box_lwh': [4.0, 2.0, 1.5]} for _ in labels])
    emb = rng.normal(0, 1, (len(labels), 384)).astype(np.float32)
    gen.text_embeddings = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    save_npz(path, gen)  # no generator config stored: the runs load it as it is


def test_curriculum_real_smoke(tmp_path):
    data = tmp_path / 'data'
    for i, (name, domain) in enumerate([('synthetic_train', 'synthetic'), ('real_train', 'real'),
                                        ('real_heldout', 'real'), ('av2_train', 'real')]):
        _tiny_set(data / f'{name}.npz', domain, i)
    results = tmp_path / 'curriculum_real.json'
    cmd = [sys.executable, 'benchmarks/curriculum_real.py', 'run', '--out', str(tmp_path / 'runs'),
           '--steps', '2', '--device', 'cpu', '--workers', '0', '--data-dir', str(data),
           '--results', str(results), '--set', 'batch_size=8', '--set', 'eval.batch_size=32']
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads(results.read_text())
    assert res['exit_codes'] == {'static0': 0, 'static1p5': 0, 'ramp30': 0} and res['steps'] == 2
    for run in ('static0', 'static1p5', 'ramp30'):
        r = res['results'][run]
        assert 0.0 <= r['simulated_heldout']['top1'] <= 1.0
        assert 'skipped' in r['real'] or 0.0 <= r['real']['dev_top1_min5'] <= 1.0
    import yaml
    trained = yaml.safe_load((tmp_path / 'runs' / 'ramp30' / 'config.yaml').read_text())
    overrides = trained['model']['overrides']
    assert trained['data']['normalization'] == 'unit_sphere'  # the shipped input by default
    assert overrides['in_channels'] == 6 and overrides['box_size_input']
    assert overrides['embed_dim'] == 384  # the config's own override kept
    real_side = (tmp_path / 'runs' / 'ramp30.yaml').read_text()
    assert 'av2_train' in real_side and str(data) in real_side and 'runs/data/driving' not in real_side
    assert '| ramp to 30 % |' in done.stdout
