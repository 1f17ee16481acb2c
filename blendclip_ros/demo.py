"""`make demo`: the node labels a real nuScenes LiDAR sweep with the shipped default model, offline.

    python -m blendclip_ros.demo                 # what `make demo` runs; outputs in out/demo/
    python -m blendclip_ros.demo --vocabulary driving --out out/demo_driving

Steps, each a real part of the product:
1. blendclip-nuscenes2bag converts data/nuscenes_sample (one real sweep, 69 labelled boxes) into a bag;
2. blendclip_node starts in its own process with the default model (models/default) and autostart;
3. blendclip-replay plays the bag into it (another process), while this process records the node's
   /blendclip/objects (real rclpy, across processes);
4. the recorded labels are written next to the input into a labelled bag, and blendclip-eval's
   `evaluate_labelled_bag` computes the accuracy on boxes with >= 20 points (and on all boxes) and draws
   the bird's-eye view; the table printed here is read back from that same labelled bag.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / 'data' / 'nuscenes_sample'
PARAMS_FILE = REPO / 'config' / 'blendclip.params.yaml'
LABELS_TOPIC = '/blendclip/objects'
LABELLED_OBJECT_ARRAY = 'blendclip/msg/LabelledObjectArray'
QUIET_S = 10.0  # after the replay ends, stop waiting once the node has published nothing for this long

HOW_TO = """\
Use your own weights and data:
  * OpenCLIP text space (production): train an encoder into e.g. ViT-B-16 with weights you downloaded
    once (open_clip_model.safetensors), then run the node with
      -p checkpoint:=/path/encoder.pt -p text_space:=openclip:ViT-B-16:/path/open_clip_model.safetensors
    (see training/configs/ and docs/model_card.md; the shipped default uses minilm:all-MiniLM-L6-v2).
  * A nuScenes dataroot instead of the one-sweep sample:
      blendclip-nuscenes2bag --dataroot /data/nuscenes --version v1.0-mini --scenes scene-0061 --out bag
      python -m blendclip_ros.demo --bag bag
    (on a full ROS 2 install: ros2 launch blendclip replay_nuscenes.launch.py bag:=bag)
