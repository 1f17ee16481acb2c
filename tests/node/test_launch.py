"""Launch files: they compile and define generate_launch_description. What they do (arguments,
remappings, parameters files, the nodes they start) is checked by running them for real with
`ros2 launch` in test_ros2_launch.py and test_ros2_launch_replay.py."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
OUR_LAUNCH = ['blendclip.launch.py', 'replay_nuscenes.launch.py']


@pytest.mark.parametrize('name', OUR_LAUNCH)
def test_launch_file_compiles_and_defines_generate(name):
    path = REPO / 'launch' / name
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), 'exec')
    assert 'generate_launch_description' in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_all_launch_files_are_ours():
    assert sorted(p.name for p in LAUNCH_FILES) == sorted(OUR_LAUNCH)
