"""A rosbags typestore that knows our messages, built from the .msg text (no rclpy, no build needed).

Bags written with it embed every definition they use (rosbags stores them per connection), so any
reader (rosbags AnyReader, `ros2 bag`, Foxglove) decodes them without our package; `ros2 bag play`
still needs `blendclip` built and sourced to publish our types.
"""

from __future__ import annotations

import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = 'blendclip'

# ROS distribution whose standard definitions (std_msgs, sensor_msgs...) the bag is written with.
# Definitions are identical for our topics across these three; hashes are Jazzy+ only.
DISTROS = {
    'humble': Stores.ROS2_HUMBLE,
    'jazzy': Stores.ROS2_JAZZY,
    'kilted': Stores.ROS2_KILTED,
}
DEFAULT_DISTRO = 'kilted'

DETECTED_BOX_ARRAY = f'{PACKAGE}/msg/DetectedBoxArray'
LABELLED_OBJECT_ARRAY = f'{PACKAGE}/msg/LabelledObjectArray'
VOCABULARY = f'{PACKAGE}/msg/Vocabulary'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
DETECTION3D_ARRAY = 'vision_msgs/msg/Detection3DArray'
MARKER_ARRAY = 'visualization_msgs/msg/MarkerArray'
CLOCK = 'rosgraph_msgs/msg/Clock'


class MessageDefinitionsNotFoundError(FileNotFoundError):
    """A package's msg/*.msg files are neither in the source tree nor in an installed share/<package>."""


def msg_dir(package: str = PACKAGE) -> Path:
    """Where a package's .msg files are: our source tree first (for our own), then share/<package>/msg
    of each prefix on AMENT_PREFIX_PATH (an install, or a sourced workspace that built the package)."""
    candidates = [Path(__file__).resolve().parents[2] / 'msg'] if package == PACKAGE else []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / package / 'msg')
    for cand in candidates:
        if any(cand.glob('*.msg')):
            return cand
    where = ', '.join(str(c) for c in candidates) or '(AMENT_PREFIX_PATH is empty)'
    hint = '' if package == PACKAGE else f'; install {package} (or source the workspace that built it)'
    raise MessageDefinitionsNotFoundError(f'no {package} .msg files in any of: {where}{hint}')


def package_types(package: str = PACKAGE, directory: Path | None = None) -> dict:
    """rosbags field definitions of every msg/*.msg of `package`, keyed '<package>/msg/<Name>'."""
    directory = msg_dir(package) if directory is None else Path(directory)
    types: dict = {}
    for path in sorted(directory.glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
    return types


def make_typestore(distro: str = DEFAULT_DISTRO, installed: tuple[str, ...] = ()) -> Typestore:
    """The distro's standard types plus ours, plus those of the `installed` packages (e.g. vision_msgs,
    read from its share/ folder: rosbags does not hold it)."""
    if distro not in DISTROS:
        raise ValueError(f'unknown distro {distro!r}; choose one of {sorted(DISTROS)}')
    store = get_typestore(DISTROS[distro])
    store.register(package_types())
    for package in installed:
        store.register(package_types(package))
    return store
