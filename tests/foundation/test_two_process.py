"""Two separate processes: 20 LabelledObjectArray + 20 35k-point PointCloud2 at 10 Hz, best effort.

Runs with the shipped Fast DDS profile (conftest sets FASTDDS_DEFAULT_PROFILES_FILE): with the
default 512 KB shared-memory segment most best-effort 35k-point clouds are dropped.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

PEER = Path(__file__).with_name('peer.py')
COUNT = 20


class Peer:
    """A peer.py process whose stdout lines arrive through a queue, so every wait has a timeout."""

    def __init__(self, role: str, prefix: str, log_dir: Path):
        self.role = role
        self.stderr_path = log_dir / f'{role}.stderr'
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), role, '--prefix', prefix, '--count', str(COUNT), '--timeout', '30'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_path.open('w'), text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def expect(self, timeout: float = 40.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            pytest.fail(f'{self.role}: no output (rc={self.proc.poll()}):\n{self.stderr_tail()}')
        return line

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        return self.stderr_path.read_text()[-3000:] if self.stderr_path.exists() else ''

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_best_effort_clouds_and_labels_between_processes(tmp_path):
    profile = Path(os.environ['FASTDDS_DEFAULT_PROFILES_FILE'])
    assert profile.is_file() and os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    prefix = f'/foundation_{uuid.uuid4().hex[:8]}'  # never cross-talk with another run on this domain
    peers = []
    try:
        sub = Peer('sub', prefix, tmp_path)
        peers.append(sub)
        assert sub.expect() == 'READY'
        pub = Peer('pub', prefix, tmp_path)
        peers.append(pub)
        assert pub.expect() == 'MATCHED'
        assert sub.expect() == 'MATCHED'
        pub.send('GO')
        sent = json.loads(pub.expect())
        received = json.loads(sub.expect())
        pub.stop()
        sub.stop()
        assert pub.proc.returncode == 0 and sub.proc.returncode == 0, sub.stderr_tail() + pub.stderr_tail()
    finally:
        for peer in peers:
            peer.stop()
    assert sorted(received['clouds'], key=int) == [str(i) for i in range(COUNT)], 'clouds lost'
    assert sorted(received['objects'], key=int) == [str(i) for i in range(COUNT)], 'labels lost'
    assert received == sent
    first = sent['clouds']['0']
    assert first[0] == 35_000 and first[2] == 26  # 35k points of x y z intensity ring time