"""


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault('HF_HUB_OFFLINE', '1')
    env.setdefault('TRANSFORMERS_OFFLINE', '1')
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config' / 'fastdds_large_data.xml'))
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def _run_step(name: str, cmd: list[str], log: Path, timeout: float) -> None:
    with open(log, 'w') as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=REPO,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired as err:
            raise DemoError(f'{name} did not finish within {timeout:.0f} s (log: {log})') from err
    if code != 0:
        raise DemoError(f'{name} failed with exit code {code}; log: {log}\n' + _tail(log))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
    except OSError:
        return ''


def convert(sample_dir: Path, bag: Path, log: Path) -> None:
    cmd = [sys.executable, '-m', 'blendclip_ros.bag.nuscenes2bag', '--sample-dir', str(sample_dir),
           '--no-progress', str(bag)]
    _run_step('blendclip-nuscenes2bag', cmd, log, 300)


def node_command(checkpoint: str, vocabulary: list[str], device: str) -> list[str]:
    cmd = [sys.executable, '-c', 'import sys; from blendclip_ros.node import main; sys.exit(main())',
           '--ros-args', '--params-file', str(PARAMS_FILE), '-p', 'autostart:=true',
           '-p', f'device:={device}', '-p', 'vocabulary:=' + json.dumps(vocabulary)]
    if checkpoint:
        cmd += ['-p', f'checkpoint:={checkpoint}']
    return cmd


class Recorder:
    """Records the node's label messages (raw CDR, as a bag stores them) in this process."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from blendclip.msg import LabelledObjectArray

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('blendclip_demo_recorder', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: list[bytes] = []
        self.node.create_subscription(LabelledObjectArray, LABELS_TOPIC, self.messages.append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE), raw=True)

    def spin_until(self, done, timeout: float, alive=lambda: True) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.1)
            if done():
                return True
            if not alive():
                return done()
        return done()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def label_with_node(bag: Path, out: Path, checkpoint: str, vocabulary: list[str], device: str,
                    timeout: float) -> list[bytes]:
    """Node + replay in their own processes; returns the label messages the node published."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        frames = sum(c.msgcount for c in reader.connections if c.topic == '/lidar/points')
    recorder = Recorder()
    node_log = out / 'node.log'
    node = subprocess.Popen(node_command(checkpoint, vocabulary, device), stdout=open(node_log, 'w'),
                            stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
    replay = None
    try:
        # Labels published before this recorder has matched the node's publisher are lost (reliable, not
        # transient local) and replay waits only for the node's subscriptions: match first.
        recorder.spin_until(lambda: recorder.node.count_publishers(LABELS_TOPIC) > 0, timeout,
                            alive=lambda: node.poll() is None)
        recorder.spin_until(lambda: False, 0.5)
        replay = subprocess.Popen([sys.executable, '-m', 'blendclip_ros.bag.replay', str(bag),
                                   '--wait-for-subscribers', '1', '--wait-timeout', str(timeout)],
                                  stdout=open(out / 'replay.log', 'w'), stderr=subprocess.STDOUT, env=_env(),
                                  cwd=REPO)
        # All frames labelled, or the replay is over and the node has been quiet for a while (a node under
        # load may drop frames: depth-1 hand-off; the evaluation then counts their boxes as misses).
        last = [time.monotonic(), 0]

        def finished() -> bool:
            if len(recorder.messages) != last[1]:
                last[:] = [time.monotonic(), len(recorder.messages)]
            if replay.poll() not in (None, 0) and not recorder.messages:
                return True  # the replay failed (e.g. the node never subscribed): nothing will come
            if not recorder.messages and 'autostart failed' in node_log.read_text(errors='replace'):
                return True  # the node could not load its model: it says why in its log
            quiet = replay.poll() is not None and time.monotonic() - last[0] > QUIET_S
            return len(recorder.messages) >= frames or (quiet and len(recorder.messages) > 0)

        recorder.spin_until(finished, timeout, alive=lambda: node.poll() is None)
        if not recorder.messages:
            why = ('the node exited' if node.poll() is not None else
                   'the node could not start labelling' if 'autostart failed' in _tail(node_log) else
                   f'the replay failed (exit code {replay.poll()})' if replay.poll() not in (None, 0) else
                   f'no labels within {timeout:.0f} s')
            raise DemoError(f'{why}: got 0 of {frames} labelled frames\n'
                            f'node log ({node_log}):\n{_tail(node_log)}\n'
                            f'replay log:\n{_tail(out / "replay.log")}')
        if len(recorder.messages) < frames:
            print(f'      note: the node labelled {len(recorder.messages)} of {frames} frames', flush=True)
        replay.wait(30)
        return list(recorder.messages)
    finally:
        if replay is not None:
            _stop(replay)
        _stop(node)
        recorder.close()


def write_labelled_bag(src: Path, dst: Path, labels: list[bytes]) -> None:
    """The input bag plus the recorded labels, each stored at its cloud's bag time (matched by stamp)."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    from blendclip.msg import LabelledObjectArray
    from blendclip_ros.bag import typestore as tsm
    from blendclip_ros.bag.writer import BagWriter
    from blendclip_ros.conversions.stamps import stamp_to_ns

    by_stamp = {}
    for raw in labels:
        h = deserialize_message(raw, LabelledObjectArray).header
        by_stamp[stamp_to_ns(h.stamp)] = raw
    with AnyReader([src]) as reader, BagWriter(dst, tsm.make_typestore(tsm.DEFAULT_DISTRO)) as bag:
        clouds = {}
        for conn, t, raw in reader.messages():
            bag.connection(conn.topic, conn.msgtype, conn.ext.offered_qos_profiles, conn.msgdef.data,
                           conn.digest)
            bag.write_raw(conn.topic, conn.msgtype, t, raw)
            if conn.topic == '/lidar/points':
                msg = reader.deserialize(raw, conn.msgtype)
                clouds[stamp_to_ns(msg.header.stamp)] = t
        for stamp, raw in sorted(by_stamp.items()):
            bag.write_raw(LABELS_TOPIC, LABELLED_OBJECT_ARRAY, clouds.get(stamp, stamp), raw)


def table(labelled_bag: Path, min_points: int) -> list[str]:
    """One row per ground-truth box of the first frame: what the node said and what is true."""
    import numpy as np

    from blendclip_ros.bag.labelled import read_labelled_bag

    bag = read_labelled_bag(labelled_bag)
    frame = bag.frames[0]
    rows = [f'{"id":>4} {"range m":>8} {"points":>6}  {"predicted (score)":<34} {"true label":<22} ok',
            '-' * 84]
    order = np.argsort(-np.asarray(frame.gt_num_points))
    for i in order:
        box_id = frame.gt.ids[i]
        pred = frame.predictions.get(box_id)
        rng = float(np.hypot(*frame.gt.centers[i, :2]))
        truth = frame.gt_classes[i].replace('_', ' ') or '-'
        n = pred.num_points if pred is not None else int(frame.gt_num_points[i])
        has = pred is not None and bool(pred.labels)
        said = f'{pred.labels[0]} ({pred.scores[0]:.2f})' if has else '(no label)'
        ok = '' if pred is None or not pred.labels else ('yes' if pred.labels[0] == truth else 'no')
        mark = ' *' if n >= min_points else ''
        rows.append(f'{box_id:>4} {rng:8.1f} {n:6d}  {said:<34} {truth:<22} {ok}{mark}')
    return rows


