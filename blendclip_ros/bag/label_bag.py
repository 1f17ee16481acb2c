"""blendclip-label-bag: label every frame of a bag offline, exactly as the node would, into a new bag.

No ROS graph: messages are deserialised with rclpy's typesupport (the node's own message classes),
paired by the node's StampSynchronizer and labelled by the node's per-frame message path
(blendclip_ros.node.frame: conversions, crop, encoder, classifier) with the model the node's parameters
name; the labels are the very bytes the node publishes for the frame, markers the node's markers. The
output bag holds every input topic unchanged plus /blendclip/objects and /blendclip/markers (the node's
output topics). GPU when present (device: auto).

  blendclip-label-bag in_bag out_bag [--params-file config/blendclip.params.yaml] [-p top_k:=5]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from tqdm import tqdm

from . import typestore as tsm
from .corrupt import CorruptMessages
from .writer import BAG_VERSIONS, STORAGES, BagWriter

log = logging.getLogger(__name__)

DEFAULT_PARAMS_FILE = Path(__file__).resolve().parents[2] / 'config' / 'blendclip.params.yaml'


class LabelBagError(ValueError):
    """The input bag lacks what labelling needs (cloud or box topic) or the parameters are bad."""


@dataclass
class LabelStats:
    frames_labelled: int = 0
    objects: int = 0
    status_counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # frames skipped by the node's rules, by reason
    corrupt: CorruptMessages = field(default_factory=CorruptMessages)  # cloud/box records that do not decode
    sync: dict = field(default_factory=dict)
    model: str = ''
    seconds: float = 0.0
    model_seconds: float = 0.0
    label_seconds: float = 0.0  # the frame loop only (no model loading): what frames/s is measured on

    @property
    def frames_per_s(self) -> float:
        return self.frames_labelled / self.label_seconds if self.label_seconds else float('nan')

    def lines(self) -> list[str]:
        out = [f'labelled {self.frames_labelled} frames ({self.objects} objects) in '
               f'{self.label_seconds:.1f} s = {self.frames_per_s:.2f} frames/s with {self.model} '
               f'({self.seconds:.1f} s with loading)',
               'object status: ' + ', '.join(f'{k} {v}' for k, v in sorted(self.status_counts.items()))]
        if self.skipped:
            out.append('frames skipped: ' + ', '.join(f'{k} {v}' for k, v in sorted(self.skipped.items())))
        unpaired = {k: v for k, v in self.sync.items() if k != 'paired' and v}
        if unpaired:
            out.append(f'pairing: {unpaired}')
        return out + self.corrupt.lines()


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The `ros__parameters` of a ROS 2 params YAML ('/**' or the first node entry)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in ('/**', 'blendclip', '/blendclip'):
        if isinstance(data.get(key), dict) and 'ros__parameters' in data[key]:
            return dict(data[key]['ros__parameters'])
    for value in data.values():
        if isinstance(value, dict) and 'ros__parameters' in value:
            return dict(value['ros__parameters'])
    raise LabelBagError(f'{path}: no ros__parameters section')


def parse_overrides(items) -> dict[str, Any]:
    """['top_k:=3', "vocabulary:=['car', 'bus']"] -> values parsed as YAML (as `--ros-args -p` does)."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise LabelBagError(f'parameter override {item!r} is not name:=value')
        out[name.strip()] = yaml.safe_load(value)
    return out


def node_params(params_file: str | Path | None, overrides: dict[str, Any]):
    """The node's NodeParams from a params file plus overrides, validated by the node's own rules."""
    from blendclip_ros.node import params as P
    values = read_params_file(params_file) if params_file else {}
    values.update(overrides)
    try:
        return P.from_values(values)
    except (TypeError, ValueError) as exc:
        raise LabelBagError(f'bad parameters: {exc}') from exc


def _topic(name: str) -> str:
    """The node's relative topic names resolve in the root namespace."""
    return name if name.startswith('/') else '/' + name


class OfflineLabeller:
    """The node's per-frame work without the node: load once, then label (cloud, boxes) message pairs."""

    def __init__(self, params) -> None:
        from blendclip_ros.node import frame
        from blendclip_ros.node import params as P
        from blendclip_ros.node.model import load_model
        self.frame, self.params = frame, params
        self.model = load_model(params)
        self.settings = frame.FrameSettings.from_params(params)
        self.transforms = P.parse_static_transforms(params.static_transforms)

    def describe(self) -> str:
        return self.model.describe()

    def label(self, cloud_msg, boxes_msg):
        """-> the node's outcome (labels bytes and markers, or a skip reason; counts, model time)."""
        return self.frame.label_frame_msgs(cloud_msg, boxes_msg, self.model, self.settings, self.transforms)


