"""Launch files: they compile, declare what we ship, and the runner turns them into the right commands.

ROS 2 `launch`/`launch_ros` have no wheels, so the files are executed against the test-only stand-ins
in launch_stubs/ (on sys.path only inside these tests). The behavioural check (the runner starting
the node and a message round trip) is in test_node_integration.py.
"""

import ast
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).resolve().parent / 'launch_stubs'
LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
OUR_LAUNCH = ['blendclip.launch.py', 'replay_nuscenes.launch.py']


@pytest.fixture
def stubs():
    """Put the stand-ins first on sys.path; remove them and their modules afterwards."""
    sys.path.insert(0, str(STUBS))
    try:
        yield
    finally:
        sys.path.remove(str(STUBS))
        for name in [m for m in sys.modules if m.split('.')[0] in ('launch', 'launch_ros')]:
            del sys.modules[name]


def _console_scripts():
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'CONSOLE_SCRIPTS':
            return ast.literal_eval(node.value)
    raise AssertionError('CONSOLE_SCRIPTS not found in setup.py')


def _plan(name, **args):
    from blendclip_ros import launch_runner

    return launch_runner.plan(launch_runner.load_description(REPO / 'launch' / name), args,
                              {'blendclip': str(REPO)})


def _node_topic_params():
    params = yaml.safe_load((REPO / 'config' / 'blendclip.params.yaml').read_text())['/**']['ros__parameters']
    return {k: v for k, v in params.items() if k.endswith('_topic')}


@pytest.mark.parametrize('name', OUR_LAUNCH)
def test_launch_file_compiles_and_defines_generate(name):
    path = REPO / 'launch' / name
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), 'exec')
    assert 'generate_launch_description' in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_all_launch_files_are_ours():
    assert sorted(p.name for p in LAUNCH_FILES) == sorted(OUR_LAUNCH)


@pytest.mark.parametrize('name', OUR_LAUNCH)
def test_declared_nodes_exist_params_files_exist_remaps_match(stubs, name):
    plan = _plan(name, **({'bag': '/tmp/some_bag'} if 'replay' in name else {}))
    scripts = _console_scripts()
    topic_params = _node_topic_params()
    assert plan.nodes
    for node in plan.nodes:
        assert node.package == 'blendclip'
        assert node.executable in scripts, f'{node.executable} is not a console script in setup.py'
        assert (REPO / 'scripts' / node.executable).is_file(), 'ament installs scripts/<exe> to lib/blendclip'
        for f in node.params_files:
            assert Path(f).is_file(), f
        if node.executable == 'blendclip_node':
            assert node.name == 'blendclip' and node.params_files
            assert dict(node.param_overrides)['autostart'] == 'true'
            # every remap source is a topic name the node really uses (from the shipped params file)
            sources = {src for src, _ in node.remappings}
            assert sources <= set(topic_params.values()), sources - set(topic_params.values())
            assert {'lidar/points', 'detections'} <= sources
    assert Path(plan.environment['FASTDDS_DEFAULT_PROFILES_FILE']).is_file() or \
        'FASTDDS_DEFAULT_PROFILES_FILE' in __import__('os').environ


def test_vehicle_launch_remaps_to_given_topics(stubs):
    plan = _plan('blendclip.launch.py', cloud_topic='/sensing/lidar/top/points', device='cpu',
                 autostart='false')
    node = plan.nodes[0]
    remaps = dict(node.remappings)
    assert remaps['lidar/points'] == '/sensing/lidar/top/points' and remaps['detections'] == '/detections'
    assert dict(node.param_overrides) == {'autostart': 'false', 'device': 'cpu'}
    cmd = node.command('/x/blendclip_node')
    assert cmd[:4] == ['/x/blendclip_node', '--ros-args', '-r', '__node:=blendclip']
    assert cmd[cmd.index('--params-file') + 1] == str(REPO / 'config' / 'blendclip.params.yaml')
    assert '-r' in cmd and 'lidar/points:=/sensing/lidar/top/points' in cmd


def test_replay_launch_matches_bag_topics(stubs):
    from blendclip_ros.bag.writer import Topics

    plan = _plan('replay_nuscenes.launch.py', bag='/data/scene-0061')
    by_exe = {n.executable: n for n in plan.nodes}
    assert set(by_exe) == {'blendclip_node', 'blendclip-replay'}
    assert '/data/scene-0061' in by_exe['blendclip-replay'].arguments
    remaps = dict(by_exe['blendclip_node'].remappings)
    assert remaps['lidar/points'] == Topics().cloud and remaps['detections'] == Topics().detections


def test_runner_rejects_unknown_and_missing_arguments(stubs):
    from blendclip_ros import launch_runner

    with pytest.raises(launch_runner.LaunchArgumentError, match='unknown'):
        _plan('blendclip.launch.py', no_such_argument='1')
    with pytest.raises(launch_runner.LaunchArgumentError, match='required'):
        _plan('replay_nuscenes.launch.py')
    with pytest.raises(launch_runner.LaunchArgumentError, match='not in'):
        _plan('blendclip.launch.py', autostart='maybe')


def test_stubs_are_not_importable_outside_tests():
    for name in ('launch', 'launch_ros'):
        assert name not in sys.modules


def test_runner_cli_dry_run_prints_the_commands(stubs, capsys):
    from blendclip_ros import launch_runner

    assert launch_runner.main([str(REPO / 'launch' / 'blendclip.launch.py'), 'device:=cpu', '--dry-run',
                               '--share', f'blendclip={REPO}']) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith('FASTDDS_DEFAULT_PROFILES_FILE=') for line in out)
    cmd = out[-1].split()
    assert cmd[:2] == ['blendclip_node', '--ros-args'] and 'device:=cpu' in cmd and 'autostart:=true' in cmd
