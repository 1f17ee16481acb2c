"""Build messages with a rosbags typestore and write them into a rosbag2 bag (mcap or sqlite3, v8/v9).

No rclpy here: conversion runs on any machine with Python, the bag carries every definition it uses.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from blendclip_core.atomic import TMP_MARK, stale_temporaries, temporary_name
from blendclip_core.geometry import Boxes
from blendclip_ros.conversions.stamps import split_ns

from . import typestore as tsm

log = logging.getLogger(__name__)

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_VERSIONS = (8, 9)

# sensor_msgs/PointField datatype constants.
POINTFIELD_TYPES = {np.dtype(t): i + 1 for i, t in enumerate(
    (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64))}

_ZERO = QosTime(0, 0)
# What rosbag2 records for a latched publisher: `ros2 bag play` re-offers /tf_static transient-local.
TF_STATIC_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                    _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)


@dataclass(frozen=True)
class Topics:
    """Topic names written by blendclip-nuscenes2bag (the node's default inputs, see
    config/blendclip.params.yaml)."""

    cloud: str = '/lidar/points'
    detections: str = '/detections'
    ground_truth: str = '/ground_truth/categories'
    ground_truth_vision: str = '/ground_truth/detections'  # with --vision-ground-truth
    tf: str = '/tf'
    tf_static: str = '/tf_static'
    cameras: str = '/cameras'  # + '/<CHANNEL>/image/compressed' and '/<CHANNEL>/camera_info'

    def camera_image(self, channel: str) -> str:
        return f'{self.cameras}/{channel}/image/compressed'

    def camera_info(self, channel: str) -> str:
        return f'{self.cameras}/{channel}/camera_info'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_bag_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries of `path` whose writer process is gone (killed mid-write); a live
    writer's temporary is left alone. -> the removed paths."""
    removed = []
    for stale in stale_temporaries(path.parent, path.name):
        pid = stale.name.rpartition(TMP_MARK)[2]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def is_bag_temporary(path: Path) -> bool:
    """A path inside or at a writer's temporary: an unfinished bag."""
    return any(part.startswith('.') and TMP_MARK in part for part in Path(path).parts)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(bag: Path) -> None:
    """The bag's files and folder on disk before the rename makes them visible (as atomic_write does)."""
    for f in bag.iterdir():
        with open(f, 'rb') as handle:
            os.fsync(handle.fileno())
    _fsync_dir(bag)


