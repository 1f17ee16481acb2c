"""A parameter the node does not declare (a misspelt name in a params file or `-p`) is reported at
start-up with the closest declared name, instead of being ignored by rclpy without a word (#17 item 5)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from node_harness import child_env, write_params

from blendclip_ros.node import params as P
from blendclip_ros.node.overrides import override_names, undeclared_report

DECLARED = [s.name for s in P.SPECS]


def _report(names):
    return undeclared_report(names, DECLARED.__contains__, DECLARED)


def test_misspelt_names_get_the_closest_declared_name():
    lines = _report(['vocabularly', 'top_k', 'scor_threshold', 'zzz_nothing_like_it'])
    assert len(lines) == 3
    assert "'vocabularly'" in lines[0] and "did you mean 'vocabulary'" in lines[0]
    assert "did you mean 'score_threshold'" in lines[1]
    assert "'zzz_nothing_like_it'" in lines[2] and 'no declared parameter is close' in lines[2]


def test_qos_overrides_are_declared_later_not_misspelt():
    assert _report(['qos_overrides./blendclip/markers.publisher.reliability']) == []


def test_override_names_reads_params_files_and_p_for_this_node_only(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'vocabularly': ['car'],
                                    'qos_overrides': {'/t': {'publisher': {'depth': 1}}}}},
        '/blendclip': {'ros__parameters': {'top_kk': 3}},
        '/**/blendclip': {'ros__parameters': {'devce': 'cpu'}},
        '/*': {'ros__parameters': {'any_node': 1}},
        'ns': {'blendclip': {'ros__parameters': {'in_another_namespace': 1}}},
        '/other_node': {'ros__parameters': {'not_ours': 1}}}))
    argv = ['blendclip_node', 'positional', '--ros-args', '-r', '__node:=blendclip',
            '--params-file', str(params), '-p', 'min_pointz:=2', '--param', 'blendclip:box_margn:=0.1',
            '-p', 'other_node:skip_me:=1', '--',
            '-p', 'not_a_ros_arg:=1']
    names = override_names(argv, '/blendclip')
    in_file = ['any_node', 'devce', 'qos_overrides./t.publisher.depth', 'top_kk', 'vocabularly']
    assert sorted(names[:5]) == in_file  # Jazzy's and Kilted's rclpy helpers would each miss some
    assert names[5:] == ['min_pointz', 'box_margn']  # then each -p for this node, in order
    assert set(override_names(argv, '/ns/blendclip')) == {  # '/*' is one token: the root namespace only
        'vocabularly', 'qos_overrides./t.publisher.depth', 'devce', 'in_another_namespace', 'min_pointz',
        'box_margn'}


def _wait_for(path: Path, needle: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = path.read_text(errors='replace')
        if needle in text:
            return text
        time.sleep(0.2)
    return path.read_text(errors='replace')


def test_node_process_reports_misspelt_params_file_and_p_names(tiny_checkpoint, tmp_path):
    """The real console script, as launch runs it: the shipped params file (every name right) plus one
    misspelt name in the file and one in `-p`; only the two misspelt ones are reported."""
    params = write_params(tmp_path / 'params.yaml', tiny_checkpoint, vocabularly=['car', 'bus'])
    command = [str(Path(sys.executable).with_name('blendclip_node')), '--ros-args',
               '-r', '__node:=blendclip_misspelt', '--params-file', str(params), '-p', 'top_kk:=3']
    log_path = tmp_path / 'node.log'
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(command, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        text = _wait_for(log_path, "'top_kk'", proc, timeout=90)
    finally:
        proc.terminate()
        proc.wait(15)
    reported = [line for line in text.splitlines() if 'is not declared by this node' in line]
    assert len(reported) == 2, text[-3000:]
    assert "'vocabularly'" in reported[0] and "did you mean 'vocabulary'" in reported[0]
    assert "'top_kk'" in reported[1] and "did you mean 'top_k'" in reported[1]
