"""
Packaging tests: package.xml, setup.py metadata, real colcon builds (copy and symlink install).

The colcon builds use the colcon from the running venv (the one that also holds rclpy), build the
repo into a temporary build/install/log base, then source the generated `setup.bash` exactly as a
user would and inspect the result through ament_index_python and importlib. The copy install is
the session's shared one (conftest's `colcon_install`, which the node tests run); the symlink
install is built here.
"""

import ast
import json
import os
from pathlib import Path
import shlex
import subprocess
import sys

import pytest
from ros_utils import colcon_build, colcon_env, installed_env, PKG, REPO

NODES = {'policy_node', 'libero_bridge_node', 'action_executor'}
EXEC_DEPENDS = {
    'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'trajectory_msgs', 'std_srvs',
    'diagnostic_msgs', 'lifecycle_msgs',
    'launch', 'launch_ros', 'python3-numpy', 'python3-yaml', 'python3-h5py', 'python3-tqdm',
    'python3-matplotlib', 'python3-imageio',
}
TEST_DEPENDS = {'ament_flake8', 'ament_pep257', 'python3-pytest'}


# --------------------------------------------------------------------------- package metadata

def test_package_xml_is_valid_format3_ament_python():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO / 'package.xml'))
    pkg.validate()  # raises InvalidPackage on schema/content errors
    assert pkg.name == PKG
    assert pkg.package_format == 3
    assert pkg.get_build_type() == 'ament_python'
    assert [str(lic) for lic in pkg.licenses] == ['Apache-2.0']
    assert pkg.maintainers
    exec_deps = {dep.name for dep in pkg.exec_depends}
    assert EXEC_DEPENDS <= exec_deps, EXEC_DEPENDS - exec_deps
    test_deps = {dep.name for dep in pkg.test_depends}
    assert TEST_DEPENDS <= test_deps, TEST_DEPENDS - test_deps


@pytest.fixture(scope='module')
def setup_dist():
    """Return the setuptools Distribution that setup.py defines (run up to argument parsing)."""
    import setuptools  # noqa: F401  (routes `distutils` to setuptools' copy)
    import distutils.core

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return distutils.core.run_setup(str(REPO / 'setup.py'), stop_after='init')
    finally:
        os.chdir(cwd)


def _console_scripts(dist):
    scripts = {}
    for spec in dist.entry_points['console_scripts']:
        name, target = (part.strip() for part in spec.split('='))
        scripts[name] = target
    return scripts


def test_setup_metadata_matches_package_xml(setup_dist):
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO / 'package.xml'))
    assert setup_dist.get_name() == pkg.name
    assert setup_dist.get_version() == pkg.version
    assert set(setup_dist.packages) >= {'cliprt_core', 'cliprt_ros'}
    assert all(p.split('.')[0] in ('cliprt_core', 'cliprt_ros') for p in setup_dist.packages)


def test_every_ros_node_has_a_console_script(setup_dist):
    scripts = _console_scripts(setup_dist)
    node_scripts = {name for name, target in scripts.items() if target.startswith('cliprt_ros.')}
    assert NODES <= node_scripts
    # Every node module in the source tree is installed as an executable ...
    node_modules = {p.stem for p in (REPO / PKG).glob('*_node.py')}
    targets = {target.split(':')[0].split('.')[-1] for target in scripts.values()}
    assert node_modules <= targets, node_modules - targets
    # ... and every entry point whose module exists already defines its target function.
    for name, target in scripts.items():
        module, func = target.split(':')
        path = REPO.joinpath(*module.split('.')).with_suffix('.py')
        if path.exists():
            tree = ast.parse(path.read_text())
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert func in defined, f'{name}: {path} has no top-level {func}()'


def _repo_data_files():
    """Repo-relative paths that must end up under share/cliprt_ros."""
    files = {p.relative_to(REPO).as_posix() for p in (REPO / 'launch').glob('*.launch.py')}
    for p in (REPO / 'config').rglob('*'):
        if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc':
            files.add(p.relative_to(REPO).as_posix())
    return files


def test_data_files_cover_config_and_launch(setup_dist):
    listed = {}
    for dest, sources in setup_dist.data_files:
        for src in sources:
            listed[src] = dest
    assert listed['resource/cliprt_ros'] == 'share/ament_index/resource_index/packages'
    assert listed['package.xml'] == 'share/cliprt_ros'
    for rel in _repo_data_files():
        assert rel in listed, f'{rel} is not installed'
        assert listed[rel] == f'share/cliprt_ros/{Path(rel).parent.as_posix()}'


