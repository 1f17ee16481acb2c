"""Standing fuzz campaign against the node: hostile messages and parameters from another process,
interleaved with valid frames that must all be answered.

The node runs in its own process with the shipped default model and its shipped parameters (plus a
faster /diagnostics period), started as `blendclip_node` is on a vehicle. This process throws
`--messages` hostile inputs at it (benchmarks/fuzz_messages.py: truncated, garbage and big-endian CDR,
bad PointCloud2 layouts, NaN/inf, huge and degenerate boxes, absurd stamps, hostile vocabularies and
templates) and after every `--valid-every` of them sends the real nuScenes frame and waits for its
labels. Then it streams valid frames at `--rate` Hz while the vocabulary is replaced by one of
`--vocab-labels` labels, and measures the longest gap between labels.

    .venv/bin/python benchmarks/node_fuzz.py                  # full: 10,000 messages, 4,096 labels
    .venv/bin/python benchmarks/node_fuzz.py --messages 300 --vocab-labels 64 --out /tmp/fuzz.json

Writes benchmarks/results/reliability.json (keys named by the reliability issue) and, beside it,
reliability_vocab_gap.png (label arrivals around the vocabulary change).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

from blendclip_ros.conversions.stamps import split_ns, to_ns

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / 'benchmarks' / 'results'


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--messages', type=int, default=10_000, help='hostile inputs to send')
    p.add_argument('--valid-every', type=int, default=20, help='a valid frame after every N hostile inputs')
    p.add_argument('--valid-frames', type=int, default=20, help='valid frames before and after the campaign')
    p.add_argument('--vocab-labels', type=int, default=4096,
                   help='size of the vocabulary swapped in at the end')
    p.add_argument('--rate', type=float, default=10.0, help='frame rate while the vocabulary changes (Hz)')
    p.add_argument('--frame-timeout', type=float, default=30.0, help='seconds to wait for one frame')
    p.add_argument('--max-stamp-age', type=float, default=2.0, help="node's max_stamp_age (0 = off)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', type=Path, default=RESULTS / 'reliability.json')
    return p.parse_args(argv)


def write_params(path: Path, args) -> Path:
    import yaml

    from blendclip_core.vocabulary import NUSCENES_10

    doc = yaml.safe_load((REPO / 'config' / 'blendclip.params.yaml').read_text())
    doc['/**']['ros__parameters'].update(vocabulary=list(NUSCENES_10), diagnostics_period=0.2, cpu_threads=1,
                                          max_stamp_age=args.max_stamp_age)
    path.write_text(yaml.safe_dump(doc))
    return path


def node_rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


class Campaign:
    """The node process, a client node in this process, and what the campaign has seen so far."""

    def __init__(self, args, tmp: Path) -> None:
        import rclpy
        from fuzz_messages import Sample
        from node_harness import NodeClient, load_sample, sample_cloud
        from rclpy.serialization import serialize_message

        from blendclip_ros.conversions import boxes_to_msg

        self.args, self.tmp = args, tmp
        self.params = write_params(tmp / 'params.yaml', args)
        self.logs: list[Path] = []
        self.proc = self._start()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.client = NodeClient(self.context, keep_labels=False)
        points, boxes, _ = load_sample()
        cloud = sample_cloud(points)
        self.sample = Sample(cloud, boxes, serialize_message(boxes_to_msg(boxes)), serialize_message(cloud))
        self.crashes: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.valid = Counter()  # phase -> sent / answered
        self.frame_ms: list[float] = []  # e2e of frames with hostile boxes that were answered
        self.params_accepted: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()  # hostile-box frames the node neither labelled nor counted
        self.worst_by_kind: dict[str, float] = {}
        self.valid_ms: list[float] = []  # e2e of valid frames, the yardstick for the worst hostile one
        self.rss_mb: dict[str, float] = {}
        self.rss_trace: list[float] = []  # node RSS every 500 hostile inputs: a leak grows, a warm-up levels
        self.since_valid: list[str] = []  # hostile kinds sent since the last valid frame
        self.missed: list[str] = []  # valid frames without labels, with the kinds sent before them

    def _start(self) -> subprocess.Popen:
        from node_bench import start_node

        log = self.tmp / f'node{len(self.logs)}.log'
        self.logs.append(log)
        return start_node(self.params, log)

    def wait_ready(self) -> None:
        if not self.client.wait_active(300):
            raise RuntimeError(f'node did not start:\n{self.logs[-1].read_text()[-3000:]}')

    def check_alive(self, where: str) -> None:
        """A dead node is a crash: recorded with its log's tail, then restarted so the campaign goes on."""
        if self.proc.poll() is None:
            return
        tail = self.logs[-1].read_text(errors='replace')[-2000:]
        self.crashes.append(f'{where}: exit {self.proc.returncode}: {tail}')
        self.proc = self._start()
        self.wait_ready()

    def close(self) -> None:
        import rclpy

        self.client.close()
        rclpy.shutdown(context=self.context)
        self.proc.send_signal(2)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    # --------------------------------------------------------------------------------- frames
    def frame_done_counter(self) -> int:
        c = self.client.counters()
        return int(sum(v for k, v in c.items() if k.startswith('frames_skipped_') or k == 'frames_failed'))

    def publish_frame(self, cloud, boxes, sec: int, nanosec: int) -> int:
        """Publish cloud + boxes with this exact header stamp (fields as given, even out of range)."""
        from builtin_interfaces.msg import Time

        from blendclip_ros.conversions import boxes_to_msg

        msg = boxes_to_msg(boxes) if hasattr(boxes, 'centers') else boxes
        cloud.header.stamp = Time(sec=sec, nanosec=nanosec)
        msg.header.stamp = Time(sec=sec, nanosec=nanosec)
        self.client.cloud_pub.publish(cloud)
        self.client.boxes_pub.publish(msg)
        return to_ns(sec, nanosec)

    def lockstep(self, cloud, boxes, may_skip: bool = True) -> float | None:
        """Send one frame now, wait for its labels or (`may_skip`) for the node to count a frame skipped
        or failed. -> e2e ms if labelled, None if counted without labels, nan if neither came in time.
        A valid frame must be labelled: a skip counted meanwhile belongs to an earlier hostile frame."""
        client = self.client
        done_before = self.frame_done_counter()
        stamp = client.next_stamp()
        t0 = time.perf_counter()
        self.publish_frame(cloud, boxes, *split_ns(stamp))
        client.spin_until(lambda: stamp in client.received_at
                          or (may_skip and self.frame_done_counter() > done_before), self.args.frame_timeout)
        if stamp in client.received_at:
            return (time.perf_counter() - t0) * 1e3
        return None if may_skip and self.frame_done_counter() > done_before else float('nan')

    def valid_frame(self, phase: str) -> None:
        self.valid[f'{phase}_sent'] += 1
        before = dict(self.client.counters())
        ms = self.lockstep(self.sample.cloud, self.sample.boxes, may_skip=False)
        if ms is not None and ms == ms:
            self.valid[f'{phase}_answered'] += 1
            self.valid_ms.append(ms)
        else:  # what came just before it and which node counters moved, to find the cause
            self.client.spin_until(lambda: False, 0.5)
            moved = {k: v - before.get(k, 0) for k, v in self.client.counters().items()
                     if isinstance(v, float) and not k.endswith(('_p50', '_p99', '_samples'))
                     and v != before.get(k, 0)}
            self.missed.append(f'{phase}: after {", ".join(self.since_valid[-5:])}; node: {moved}')
        self.since_valid = []

    def valid_frames(self, phase: str, n: int) -> None:
        for _ in range(n):
            self.valid_frame(phase)
            self.check_alive(phase)

    # --------------------------------------------------------------------------------- hostile inputs
    def send(self, h) -> None:
        """One hostile input. Frames with hostile boxes go lock-step (their time is the worst-frame
        figure); everything else is fire-and-forget, checked by the next valid frame."""
        from fuzz_messages import times_frame

        self.kinds[h.kind] += 1
        self.since_valid.append(h.kind)
        if h.target == 'cloud':
            self.client.cloud_pub.publish(h.payload)
        elif h.target == 'boxes':
            self.client.boxes_pub.publish(h.payload)
        elif h.target == 'stamp':
            sec, nanosec = split_ns(h.stamp_ns)
            self.publish_frame(self.sample.cloud, self.sample.boxes, sec,
                               nanosec if h.nanosec is None else h.nanosec)
        elif h.target == 'param':
            self.set_param(h.kind, *h.payload)
        elif times_frame(h):
            ms = self.lockstep(*h.payload)
            if ms is not None and ms != ms:  # neither labels nor a skip counted within the timeout
                self.unanswered[h.kind] += 1
            elif ms is not None:
                self.frame_ms.append(ms)
                self.worst_by_kind[h.kind] = max(ms, self.worst_by_kind.get(h.kind, 0.0))
        else:
            stamp = self.client.next_stamp()
            self.publish_frame(*h.payload, *split_ns(stamp))
        self.client.executor.spin_once(timeout_sec=0.001)

    def set_param(self, kind: str, name: str, value) -> None:
        from node_harness import string_array

        from blendclip_core.vocabulary import DEFAULT_TEMPLATES, NUSCENES_10

        result = self.client.set_parameter(name, string_array(value))
        if result.successful:  # accepted: note it and put the campaign's vocabulary back
            self.params_accepted[kind] += 1
            self.client.set_parameter('vocabulary', string_array(NUSCENES_10))
            self.client.set_parameter('prompt_templates', string_array(DEFAULT_TEMPLATES))

    def hostile(self) -> None:
        from fuzz_messages import draw

        rng = np.random.default_rng(self.args.seed)
        for i in range(self.args.messages):
            self.send(draw(rng, self.sample))
            if (i + 1) % self.args.valid_every == 0:
                self.check_alive('hostile')
                self.valid_frame('during')
            if i + 1 == self.args.messages // 10:  # allocator high-water marks are reached by now
                self.rss_mb['warm'] = node_rss_mb(self.proc.pid)
            if (i + 1) % 500 == 0:
                self.rss_trace.append(round(node_rss_mb(self.proc.pid), 1))
                print(f'{i + 1}/{self.args.messages} hostile inputs, {len(self.crashes)} crashes, '
                      f'valid answered {self.valid["during_answered"]}/{self.valid["during_sent"]}',
                      file=sys.stderr, flush=True)
        self.check_alive('hostile')

    # --------------------------------------------------------------------------------- vocabulary change
    def vocabulary_change(self) -> dict:
        """Stream frames at --rate, swap in a --vocab-labels vocabulary, keep streaming until the node
        publishes it: label arrivals before, during and after, for the gap figure and its plot."""
        from node_harness import string_array
        from rcl_interfaces.msg import Parameter as ParameterMsg
        from rcl_interfaces.srv import SetParameters

        client, period = self.client, 1.0 / self.args.rate
        labels = synthetic_vocabulary(self.args.vocab_labels)
        n_vocab = len(client.vocabularies)
        t_start = time.monotonic()
        t_request = t_ready = t_end = None
        future = None
        published: list[int] = []
        next_t = t_start
        while t_end is None or time.monotonic() < t_end:
            now = time.monotonic()
            if now >= next_t:
                stamp = client.next_stamp()
                self.publish_frame(self.sample.cloud, self.sample.boxes, *split_ns(stamp))
                published.append(stamp)
                next_t = max(next_t + period, now)
            if t_request is None and now - t_start > 3.0:
                request = SetParameters.Request(
                    parameters=[ParameterMsg(name='vocabulary', value=string_array(labels))])
                future, t_request = client.set_params.call_async(request), time.monotonic()
            if t_ready is None and any(len(v.labels) == len(labels) for v in client.vocabularies[n_vocab:]):
                t_ready, t_end = time.monotonic(), time.monotonic() + 3.0
            if t_end is None and now - t_start > 600:
                t_end = now  # gave up waiting: reported as not ready
            client.executor.spin_once(timeout_sec=max(0.0, min(next_t - time.monotonic(), 0.005)))
        self.check_alive('vocabulary')
        return self._gap_report(published, t_start, t_request, t_ready, future, period)

    def _gap_report(self, published, t_start, t_request, t_ready, future, period) -> dict:
        got = self.client.received_at
        arrivals = np.array(sorted(got[s] for s in published if s in got))
        # time.time_ns() of arrivals vs monotonic marks: both measured here, offset taken once
        offset = time.time_ns() / 1e9 - time.monotonic()
        t = arrivals / 1e9 - offset
        before = t[t < t_request]
        during = t[(t >= t_request) & (t <= (t_ready or t[-1]) + 1.0)]
        window = np.concatenate([before[-1:], during])
        gap = float(np.max(np.diff(window)) * 1e3) if len(window) > 1 else float('inf')
        return {'vocab_change_max_gap_ms': gap if t_ready else float('inf'),
                'vocab_change_baseline_max_gap_ms': (float(np.max(np.diff(before)) * 1e3) if len(before) > 1
                                                     else float('nan')),
                'vocab_change_frame_period_ms': period * 1e3,
                'vocab_change_ready_s': (t_ready - t_request) if t_ready else float('inf'),
                'vocab_change_accepted': bool(future is not None and future.done()
                                              and future.result().results[0].successful),
                'vocab_change_labels': self.args.vocab_labels,
                '_arrivals_s': (t - t_request).tolist(),
                '_ready_s': (t_ready - t_request) if t_ready else None}