class MessageFactory:
    """Messages of a typestore built from core data (rosbags dataclasses, serialised to CDR)."""

    def __init__(self, store) -> None:
        self.store = store
        t = store.types
        self.Time, self.Header = t['builtin_interfaces/msg/Time'], t['std_msgs/msg/Header']
        self.Point, self.Quat = t['geometry_msgs/msg/Point'], t['geometry_msgs/msg/Quaternion']
        self.Pose, self.Vector3 = t['geometry_msgs/msg/Pose'], t['geometry_msgs/msg/Vector3']

    def serialize(self, msg) -> bytes:
        return self.store.serialize_cdr(msg, msg.__msgtype__)

    def header(self, stamp_ns: int, frame_id: str):
        sec, nanosec = split_ns(stamp_ns)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def cloud(self, points: np.ndarray, stamp_ns: int, frame_id: str):
        """Structured array -> PointCloud2 (height 1, little-endian, fields in dtype order)."""
        field_t = self.store.types['sensor_msgs/msg/PointField']
        fields = []
        for name in points.dtype.names:
            dt, offset = points.dtype.fields[name][:2]
            if dt.base not in POINTFIELD_TYPES:
                raise TypeError(f'point field {name!r} has unsupported dtype {dt}')
            fields.append(field_t(name=name, offset=offset, datatype=POINTFIELD_TYPES[dt.base], count=1))
        data = np.frombuffer(np.ascontiguousarray(points).tobytes(), dtype=np.uint8)
        return self.store.types[tsm.POINT_CLOUD2](
            header=self.header(stamp_ns, frame_id), height=1, width=len(points), fields=fields,
            is_bigendian=False, point_step=points.dtype.itemsize,
            row_step=points.dtype.itemsize * len(points), data=data, is_dense=True)

    def pose(self, center, quat_xyzw):
        return self.Pose(position=self.Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
                         orientation=self.Quat(x=float(quat_xyzw[0]), y=float(quat_xyzw[1]),
                                               z=float(quat_xyzw[2]), w=float(quat_xyzw[3])))

    def vector(self, v):
        return self.Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def detected_boxes(self, boxes: Boxes, stamp_ns: int):
        box_t = self.store.types['blendclip/msg/DetectedBox']
        items = [box_t(id=boxes.ids[i], pose=self.pose(boxes.centers[i], boxes.quaternions[i]),
                       size=self.vector(boxes.sizes[i]), detector_label=boxes.detector_labels[i],
                       detector_score=float(boxes.detector_scores[i])) for i in range(len(boxes))]
        return self.store.types[tsm.DETECTED_BOX_ARRAY](header=self.header(stamp_ns, boxes.frame_id),
                                                        boxes=items)

    def ground_truth(self, boxes: Boxes, classes, num_points, stamp_ns: int, version: str):
        """GT as LabelledObjectArray: label = benchmark class ('' outside the classes), score 1,
        detector_label = fine category, num_points = the dataset's own count."""
        obj_t = self.store.types['blendclip/msg/LabelledObject']
        hyp_t = self.store.types['blendclip/msg/LabelHypothesis']
        items = []
        for i in range(len(boxes)):
            label = classes[i]
            items.append(obj_t(
                id=boxes.ids[i], pose=self.pose(boxes.centers[i], boxes.quaternions[i]),
                size=self.vector(boxes.sizes[i]), label=label, score=1.0 if label else float('nan'),
                top_k=[hyp_t(label=label, score=1.0)] if label else [],
                num_points=int(max(num_points[i], 0)), status=0,
                detector_label=boxes.detector_labels[i], detector_score=float('nan')))
        return self.store.types[tsm.LABELLED_OBJECT_ARRAY](
            header=self.header(stamp_ns, boxes.frame_id), objects=items, vocabulary_version=version,
            model='ground_truth')

    def ground_truth_detections(self, boxes: Boxes, classes, stamp_ns: int):
        """GT as vision_msgs/Detection3DArray (the store must hold vision_msgs): one hypothesis per
        labelled box (class_id = benchmark class, score 1), boxes outside the classes without results,
        as the node's vision_msgs output writes unlabelled objects (conversions/vision.py)."""
        t = self.store.types
        det_t, bbox_t = t['vision_msgs/msg/Detection3D'], t['vision_msgs/msg/BoundingBox3D']
        hyp_t = t['vision_msgs/msg/ObjectHypothesis']
        hyp_pose_t = t['vision_msgs/msg/ObjectHypothesisWithPose']
        cov_t = t['geometry_msgs/msg/PoseWithCovariance']
        header = self.header(stamp_ns, boxes.frame_id)
        items = []
        for i in range(len(boxes)):
            pose = self.pose(boxes.centers[i], boxes.quaternions[i])
            results = [hyp_pose_t(hypothesis=hyp_t(class_id=classes[i], score=1.0),
                                  pose=cov_t(pose=pose, covariance=np.zeros(36)))] if classes[i] else []
            items.append(det_t(header=header, results=results, id=boxes.ids[i],
                               bbox=bbox_t(center=pose, size=self.vector(boxes.sizes[i]))))
        return t[tsm.DETECTION3D_ARRAY](header=header, detections=items)

    def transforms(self, items):
        """items: (stamp_ns, parent, child, Rigid) -> TFMessage."""
        tf_t = self.store.types['geometry_msgs/msg/TransformStamped']
        tr_t = self.store.types['geometry_msgs/msg/Transform']
        out = []
        for stamp_ns, parent, child, rigid in items:
            q = rigid.quaternion_xyzw
            out.append(tf_t(header=self.header(stamp_ns, parent), child_frame_id=child,
                            transform=tr_t(translation=self.vector(rigid.translation),
                                           rotation=self.Quat(x=q[0], y=q[1], z=q[2], w=q[3]))))
        return self.store.types[tsm.TF_MESSAGE](transforms=out)

    def compressed_image(self, jpeg: bytes, stamp_ns: int, frame_id: str):
        return self.store.types[tsm.COMPRESSED_IMAGE](
            header=self.header(stamp_ns, frame_id), format='jpeg', data=np.frombuffer(jpeg, dtype=np.uint8))

    def camera_info(self, intrinsics: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str):
        k = np.asarray(intrinsics, np.float64).reshape(3, 3)
        p = np.zeros((3, 4))
        p[:, :3] = k
        roi_t = self.store.types['sensor_msgs/msg/RegionOfInterest']
        return self.store.types[tsm.CAMERA_INFO](
            header=self.header(stamp_ns, frame_id), height=height, width=width, distortion_model='plumb_bob',
            d=np.zeros(5), k=k.reshape(-1), r=np.eye(3).reshape(-1), p=p.reshape(-1), binning_x=0,
            binning_y=0, roi=roi_t(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


class BagWriter:
    """rosbags Writer with one connection per topic, added on first use.

    The bag is complete or absent: it is written as `.<name>.tmp-<pid>/<name>` beside `path` and moved
    to `path` only when it closed without error (an error removes it). A killed writer leaves only
    that temporary; the next writer of the same path removes it, so a rerun needs no cleanup.
    """

    def __init__(self, path: str | Path, store, storage: str = 'mcap', version: int = 9) -> None:
        if storage not in STORAGES:
            raise ValueError(f'unknown storage {storage!r}; choose one of {sorted(STORAGES)}')
        if version not in BAG_VERSIONS:
            raise ValueError(f'rosbag2 version must be one of {BAG_VERSIONS}, got {version}')
        path = Path(path)
        if path.exists():
            raise FileExistsError(f'{path} exists; rosbag2 bags are never overwritten')
        self.path, self.store = path, store
        self.temporary = temporary_name(path)
        self._writer = Writer(self.temporary / path.name, version=version, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        for stale in remove_stale_bag_temporaries(self.path):
            log.warning('removed %s, left by a writer of %s that did not finish', stale, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary.mkdir()
        try:
            self._writer.open()
        except BaseException:
            shutil.rmtree(self.temporary, ignore_errors=True)
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:
                self._writer.abort()
                return
            self._writer.close()
            _fsync_tree(self.temporary / self.path.name)
            os.rename(self.temporary / self.path.name, self.path)  # atomic; fails if path appeared
            _fsync_dir(self.path.parent)
        finally:
            shutil.rmtree(self.temporary, ignore_errors=True)

    def connection(self, topic: str, msgtype: str, qos=(), msgdef: str | None = None,
                   rihs01: str | None = None):
        conn = self._connections.get(topic)
        if conn is None:
            if msgdef is not None and rihs01 is not None:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                                   offered_qos_profiles=qos)
            else:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.store,
                                                   offered_qos_profiles=qos)
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise TypeError(f'{topic} already holds {conn.msgtype}, cannot write {msgtype}')
        return conn

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes, qos=()) -> None:
        self._writer.write(self.connection(topic, msgtype, qos), int(stamp_ns), data)
        self.counts[topic] += 1

    def write(self, topic: str, stamp_ns: int, msg, qos=()) -> None:
        self.write_raw(topic, msg.__msgtype__, stamp_ns, self.store.serialize_cdr(msg, msg.__msgtype__), qos)
