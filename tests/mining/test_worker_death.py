"""Killing `blendclip-mine --workers 2` (SIGKILL or SIGTERM) ends its workers too; the rerun resumes to
the bytes of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import PROGRESS_DIR, RunConfig, run_mining

pytest.importorskip('nuscenes')
REPO = Path(__file__).resolve().parents[2]
SCENES = 8


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != 'mining.json'}


@pytest.fixture(scope='module')
def dataroot_and_clean(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp('worker_death')
    root, clean = base / 'root', base / 'clean'
    make_nuscenes_dataroot(root, scenes=SCENES, samples_per_scene=3, sweeps_per_sample=1, ground_points=8000)
    run_mining(RunConfig(str(root), 'v1.0-mini', 'all', str(clean), MineConfig(sweeps=2)), progress=False)
    return root, clean


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM'])
def test_workers_die_with_their_parent_and_rerun_resumes(dataroot_and_clean, tmp_path, sig):
    root, clean = dataroot_and_clean
    out = tmp_path / 'killed'
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, '-m', 'training.mine', '--dataroot', str(root), '--split', 'all', '--sweeps', '2',
         '--workers', '2', '--no-progress', '--out', str(out)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = out / PROGRESS_DIR
    deadline = time.monotonic() + 120
    while not any(markers.glob('*.json')) and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = psutil.Process(parent.pid).children(recursive=True)
    parent.send_signal(sig)
    parent.wait()
    done = len(list(markers.glob('*.json')))
    assert len(workers) == 2 and 1 <= done < SCENES, 'the kill must land while both workers mine'

    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    survivors = [w.pid for w in workers if _alive(w)]
    for pid in survivors:  # do not leave them running after a failed test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f'workers {survivors} outlived their parent'
    assert not (out / 'index.json').exists()

    run_mining(RunConfig(str(root), 'v1.0-mini', 'all', str(out), MineConfig(sweeps=2)), progress=False)
    assert _files(out) == _files(clean)
    assert not list(out.glob('.*tmp*')) and not list(markers.glob('.*tmp*'))