def synthetic_vocabulary(n: int) -> list[str]:
    """n distinct, plausible labels (words a user might type), within the node's label limits."""
    colours = ['red', 'blue', 'white', 'black', 'grey', 'green', 'yellow', 'orange', 'silver', 'brown',
               'small', 'large', 'parked', 'moving', 'old', 'new']
    things = ['car', 'truck', 'van', 'bus', 'trailer', 'tractor', 'bicycle', 'scooter', 'motorcycle',
              'cart', 'pedestrian', 'child', 'dog', 'stroller', 'wheelchair', 'cone', 'barrier', 'sign',
              'pole', 'bin',
              'bench', 'hydrant', 'bollard', 'crane', 'forklift', 'excavator', 'ambulance', 'taxi', 'tram',
              'caravan', 'skateboard', 'horse']
    places = ['', ' on the road', ' on the sidewalk', ' at the curb', ' in the lane', ' near a crossing',
              ' by the building', ' under a tree', ' at night']
    out = [f'{c} {t}{p}' for p in places for c in colours for t in things]
    if n > len(out):
        raise ValueError(f'at most {len(out)} synthetic labels')
    return out[:n]


def plot_gap(gap: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    t = np.array(gap['_arrivals_s'])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t[1:], np.diff(t) * 1e3, '.-', lw=0.8, ms=3)
    ax.axvline(0, color='k', ls='--', lw=1, label='vocabulary set')
    if gap['_ready_s'] is not None:
        ax.axvline(gap['_ready_s'], color='g', ls='--', lw=1,
                   label=f'{gap["vocab_change_labels"]} labels in use')
    ax.axhline(gap['vocab_change_frame_period_ms'], color='grey', lw=0.8, label='frame period')
    ax.set(xlabel='seconds since the vocabulary change was requested', ylabel='gap between labels (ms)',
           title='Labels keep coming while a new vocabulary is embedded')
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> dict:
    from node_bench import client_environment

    client_environment()
    tmp = Path(tempfile.mkdtemp(prefix='node_fuzz_'))
    c = Campaign(args, tmp)
    try:
        c.wait_ready()
        c.valid_frames('warmup', 3)  # first frames pay for lazy initialisation
        c.rss_mb['before'] = node_rss_mb(c.proc.pid)
        c.valid_frames('before', args.valid_frames)
        t0 = time.monotonic()
        c.hostile()
        hostile_s = time.monotonic() - t0
        c.valid_frames('after', args.valid_frames)
        c.rss_mb['after'] = node_rss_mb(c.proc.pid)
        gap = c.vocabulary_change()
        c.client.spin_until(lambda: False, 1.0)
        counters = dict(c.client.counters())
    finally:
        c.close()
    tracebacks = sum(log.read_text(errors='replace').count('Traceback') for log in c.logs)
    return summarise(args, c, gap, counters, hostile_s, tracebacks)


