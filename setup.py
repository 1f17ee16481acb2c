"""Python packaging: `pip install -e .` puts the packages and console scripts into the environment.

On a ROS 2 install the same packages are installed by CMakeLists.txt (ament_cmake), which also builds
msg/; scripts/ holds the executables it installs to lib/blendclip, one per console script below
(tests/test_packaging.py keeps the two lists equal).
"""

from setuptools import find_packages, setup

CONSOLE_SCRIPTS = {
    'blendclip_node': 'blendclip_ros.node:main',
    'blendclip-nuscenes2bag': 'blendclip_ros.bag.nuscenes2bag:main',
    'blendclip-replay': 'blendclip_ros.bag.replay:main',
    'blendclip-label-bag': 'blendclip_ros.bag.label_bag:main',
    'blendclip-demo': 'blendclip_ros.demo:main',
    'blendclip-mine': 'training.mine:main',
    'blendclip-embed': 'training.embed:main',
    'blendclip-train': 'training.train:main',
    'blendclip-eval': 'training.evaluate:main',
    'blendclip-export': 'training.export:main',
    'blendclip-label-frames': 'training.label_frames:main',
}

setup(
    name='blendclip',
    version='0.1.0',
    description='Open-vocabulary labels for LiDAR 3D boxes (BlendCLIP) with a ROS 2 node',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['blendclip_core*', 'blendclip_ros*', 'training*']),
    package_data={'blendclip_core': ['encoder/model_configs/*.json', 'assets/*']},
    entry_points={'console_scripts': [f'{k} = {v}' for k, v in CONSOLE_SCRIPTS.items()]},
)
