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