def test_model_configs_are_package_data(setup_dist, tmp_path, monkeypatch):
    from cliprt_core.model import list_model_configs, load_model_config
    from cliprt_core.model.configuration import MODEL_CONFIG_DIR

    assert MODEL_CONFIG_DIR == REPO / 'cliprt_core' / 'model' / 'configs'
    assert 'model/configs/*.yaml' in setup_dist.package_data['cliprt_core']
    assert not (REPO / 'config' / 'models').exists()  # config/ holds only user-facing YAML
    names = list_model_configs()
    assert names == sorted(p.stem for p in MODEL_CONFIG_DIR.glob('*.yaml'))
    assert {'cliprt-tiny', 'cliprt-tiny-discrete', 'cliprt-plus-vit-h-14-378'} <= set(names)
    # Independent of the user's config folder and of the working directory.
    monkeypatch.setenv('CLIPRT_CONFIG_DIR', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert [load_model_config(name).name for name in names] == names
    with pytest.raises(FileNotFoundError, match="no model config 'cliprt-huge'.*cliprt-tiny"):
        load_model_config('cliprt-huge')


# --------------------------------------------------------------------------- colcon builds

_PROBE = """
import importlib.metadata, importlib.util, json
from ament_index_python.packages import get_package_prefix, get_package_share_directory
dist = importlib.metadata.distribution('cliprt_ros')
print(json.dumps({
    'prefix': get_package_prefix('cliprt_ros'),
    'share': get_package_share_directory('cliprt_ros'),
    'core': importlib.util.find_spec('cliprt_core').origin,
    'ros': importlib.util.find_spec('cliprt_ros').origin,
    'scripts': sorted(ep.name for ep in dist.entry_points if ep.group == 'console_scripts'),
}))
from cliprt_core.model import list_model_configs, load_model_config
from cliprt_core.model.configuration import model_config_path
print(json.dumps({
    'model_configs': list_model_configs(),
    'tiny_config': str(model_config_path('cliprt-tiny')),
    'tiny_name': load_model_config('cliprt-tiny').name,
}))
"""


def _probe(prefix):
    """Source the workspace of ``prefix`` the way a user does; return what ament_index sees."""
    base = prefix.parents[1]
    setup_bash = shlex.quote(str(base / 'install' / 'setup.bash'))
    script = f'source {setup_bash} && exec {shlex.quote(sys.executable)} -c "$CLIPRT_PROBE"'
    probe = subprocess.run(['bash', '-c', script], cwd=base,
                           env=dict(colcon_env(base), CLIPRT_PROBE=_PROBE),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.strip().splitlines()
    info = {**json.loads(lines[-2]), **json.loads(lines[-1])}
    info['install'] = base / 'install'
    return info


@pytest.fixture(scope='module')
def installed_info(colcon_install):
    return _probe(colcon_install)


@pytest.fixture(scope='module')
def symlink_installed_info(tmp_path_factory):
    """A build of its own: the session's shared install is a copy install."""
    try:
        prefix = colcon_build(tmp_path_factory.mktemp('colcon_symlink'), '--symlink-install')
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return _probe(prefix)


def _check_layout(info):
    prefix = Path(info['prefix'])
    assert prefix == info['install'] / PKG  # isolated install layout (colcon default)
    assert Path(info['share']) == prefix / 'share' / PKG
    assert (prefix / 'share/ament_index/resource_index/packages' / PKG).is_file()
    assert (prefix / 'share' / PKG / 'package.xml').is_file()
    # `ros2 run cliprt_ros <node>` looks in <prefix>/lib/<pkg>/.
    for node in NODES:
        exe = prefix / 'lib' / PKG / node
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        shebang = exe.read_text().splitlines()[0]
        assert shebang.startswith('#!')
        assert os.path.samefile(shebang[2:].strip(), sys.executable), shebang
    assert NODES <= set(info['scripts'])
    for rel in _repo_data_files():
        installed = prefix / 'share' / PKG / rel
        assert installed.is_file(), f'{rel} not installed'
        assert installed.read_bytes() == (REPO / rel).read_bytes()
    return prefix


@pytest.mark.slow
def test_colcon_build_installs_package(installed_info):
    prefix = _check_layout(installed_info)
    site = prefix / 'lib' / f'python{sys.version_info[0]}.{sys.version_info[1]}' / 'site-packages'
    # The sourced workspace imports the installed copy, not the source tree or an editable install.
    assert Path(installed_info['core']).is_relative_to(site)
    assert Path(installed_info['ros']).is_relative_to(site)
    vocab = sorted(p.name for p in (REPO / 'cliprt_core/actions/vocabularies').glob('*.json'))
    installed = sorted(p.name for p in (site / 'cliprt_core/actions/vocabularies').glob('*.json'))
    assert installed == vocab
    # Model configs are package data: resolved by name from the installed cliprt_core.
    models = sorted(p.stem for p in (REPO / 'cliprt_core/model/configs').glob('*.yaml'))
    assert 'cliprt-tiny' in models and installed_info['model_configs'] == models
    tiny = site / 'cliprt_core/model/configs/cliprt-tiny.yaml'
    assert Path(installed_info['tiny_config']) == tiny
    assert installed_info['tiny_name'] == 'cliprt-tiny'
    for node_module in (REPO / PKG).glob('*.py'):
        assert (site / PKG / node_module.name).is_file()
    # Every command-line tool is where `ros2 run cliprt_ros <tool>` finds it, and runs from there.
    tools = [name for name in installed_info['scripts'] if name.startswith('cliprt-')]
    assert {'cliprt-eval', 'cliprt-train', 'cliprt-data', 'cliprt-bench', 'cliprt-export',
            'cliprt-demo'} <= set(tools)
    for tool in tools:
        assert os.access(prefix / 'lib' / PKG / tool, os.X_OK), tool
    done = subprocess.run([str(prefix / 'lib' / PKG / 'cliprt-eval'), '--help'],
                          env=installed_env(prefix), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and '--checkpoint' in done.stdout, done.stderr


@pytest.mark.slow
def test_colcon_symlink_install_links_back_to_sources(symlink_installed_info):
    prefix = _check_layout(symlink_installed_info)
    # Editing a source file must be visible without rebuilding: code and data resolve to the repo.
    assert Path(symlink_installed_info['core']).resolve() == REPO / 'cliprt_core' / '__init__.py'
    assert Path(symlink_installed_info['ros']).resolve() == REPO / PKG / '__init__.py'
    tiny = REPO / 'cliprt_core/model/configs/cliprt-tiny.yaml'
    assert Path(symlink_installed_info['tiny_config']).resolve() == tiny
    share = prefix / 'share' / PKG
    assert (share / 'package.xml').resolve() == REPO / 'package.xml'
    for rel in _repo_data_files():
        assert (share / rel).is_symlink(), f'{rel} was copied, not symlinked'
        assert (share / rel).resolve() == REPO / rel
