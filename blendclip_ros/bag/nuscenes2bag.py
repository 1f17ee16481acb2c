"""blendclip-nuscenes2bag: nuScenes (or TruckScenes) keyframes -> a rosbag2 bag the node can replay.

Topics (see docs/bags.md): /lidar/points PointCloud2 in LIDAR_TOP (x, y, z, intensity float32,
ring uint16 [, time float32 with --sweeps > 1]); /detections DetectedBoxArray in the same frame, from
ground truth or a detector's results file; /ground_truth/categories LabelledObjectArray (label = the
benchmark class, detector_label = fine category) [with --vision-ground-truth also as
vision_msgs/Detection3DArray on /ground_truth/detections]; /tf_static base_link -> sensors, /tf map ->
base_link;
with --cameras /cameras/<CAM>/image/compressed + camera_info.

  blendclip-nuscenes2bag --dataroot /data/nuscenes --version v1.0-mini --scenes scene-0061 out_bag
  blendclip-nuscenes2bag --sample-dir data/nuscenes_sample out_bag
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from blendclip_core.datasets.frame import Frame
from blendclip_core.geometry import Boxes

from . import typestore as tsm
from .detections import DetectionResults
from .sources import DevkitSource, SampleDirSource, SourceError, cloud_points
from .writer import BAG_VERSIONS, STORAGES, TF_STATIC_QOS, BagWriter, MessageFactory, Topics

log = logging.getLogger(__name__)

EGO_FRAME = 'base_link'
MAP_FRAME = 'map'


@dataclass(frozen=True)
class ConvertConfig:
    storage: str = 'mcap'  # 'mcap' (Jazzy/Kilted default) or 'sqlite3'
    version: int = 9  # rosbag2 metadata version: 9 for Jazzy/Kilted, 8 for Humble's `ros2 bag play`
    distro: str = tsm.DEFAULT_DISTRO  # standard message definitions to embed
    cameras: bool = False  # also write the camera images of each keyframe
    min_score: float = 0.0  # detections below this score are left out (results-file mode only)
    vision_ground_truth: bool = False  # also the ground truth as vision_msgs/Detection3DArray
    topics: Topics = field(default_factory=Topics)


@dataclass
class Summary:
    frames: int = 0
    points: int = 0
    detections: int = 0
    gt_boxes: int = 0
    gt_by_class: dict[str, int] = field(default_factory=dict)
    skipped_detections: int = 0
    skipped_frames: int = 0
    skipped_sweeps: int = 0
    skipped_frame_reasons: list[str] = field(default_factory=list)  # which keyframes, and why
    messages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f'{self.frames} frames, {self.points} points, {self.detections} boxes on /detections, '
               f'{self.gt_boxes} ground-truth boxes in {self.seconds:.1f} s',
               'ground truth by class: ' + ', '.join(f'{k or "(other)"} {v}'
                                                     for k, v in sorted(self.gt_by_class.items()))]
        for what in ('frames', 'sweeps', 'detections'):
            n = getattr(self, f'skipped_{what}')
            if n:
                out.append(f'skipped {n} {what} that could not be read (see the warnings above)')
        out += [f'  skipped {reason}' for reason in self.skipped_frame_reasons]
        out += [f'  {topic}: {n} messages' for topic, n in sorted(self.messages.items())]
        return out


def _image_size(jpeg: bytes) -> tuple[int, int]:
    from PIL import Image  # matplotlib's dependency; only needed with --cameras
    with Image.open(io.BytesIO(jpeg)) as im:
        return im.size


class FrameWriter:
    """Writes Frames into an open BagWriter; /tf_static once per calibration change."""

    def __init__(self, bag: BagWriter, config: ConvertConfig, detections: DetectionResults | None = None,
                 gt_version: str = 'nuscenes-detection', time_field: bool = False) -> None:
        self.bag, self.config, self.detections = bag, config, detections
        self.msgs = MessageFactory(bag.store)
        self.gt_version, self.time_field = gt_version, time_field
        self.summary = Summary()
        self._static_key = None
        self._image_sizes: dict[str, tuple[int, int]] = {}

    def write(self, frame: Frame) -> None:
        t, topics, m = frame.stamp_ns, self.config.topics, self.msgs
        self._write_static(frame)
        tf = [(t, MAP_FRAME, EGO_FRAME, frame.ego_to_global)]
        self.bag.write(topics.tf, t, m.transforms(tf))
        points = cloud_points(frame, self.time_field)
        self.bag.write(topics.cloud, t, m.cloud(points, t, frame.reference))
        gt, classes = frame.boxes, frame.classes
        if self.detections is None:
            # Ground-truth boxes as the "detector": the answer stays on its own topic only.
            boxes = Boxes(gt.centers, gt.sizes, gt.quaternions, gt.ids, gt.frame_id)
        else:
            global_to_lidar = (frame.ego_to_global @ frame.reference_to_ego).inverse()
            boxes = self.detections.boxes(frame.token, global_to_lidar, frame.reference,
                                          self.config.min_score)
        self.bag.write(topics.detections, t, m.detected_boxes(boxes, t))
        self.bag.write(topics.ground_truth, t, m.ground_truth(gt, classes, frame.num_lidar_points, t,
                                                              self.gt_version))
        if self.config.vision_ground_truth:
            self.bag.write(topics.ground_truth_vision, t, m.ground_truth_detections(gt, classes, t))
        for cam in frame.cameras:
            self._write_camera(cam)
        s = self.summary
        s.frames += 1
        s.points += len(points)
        s.detections += len(boxes)
        s.gt_boxes += len(gt)
        for c in classes:
            s.gt_by_class[c] = s.gt_by_class.get(c, 0) + 1

    def _write_static(self, frame: Frame) -> None:
        # Stamped at the frame's earliest message so a player has the rig before any sensor data.
        t = min([frame.stamp_ns] + [c.stamp_ns for c in frame.cameras])
        items = [(t, EGO_FRAME, frame.reference, frame.reference_to_ego)]
        items += [(t, EGO_FRAME, c.channel, c.sensor_to_ego) for c in frame.cameras]
        key = tuple((child, tuple(r.matrix.round(9).ravel())) for _, _, child, r in items)
        if key != self._static_key:
            self.bag.write(self.config.topics.tf_static, t, self.msgs.transforms(items),
                           qos=[TF_STATIC_QOS])
            self._static_key = key

    def _write_camera(self, cam) -> None:
        topics, m = self.config.topics, self.msgs
        if cam.ego_to_global is not None:
            self.bag.write(topics.tf, cam.stamp_ns, m.transforms([(cam.stamp_ns, MAP_FRAME, EGO_FRAME,
                                                                   cam.ego_to_global)]))
        self.bag.write(topics.camera_image(cam.channel), cam.stamp_ns,
                       m.compressed_image(cam.jpeg, cam.stamp_ns, cam.channel))
        if cam.channel not in self._image_sizes:
            self._image_sizes[cam.channel] = _image_size(cam.jpeg)
        w, h = self._image_sizes[cam.channel]
        self.bag.write(topics.camera_info(cam.channel), cam.stamp_ns,
                       m.camera_info(cam.intrinsic, w, h, cam.stamp_ns, cam.channel))


def convert(frames, out: str | Path, config: ConvertConfig | None = None,
            detections: DetectionResults | None = None, progress: bool = True,
            gt_version: str = 'nuscenes-detection') -> Summary:
    """Write every frame of `frames` (a source: iterable of Frame with len) into a new bag at `out`."""
    config = config or ConvertConfig()
    store = tsm.make_typestore(config.distro, ('vision_msgs',) if config.vision_ground_truth else ())
    start = time.perf_counter()
    with BagWriter(out, store, config.storage, config.version) as bag:
        writer = FrameWriter(bag, config, detections, gt_version, getattr(frames, 'time_field', False))
        for frame in tqdm(frames, total=len(frames), unit='frame', disable=not progress, desc='nuscenes2bag'):
            writer.write(frame)
        writer.summary.messages = dict(bag.counts)
    writer.summary.seconds = time.perf_counter() - start
    if detections is not None:
        writer.summary.skipped_detections = detections.skipped
    writer.summary.skipped_frames = getattr(frames, 'skipped_frames', 0)
    writer.summary.skipped_sweeps = getattr(frames, 'skipped_sweeps', 0)
    writer.summary.skipped_frame_reasons = list(getattr(frames, 'skipped_frame_reasons', ()))
    return writer.summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-nuscenes2bag', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out', type=Path, nargs='?', help='bag directory to create (must not exist)')
    p.add_argument('--out', type=Path, dest='out_option', help='the same, as an option')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--dataroot', type=Path,
                     help='nuScenes-format dataroot (tables in <dataroot>/<version>)')
    src.add_argument('--sample-dir', type=Path, help='single keyframe: a pcd.bin + annotations_lidar.json')
    p.add_argument('--dataset', choices=('nuscenes', 'truckscenes'), default='nuscenes')
    p.add_argument('--version', default='v1.0-mini', help='table version, e.g. v1.0-mini, v1.2-mini')
    p.add_argument('--scenes', nargs='*', default=(), help='scene names (default: all)')
    p.add_argument('--lidar', nargs='*', default=(),
                   help='LiDAR channel(s); several are fused into the first (default: LIDAR_TOP for '
                        'nuScenes, all LiDARs for TruckScenes)')
    p.add_argument('--sweeps', type=int, default=1,
                   help='sweeps accumulated per keyframe (adds a time field)')
    p.add_argument('--cameras', action='store_true', help='write camera images + camera_info')
    p.add_argument('--detections', type=Path,
                   help='nuScenes detection-submission results JSON to publish instead of ground-truth boxes')
    p.add_argument('--min-score', type=float, default=0.0, help='drop detections below this score')
    p.add_argument('--vision-ground-truth', action='store_true',
                   help='also write the ground truth as vision_msgs/Detection3DArray on '
                        '/ground_truth/detections (needs vision_msgs installed: its share/vision_msgs/msg '
                        'on AMENT_PREFIX_PATH)')
    p.add_argument('--storage', choices=sorted(STORAGES), default='mcap')
    p.add_argument('--bag-version', type=int, choices=BAG_VERSIONS, default=9,
                   help='rosbag2 format: 9 for Jazzy/Kilted, 8 for Humble')
    p.add_argument('--distro', choices=sorted(tsm.DISTROS), default=tsm.DEFAULT_DISTRO)
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.out is None) == (args.out_option is None):
        parser.error('give the output bag once, as OUT or --out')
    args.out = args.out or args.out_option
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    config = ConvertConfig(args.storage, args.bag_version, args.distro, args.cameras, args.min_score,
                           args.vision_ground_truth)
    try:
        if args.sample_dir is not None:
            source = SampleDirSource(args.sample_dir, cameras=args.cameras)
            if args.sweeps != 1:
                raise SourceError('--sweeps needs a dataroot; the sample holds a single sweep')
        else:
            source = DevkitSource.open(args.dataset, args.dataroot, args.version,
                                       scenes=tuple(args.scenes), sweeps=args.sweeps,
                                       lidar_channels=tuple(args.lidar), cameras=args.cameras)
        detections = DetectionResults.load(args.detections) if args.detections else None
        summary = convert(source, args.out, config, detections, progress=not args.no_progress,
                          gt_version=f'{args.dataset}-detection')
    except (SourceError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f'blendclip-nuscenes2bag: error: {exc}', file=sys.stderr)
        return 2
    print(f'wrote {args.out} ({args.storage}, rosbag2 v{args.bag_version})')
    for line in summary.lines():
        print(line)
    if not summary.frames:
        print('blendclip-nuscenes2bag: error: no frame could be converted (see the warnings above)',
              file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
