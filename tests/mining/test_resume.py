"""SIGKILL the miner in the middle of a run; the rerun ends with the bytes of an uninterrupted run."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import PROGRESS_DIR, RunConfig, run_mining

pytest.importorskip('nuscenes')
REPO = Path(__file__).resolve().parents[2]
SCENES = 10


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != 'mining.json'}


def test_sigkill_then_rerun_equals_clean_run(tmp_path, caplog):
    root = tmp_path / 'root'
    make_nuscenes_dataroot(root, scenes=SCENES, samples_per_scene=3, sweeps_per_sample=1, ground_points=8000)
    args = ['--dataroot', str(root), '--split', 'all', '--sweeps', '2', '--no-progress']
    clean, killed = tmp_path / 'clean', tmp_path / 'killed'
    run_mining(RunConfig(str(root), 'v1.0-mini', 'all', str(clean), MineConfig(sweeps=2)), progress=False)

    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.Popen([sys.executable, '-m', 'training.mine', *args, '--out', str(killed)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = killed / PROGRESS_DIR
    deadline = time.monotonic() + 120
    while not any(markers.glob('*.json')) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(markers.glob('*.json')))
    assert 1 <= done < SCENES, 'the kill must land after the first scene and before the last'
    assert not (killed / 'index.json').exists()

    with caplog.at_level(logging.INFO, logger='blendclip_core.mining.run'):
        run_mining(RunConfig(str(root), 'v1.0-mini', 'all', str(killed), MineConfig(sweeps=2)),
                   progress=False)
    assert f'{done} already done' in caplog.text
    assert _files(killed) == _files(clean)
    assert not list(killed.glob('.*tmp*')) and not list(markers.glob('.*tmp*'))


def test_lost_shard_is_redone_and_other_settings_refused(tmp_path, capsys):
    root = tmp_path / 'root'
    make_nuscenes_dataroot(root, scenes=2, samples_per_scene=3, sweeps_per_sample=1)
    out = tmp_path / 'out'
    cfg = RunConfig(str(root), 'v1.0-mini', 'all', str(out), MineConfig(sweeps=2))
    run_mining(cfg, progress=False)
    before = _files(out)
    lost = sorted(out.glob('scene-0002-*.tar'))[0]
    lost.unlink()
    (out / '.scene-0001-0000.tar.tmp-123').write_bytes(b'half a shard')  # what a crash leaves behind
    run_mining(cfg, progress=False)
    assert _files(out) == before and not list(out.glob('.*tmp*'))
    from training.mine import main

    rc = main(['--dataroot', str(root), '--split', 'all', '--out', str(out), '--sweeps', '3',
               '--no-progress'])
    assert rc == 2 and 'other settings' in capsys.readouterr().err
