"""The ROS package and the pip package describe the same thing: executables, messages, dependencies."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[1]
ROS_PACKAGE_DIRS = ('blendclip_ros', 'training')  # Python code that runs on the vehicle
BUILTIN_MSG_TYPES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
                     'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring', 'time', 'duration'}


def console_scripts() -> dict[str, str]:
    """CONSOLE_SCRIPTS from setup.py, read without running setup()."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in tree.body:
        targets = [getattr(t, 'id', '') for t in getattr(node, 'targets', [])]
        if isinstance(node, ast.Assign) and 'CONSOLE_SCRIPTS' in targets:
            return ast.literal_eval(node.value)
    raise AssertionError('setup.py defines no CONSOLE_SCRIPTS')


def cmake_text() -> str:
    return re.sub(r'#.*', '', (REPO / 'CMakeLists.txt').read_text())


def cmake_call_args(name: str) -> list[list[str]]:
    return [m.split() for m in re.findall(rf'\b{name}\s*\(([^)]*)\)', cmake_text())]


def msg_dependencies() -> set[str]:
    """Packages whose types our .msg files use (`pkg/Type` fields)."""
    deps = set()
    for path in (REPO / 'msg').glob('*.msg'):
        for line in path.read_text().splitlines():
            line = line.split('#')[0].strip()
            if line and '=' not in line.split()[0]:
                field_type = re.sub(r'\[.*\]$', '', line.split()[0])
                if '/' in field_type:
                    deps.add(field_type.split('/')[0])
    return deps


@pytest.fixture(scope='module')
def package():
    return parse_package(str(REPO))


def test_scripts_match_console_scripts():
    scripts = console_scripts()
    assert sorted(p.name for p in (REPO / 'scripts').iterdir() if p.is_file()) == sorted(scripts)
    for name, target in scripts.items():
        path = REPO / 'scripts' / name
        assert path.stat().st_mode & 0o111, f'{name} is not executable'
        module, func = target.split(':')
        imports = [(n.module, a.name) for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.ImportFrom) for a in n.names]
        assert (module, func) in imports, f'scripts/{name} does not call {target}'


def test_console_script_targets_exist():
    missing = []
    for name, target in console_scripts().items():
        module, func = target.split(':')
        try:
            if not callable(getattr(importlib.import_module(module), func)):
                missing.append(f'{name}: {target} is not callable')
        except (ImportError, AttributeError) as err:
            missing.append(f'{name}: {target} ({type(err).__name__}: {err})')
    assert not missing, '\n'.join(missing)


def test_package_xml_is_format_3_ament_cmake_interface_package(package):
    assert package.package_format == 3
    assert package.name == 'blendclip'
    assert package.get_build_type() == 'ament_cmake'
    assert 'rosidl_interface_packages' in [g.name for g in package.member_of_groups]
    buildtool = {d.name for d in package.buildtool_depends}
    assert {'ament_cmake', 'rosidl_default_generators'} <= buildtool
    assert 'rosidl_default_runtime' in {d.name for d in package.exec_depends}
    setup_version = re.search(r"version='([^']+)'", (REPO / 'setup.py').read_text()).group(1)
    assert package.version == setup_version


def test_cmake_builds_every_message_with_its_dependencies(package):
    (project,) = cmake_call_args('project')
    assert project[0] == package.name
    (generate,) = cmake_call_args('rosidl_generate_interfaces')
    listed = {a.strip('"') for a in generate if a.strip('"').startswith('msg/')}
    assert listed == {f'msg/{p.name}' for p in (REPO / 'msg').glob('*.msg')}
    cmake_deps = set(generate[generate.index('DEPENDENCIES') + 1:])
    found = {args[0] for args in cmake_call_args('find_package')}
    declared = {d.name for d in package.build_depends} & {d.name for d in package.exec_depends}
    for dep in msg_dependencies():
        assert dep in cmake_deps and dep in found, f'{dep} missing from CMakeLists.txt'
        assert dep in declared, f'{dep} missing from package.xml <depend>'


def test_message_field_types_resolve():
    ours = {p.stem for p in (REPO / 'msg').glob('*.msg')}
    for path in (REPO / 'msg').glob('*.msg'):
        for line in path.read_text().splitlines():
            line = line.split('#')[0].strip()
            if not line:
                continue
            field_type = re.sub(r'(<=\d+)?\[.*\]$', '', line.split()[0])
            field_type = re.sub(r'<=\d+$', '', field_type)
            assert field_type in BUILTIN_MSG_TYPES or '/' in field_type or field_type in ours, (
                f'{path.name}: unknown type {field_type}')


def test_cmake_installs_what_exists():
    for args in cmake_call_args('ament_python_install_package'):
        assert (REPO / args[0] / '__init__.py').is_file(), f'{args[0]} is not a package'
    optional = set(re.findall(r'if\(EXISTS\s+"\$\{CMAKE_CURRENT_SOURCE_DIR\}/(\w+)"\)', cmake_text()))
    for args in cmake_call_args('install'):
        if args[0] == 'DIRECTORY':
            for name in set(args[1:args.index('DESTINATION')]) - optional:
                assert (REPO / name).is_dir(), f'install(DIRECTORY {name}) but {name}/ is missing'


def test_ros_imports_are_declared_in_package_xml(package):
    """Every ROS package the vehicle code imports must be a run dependency, or rosdep will not install it."""
    declared = {d.name for d in package.exec_depends} | {package.name}
    used = set()
    for top in ROS_PACKAGE_DIRS:
        for path in (REPO / top).rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                         and not node.level else [])
                for name in names:
                    root = name.split('.')[0]
                    if root == 'rclpy' or root.endswith(('_msgs', '_interfaces', '_srvs')):
                        used.add((root, str(path.relative_to(REPO))))
    undeclared = {root: where for root, where in sorted(used) if root not in declared}
    assert not undeclared, f'add <exec_depend> for: {undeclared}'


@pytest.mark.parametrize('distro', ['jazzy', 'kilted'])
def test_lock_pins_every_base_requirement(distro):
    """make env installs lock-<distro>.txt only: a pin added to base.txt or ros-<distro>.txt without
    `make lock ROS_DISTRO=<distro>` would be ignored."""
    def pins(name: str) -> dict[str, str]:
        out = {}
        for line in (REPO / 'requirements' / name).read_text().splitlines():
            line = line.split('#')[0].strip()
            if line:
                package, _, version = line.partition('==')
                assert version, f'{name}: {line!r} is not pinned with =='
                out[re.sub(r'[-_.]+', '-', package).lower()] = version
        return out
    lock = pins(f'lock-{distro}.txt')
    wanted = {**pins('base.txt'), **pins(f'ros-{distro}.txt')}
    stale = {k: (v, lock.get(k)) for k, v in wanted.items() if lock.get(k) != v}
    assert not stale, f'run `make lock ROS_DISTRO={distro}`: requirements vs lock-{distro}.txt {stale}'
    other = 'kilted' if distro == 'jazzy' else 'jazzy'
    assert not any(k.startswith(f'ros-{other}-') for k in lock), f'lock-{distro}.txt holds {other} wheels'