def label_bag(src: str | Path, out: str | Path, params, storage: str = 'mcap', version: int = 9,
              distro: str = tsm.DEFAULT_DISTRO, markers: bool = True, progress: bool = True,
              labeller: OfflineLabeller | None = None) -> LabelStats:
    from blendclip_ros.node.sync import StampSynchronizer

    cloud_topic, boxes_topic = _topic(params.cloud_topic), _topic(params.boxes_topic)
    labels_topic, markers_topic = _topic(params.labels_topic), _topic(params.markers_topic)
    stats = LabelStats()
    start = time.perf_counter()
    sync = StampSynchronizer(params.sync_slop_ns, params.sync_queue_size, 0)  # no wall-clock age offline
    store = tsm.make_typestore(distro)
    if Path(out).exists():
        raise FileExistsError(f'{out} exists; rosbag2 bags are never overwritten')
    with AnyReader([Path(src)]) as reader:
        # Everything that can be checked cheaply is checked before the model loads.
        topics = {c.topic: c.msgtype for c in reader.connections}
        for topic, want in ((cloud_topic, tsm.POINT_CLOUD2), (boxes_topic, tsm.DETECTED_BOX_ARRAY)):
            if topics.get(topic) != want:
                raise LabelBagError(f'{src}: needs {want} on {topic}, found {topics.get(topic)!r} '
                                    f'(topics: {sorted(topics)})')
        clash = {labels_topic, markers_topic} & set(topics)
        if clash:
            raise LabelBagError(f'{src} already holds {sorted(clash)}; label the unlabelled bag')
        labeller = labeller or OfflineLabeller(params)
        stats.model = labeller.describe()
        with BagWriter(out, store, storage, version) as bag:
            _label_messages(reader, bag, labeller, sync, stats, (cloud_topic, boxes_topic, labels_topic,
                                                                 markers_topic), markers, progress)
    stats.sync = sync.counters.as_dict()
    stats.seconds = time.perf_counter() - start
    return stats


def _label_messages(reader, bag, labeller, sync, stats: LabelStats, topics, markers: bool, progress: bool):
    """Copy every message; label each cloud/boxes pair the synchroniser completes."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2

    from blendclip.msg import DetectedBoxArray
    from blendclip_ros.conversions.stamps import stamp_to_ns
    cloud_topic, boxes_topic, labels_topic, markers_topic = topics
    n_frames = sum(c.msgcount for c in reader.connections if c.topic == cloud_topic)
    loop_start = time.perf_counter()
    bar = tqdm(total=n_frames, unit='frame', disable=not progress, desc='label-bag')
    classes = {cloud_topic: PointCloud2, boxes_topic: DetectedBoxArray}
    for conn, t, raw in reader.messages():
        # Every record is copied as recorded (a corrupt one too: the output is the input plus labels).
        bag.connection(conn.topic, conn.msgtype, conn.ext.offered_qos_profiles, conn.msgdef.data,
                       conn.digest)
        bag.write_raw(conn.topic, conn.msgtype, t, raw)
        if conn.topic not in classes:
            continue
        bar.update(conn.topic == cloud_topic)
        try:
            msg = deserialize_message(bytes(raw), classes[conn.topic])
        except Exception as exc:  # noqa: BLE001 - any bytes can be in a record; rclpy raises RMWError
            stats.corrupt.add(conn.topic, t, exc)
            continue
        add = sync.add_cloud if conn.topic == cloud_topic else sync.add_boxes
        pair = add(stamp_to_ns(msg.header.stamp), msg)
        if pair is None:
            continue
        outcome = labeller.label(pair.cloud, pair.boxes)
        stats.model_seconds += outcome.model_ms / 1e3
        if outcome.skip_reason:
            stats.skipped[outcome.skip_reason] += 1
            log.warning('frame %d skipped: %s', stamp_to_ns(pair.boxes.header.stamp), outcome.message)
            continue
        bag.write_raw(labels_topic, tsm.LABELLED_OBJECT_ARRAY, t, outcome.labels_cdr)  # the node's bytes
        if markers:
            bag.write_raw(markers_topic, tsm.MARKER_ARRAY, t, serialize_message(outcome.markers()))
        stats.frames_labelled += 1
        stats.objects += len(outcome.predictions)
        stats.status_counts.update(_status_name(s) for s in outcome.predictions.status)
    bar.close()
    stats.label_seconds = time.perf_counter() - loop_start


def _status_name(status: int) -> str:
    from blendclip_core.types import ObjectStatus
    try:
        return ObjectStatus(int(status)).name
    except ValueError:
        return str(status)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-label-bag', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', type=Path, help='input bag (e.g. from blendclip-nuscenes2bag)')
    p.add_argument('out', type=Path, help='output bag to create (must not exist)')
    p.add_argument('--params-file', type=Path, default=DEFAULT_PARAMS_FILE,
                   help='the node parameters to label with (default: the packaged blendclip.params.yaml)')
    p.add_argument('-p', '--param', action='append', default=[], metavar='NAME:=VALUE',
                   help='override one node parameter, e.g. -p checkpoint:=model.pt -p device:=cpu; an '
                   'exported model: -p checkpoint:=EXPORT_DIR -p model_format:=onnx (or aoti, or auto)')
    p.add_argument('--no-markers', action='store_true', help='leave out the MarkerArray topic')
    p.add_argument('--storage', choices=sorted(STORAGES), default='mcap')
    p.add_argument('--bag-version', type=int, choices=BAG_VERSIONS, default=9)
    p.add_argument('--distro', choices=sorted(tsm.DISTROS), default=tsm.DEFAULT_DISTRO)
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        params = node_params(args.params_file, parse_overrides(args.param))
        stats = label_bag(args.src, args.out, params, args.storage, args.bag_version, args.distro,
                          markers=not args.no_markers, progress=not args.no_progress)
    except (LabelBagError, AnyReaderError, OSError, ValueError, RuntimeError) as exc:
        # Bad bag, bad parameters, a model that does not load: say why, no traceback.
        print(f'blendclip-label-bag: error: {exc}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}')
    for line in stats.lines():
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
