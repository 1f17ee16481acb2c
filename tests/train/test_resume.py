"""Kill-and-resume: SIGKILL the CLI after its first checkpoint, --resume, and get the uninterrupted
run's loss at every step (CPU, same thread count, atol 1e-5)."""

import signal
import subprocess
import time

import pytest
from train_testutil import REPO, cli, cli_env, train_records

pytestmark = pytest.mark.timeout(240)


def test_sigkill_then_resume_continues_the_exact_trajectory(tmp_path, fast_args):
    # drop-path on: the torch RNG state must come back from the checkpoint too
    args = fast_args + ['--set', 'epochs=8', '--set', 'checkpoint.every_steps=10',
                        '--set', 'model.overrides={embed_dim: 32, drop_path: 0.2}']
    ref, run = tmp_path / 'ref', tmp_path / 'run'
    subprocess.run(cli(*args, '--out', str(ref)), cwd=REPO, env=cli_env(), check=True, capture_output=True,
                   timeout=200)

    proc = subprocess.Popen(cli(*args, '--out', str(run)), cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = run / 'checkpoints' / 'step_00000010.pt'
    deadline = time.time() + 150
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    assert first.exists() and not (run / 'encoder.pt').exists(), 'the kill must land mid-run'

    subprocess.run(cli(*args, '--out', str(run), '--resume'), cwd=REPO, env=cli_env(), check=True,
                   capture_output=True, timeout=200)
    a, b = train_records(ref), train_records(run)
    assert sorted(a) == sorted(b) == list(range(1, 81))
    lines = [ln for ln in (run / 'metrics.jsonl').read_text().splitlines() if '"train"' in ln]
    assert len(lines) == 80  # what the killed run logged after its checkpoint was dropped on resume
    for step in a:
        assert b[step]['loss'] == pytest.approx(a[step]['loss'], abs=1e-5), step
        assert b[step]['lr'] == pytest.approx(a[step]['lr'], rel=1e-9)
        assert b[step]['real_fraction'] == a[step]['real_fraction']
    assert (run / 'encoder.pt').exists()