def main(argv: list[str] | None = None) -> int:
    from blendclip_core.vocabulary import VOCABULARIES

    p = argparse.ArgumentParser(prog='blendclip-demo', description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, default=REPO / 'out' / 'demo')
    p.add_argument('--sample-dir', type=Path, default=SAMPLE_DIR, help='one nuScenes sweep + boxes')
    p.add_argument('--bag', type=Path, help='use this converted bag instead of converting --sample-dir')
    p.add_argument('--checkpoint', default='', help="point-encoder checkpoint ('' = models/default)")
    p.add_argument('--vocabulary', choices=sorted(VOCABULARIES), default='nuscenes',
                   help="labels the node chooses from ('nuscenes': the 10 evaluated classes)")
    p.add_argument('--device', default='cpu')
    p.add_argument('--min-points', type=int, default=20, help='accuracy on boxes with at least this many')
    p.add_argument('--timeout', type=float, default=240.0, help='seconds to wait for the node')
    args = p.parse_args(argv)
    try:
        return run(args)
    except DemoError as err:
        print(f'\ndemo failed: {err}', file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    from blendclip_core.vocabulary import VOCABULARIES
    from blendclip_ros.bag.evaluate import evaluate_labelled_bag

    out = _fresh_output_dir(args.out.resolve())
    t0 = time.perf_counter()
    bag = args.bag
    if bag is None:
        bag = out / 'sample_bag'
        print(f'[1/4] converting {args.sample_dir} -> {bag}', flush=True)
        convert(args.sample_dir, bag, out / 'convert.log')
    print('[2/4] starting blendclip_node (default model) and blendclip-replay, recording '
          f'{LABELS_TOPIC}', flush=True)
    labels = label_with_node(bag, out, args.checkpoint, list(VOCABULARIES[args.vocabulary]), args.device,
                             args.timeout)
    labelled = out / 'labelled_bag'
    write_labelled_bag(bag, labelled, labels)
    print(f'[3/4] {len(labels)} labelled frame(s) recorded -> {labelled}', flush=True)
    res = evaluate_labelled_bag(labelled, 'nuscenes', min_points=args.min_points, out_dir=out / 'eval')
    res_all = evaluate_labelled_bag(labelled, 'nuscenes', min_points=1, out_dir=out / 'eval_all_boxes')
    print('[4/4] evaluated with blendclip-eval (evaluate_labelled_bag)\n', flush=True)
    print('\n'.join(table(labelled, args.min_points)))
    print(f'\n(* = at least {args.min_points} points; boxes beyond the nuScenes class ranges are listed but '
          'not evaluated)')
    print(f'model: {res.get("model", "")}')
    size = len(VOCABULARIES[args.vocabulary])
    print(accuracy_line(res, f'boxes with >= {args.min_points} points', size))
    print(accuracy_line(res_all, 'boxes with >= 1 point', size))
    print(f"\noutputs in {out}:\n  eval/metrics.json, eval/bev.png (bird's-eye view with labelled boxes), "
          'eval/confusion.png,\n  eval_all_boxes/, labelled_bag/ (input + /blendclip/objects), node.log\n'
          f'done in {time.perf_counter() - t0:.0f} s\n')
    print(HOW_TO)
    return 0


MARKER = '.blendclip-demo'  # only folders the demo made are ever emptied


def _fresh_output_dir(out: Path) -> Path:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DemoError(f'{out} exists and was not made by the demo: choose another --out')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text('outputs of python -m blendclip_ros.demo; deleted by its next run\n')
    return out


def accuracy_line(summary: dict, what: str, vocabulary_size: int) -> str:
    """blendclip-eval's own numbers (metrics.json), never recomputed here."""
    n = summary['counts']['evaluated']
    chance = f'{100 / vocabulary_size:.0f} % / {min(100.0, 500 / vocabulary_size):.0f} %'
    return (f'accuracy on {what} within the nuScenes class ranges ({n} boxes): '
            f'top-1 {100 * summary["top1"]:.1f} %, top-5 {100 * summary["top5"]:.1f} % (chance: {chance})')


if __name__ == '__main__':
    sys.exit(main())