def summarise(args, c: Campaign, gap: dict, counters: dict, hostile_s: float, tracebacks: int) -> dict:
    v, rss = c.valid, c.rss_mb

    def fraction(phase: str) -> float:
        return v[f'{phase}_answered'] / max(1, v[f'{phase}_sent'])

    results = {
        'fuzz_messages': sum(c.kinds.values()),
        'fuzz_node_crashes': len(c.crashes),
        'fuzz_valid_frames_answered_fraction': min(fraction(p) for p in ('before', 'during', 'after')),
        'fuzz_valid_frames_answered_fraction_before': fraction('before'),
        'fuzz_valid_frames_answered_fraction_during': fraction('during'),
        'fuzz_valid_frames_answered_fraction_after': fraction('after'),
        # the same process (meaningless across a restart): from the first tenth of the hostile inputs
        # (allocator high-water marks reached) to their end, the leak figure; and from before them
        'fuzz_rss_growth_mb': float('nan') if c.crashes else rss['after'] - rss.get('warm', rss['before']),
        'fuzz_rss_growth_from_start_mb': rss['after'] - rss['before'] if not c.crashes else float('nan'),
        'node_rss_mb': rss['after'],
        'worst_frame_ms': max(c.frame_ms, default=float('nan')),
        'valid_frame_ms_p50': float(np.median(c.valid_ms)) if c.valid_ms else float('nan'),
        'valid_frame_ms_max': max(c.valid_ms, default=float('nan')),
        'hostile_frames_timed': len(c.frame_ms),
        'hostile_frames_unanswered': sum(c.unanswered.values()),
        'node_log_tracebacks': tracebacks,
        'hostile_seconds': hostile_s,
        **{k: val for k, val in gap.items() if not k.startswith('_')},
    }
    return {
        'device': f'{cpu_name()} ({os.cpu_count()} cores, shared), node on the CPU, shipped default model',
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'config': {'messages': args.messages, 'valid_every': args.valid_every, 'seed': args.seed,
                   'rate_hz': args.rate, 'max_stamp_age': args.max_stamp_age},
        'results': results,
        'kinds': dict(sorted(c.kinds.items())),
        'parameters_accepted': dict(c.params_accepted),
        'unanswered': dict(c.unanswered),
        'worst_frame_ms_by_kind': {k: round(v, 1) for k, v in sorted(c.worst_by_kind.items())},
        'node_counters': {k: val for k, val in counters.items() if isinstance(val, (int, float))},
        'crashes': c.crashes,
        'valid_frames_missed': c.missed[:50],
        'rss_trace_mb': c.rss_trace,
        '_gap': gap,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    gap = result.pop('_gap')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_gap(gap, args.out.with_name(args.out.stem + '_vocab_gap.png'))
    args.out.write_text(json.dumps(result, indent=1) + '\n')
    sys.stdout.write(json.dumps(result['results'], indent=1) + '\n')
    return 0 if result['results']['fuzz_node_crashes'] == 0 else 1


if __name__ == '__main__':
    raise SystemExit(main())
