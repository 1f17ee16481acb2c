"""BlendCLIP labelling node on a vehicle: `ros2 launch blendclip blendclip.launch.py`.

    ros2 launch blendclip blendclip.launch.py cloud_topic:=/sensing/lidar/top/points \
        boxes_topic:=/perception/boxes params_file:=/path/to/my.params.yaml

The node configures and activates itself (autostart:=true); with a lifecycle manager pass
autostart:=false. Parameters: config/blendclip.params.yaml and docs/node.md. Kept declarative
(arguments, environment, one Node) so that tests can check it without ROS 2 `launch` installed.
"""

from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution


def generate_launch_description():
    share = FindPackageShare('blendclip')
    arg = LaunchConfiguration
    return LaunchDescription([
        DeclareLaunchArgument('params_file', description='Node parameters (YAML)',
                              default_value=PathJoinSubstitution([share, 'config', 'blendclip.params.yaml'])),
        DeclareLaunchArgument('cloud_topic', default_value='/lidar/points',
                              description='sensor_msgs/PointCloud2 input'),
        DeclareLaunchArgument('boxes_topic', default_value='/detections',
                              description='blendclip/DetectedBoxArray input'),
        DeclareLaunchArgument('labels_topic', default_value='/blendclip/objects',
                              description='blendclip/LabelledObjectArray output'),
        DeclareLaunchArgument('markers_topic', default_value='/blendclip/markers',
                              description='visualization_msgs/MarkerArray output'),
        DeclareLaunchArgument('autostart', default_value='true', choices=['true', 'false'],
                              description='Configure and activate without a lifecycle manager'),
        DeclareLaunchArgument('device', default_value='auto', description="'auto', 'cpu', 'cuda', 'cuda:N'"),
        DeclareLaunchArgument('node_name', default_value='blendclip'),
        DeclareLaunchArgument('namespace', default_value=''),
        # Without a bigger shared-memory segment Fast DDS silently drops best-effort clouds over 512 KB.
        DeclareLaunchArgument(
            'fastdds_profile', description='Fast DDS XML profile (Humble/Jazzy: 2.x, Kilted: 3.x; other RMWs '
            'ignore it)',
            default_value=EnvironmentVariable(
                'FASTDDS_DEFAULT_PROFILES_FILE',
                default_value=PathJoinSubstitution([share, 'config', 'fastdds_large_data.xml']))),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', arg('fastdds_profile')),
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', arg('fastdds_profile')),  # Fast DDS 2.x
        Node(
            package='blendclip', executable='blendclip_node', name=arg('node_name'),
            namespace=arg('namespace'), output='screen',
            parameters=[arg('params_file'), {'autostart': arg('autostart'), 'device': arg('device')}],
            remappings=[
                ('lidar/points', arg('cloud_topic')),
                ('detections', arg('boxes_topic')),
                ('blendclip/objects', arg('labels_topic')),
                ('blendclip/markers', arg('markers_topic')),
            ],
        ),
    ])
