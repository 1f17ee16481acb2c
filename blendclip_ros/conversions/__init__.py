"""Pure conversions between ROS messages and numpy / blendclip_core types.

No function here needs rclpy.init or a node; importing this package loads no ROS code (message
classes are imported by the builders when called), so the bag tools can use it with rosbags types.

- pointcloud: PointCloud2 <-> numpy structured arrays, `cloud_to_xyz`, typed MalformedCloudError.
- boxes: DetectedBoxArray <-> Boxes, Predictions -> LabelledObjectArray.
- vision: vision_msgs/Detection3DArray <-> Boxes / LabelledObjectArray (duck-typed).
- markers: MarkerArray (wireframe box + label text) for RViz, from predictions and boxes.
- cdr: LabelledObjectArray -> CDR bytes, DetectedBoxArray CDR -> Boxes (the node's hot paths).
- stamps: builtin_interfaces/Time <-> integer nanoseconds.
"""

from blendclip_ros.conversions.boxes import (
    boxes_from_labelled_msg,
    boxes_from_msg,
    boxes_to_msg,
    labelled_objects_to_msg,
)
from blendclip_ros.conversions.markers import label_colour, labelled_markers
from blendclip_ros.conversions.pointcloud import (
    CloudSizeError,
    CloudXYZ,
    FieldLayoutError,
    FieldSpec,
    MalformedCloudError,
    MissingFieldError,
    UnknownDatatypeError,
    array_to_cloud,
    cloud_to_array,
    cloud_to_xyz,
    dtype_from_fields,
    fields_from_dtype,
    points_to_cloud,
)
from blendclip_ros.conversions.vision import boxes_from_detection3d_array, detection3d_array_from_labelled

__all__ = [
    'CloudSizeError', 'CloudXYZ', 'FieldLayoutError', 'FieldSpec', 'MalformedCloudError',
    'MissingFieldError', 'UnknownDatatypeError', 'array_to_cloud', 'boxes_from_detection3d_array',
    'boxes_from_labelled_msg', 'boxes_from_msg', 'boxes_to_msg', 'cloud_to_array', 'cloud_to_xyz',
    'detection3d_array_from_labelled', 'dtype_from_fields', 'fields_from_dtype', 'label_colour',
    'labelled_markers', 'labelled_objects_to_msg', 'points_to_cloud',
]
