"""Replay a converted nuScenes bag into the BlendCLIP node: check the node before the vehicle.

    blendclip-nuscenes2bag --dataroot /data/nuscenes --scenes scene-0061 --out scene-0061
    ros2 launch blendclip replay_nuscenes.launch.py bag:=scene-0061

Starts two nodes: `blendclip-replay` (publishes the bag's topics at the recorded rate; works where
`ros2 bag play` is not installed) and the labelling node with its inputs remapped to the bag's topics
(/lidar/points, /detections as written by blendclip-nuscenes2bag). On a full ROS 2 install
`ros2 bag play scene-0061` plus blendclip.launch.py does the same. Kept declarative, like
blendclip.launch.py, so that tests can check it without ROS 2 `launch` installed.
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
        DeclareLaunchArgument('bag', description='Bag directory written by blendclip-nuscenes2bag'),
        DeclareLaunchArgument('rate', default_value='1.0', description='Replay speed factor'),
        DeclareLaunchArgument('params_file', description='Node parameters (YAML)',
                              default_value=PathJoinSubstitution([share, 'config', 'blendclip.params.yaml'])),
        DeclareLaunchArgument('device', default_value='auto', description="'auto', 'cpu', 'cuda', 'cuda:N'"),
        DeclareLaunchArgument(
            'fastdds_profile', description='Fast DDS XML profile (Humble/Jazzy: 2.x, Kilted: 3.x; other RMWs '
            'ignore it)',
            default_value=EnvironmentVariable(
                'FASTDDS_DEFAULT_PROFILES_FILE',
                default_value=PathJoinSubstitution([share, 'config', 'fastdds_large_data.xml']))),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', arg('fastdds_profile')),
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', arg('fastdds_profile')),  # Fast DDS 2.x
        Node(
            package='blendclip', executable='blendclip_node', name='blendclip', output='screen',
            parameters=[arg('params_file'), {'autostart': True, 'device': arg('device')}],
            remappings=[('lidar/points', '/lidar/points'), ('detections', '/detections')],
        ),
        Node(
            package='blendclip', executable='blendclip-replay', name='blendclip_replay', output='screen',
            # Wait until the node subscribes (it loads its model first), so no frame is played to nobody.
            arguments=[arg('bag'), '--rate', arg('rate'), '--wait-for-subscribers', '1',
                       '--wait-timeout', '300'],
        ),
    ])
