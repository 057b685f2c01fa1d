"""
Packaging tests: package.xml, setup.py metadata, real colcon builds (copy and symlink install).

The colcon builds use the colcon from the running venv (the one that also holds rclpy), build the
repo into a temporary build/install/log base, then source the generated `setup.bash` exactly as a
user would and inspect the result through ament_index_python and importlib.
"""

import ast
import json
import os
from pathlib import Path
import shlex
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = 'cliprt_ros'
COLCON = Path(sys.executable).parent / 'colcon'
NODES = {'policy_node', 'libero_bridge_node'}
EXEC_DEPENDS = {
    'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'trajectory_msgs', 'std_srvs',
    'launch', 'launch_ros', 'python3-numpy', 'python3-yaml', 'python3-h5py', 'python3-tqdm',
    'python3-matplotlib', 'python3-imageio',
}
TEST_DEPENDS = {'ament_flake8', 'ament_pep257', 'python3-pytest'}
BUILD_TIMEOUT_S = 180


# --------------------------------------------------------------------------- package metadata

def test_package_xml_is_valid_format3_ament_python():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO / 'package.xml'))
    pkg.validate()  # raises InvalidPackage on schema/content errors
    assert pkg.name == PKG
    assert pkg.package_format == 3
    assert pkg.get_build_type() == 'ament_python'
    assert pkg.version == '0.1.0'
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


def _colcon_build(base, *extra_args):
    """Build the repo with colcon into ``base``; source the result; return probe info."""
    if not COLCON.exists():
        pytest.skip(f'colcon is not installed next to {sys.executable}')
    env = dict(os.environ)
    env['PATH'] = f'{COLCON.parent}{os.pathsep}{env.get("PATH", "")}'
    env['COLCON_HOME'] = str(base / 'colcon_home')  # ignore any user defaults.yaml
    for var in ('AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH', 'PYTHONPATH'):
        env.pop(var, None)
    cmd = [str(COLCON), '--log-base', str(base / 'log'), 'build',
           '--base-paths', str(REPO),
           '--build-base', str(base / 'build'), '--install-base', str(base / 'install'),
           '--event-handlers', 'console_direct-', *extra_args]
    proc = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, f'colcon build failed:\n{proc.stdout}\n{proc.stderr}'
    assert f'Finished <<< {PKG}' in proc.stdout, proc.stdout

    # Use the workspace the way a user does: source setup.bash, then ask ament_index.
    setup_bash = shlex.quote(str(base / 'install' / 'setup.bash'))
    script = f'source {setup_bash} && exec {shlex.quote(sys.executable)} -c "$CLIPRT_PROBE"'
    probe = subprocess.run(['bash', '-c', script], cwd=base, env=dict(env, CLIPRT_PROBE=_PROBE),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.strip().splitlines()
    info = {**json.loads(lines[-2]), **json.loads(lines[-1])}
    info['install'] = base / 'install'
    return info


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory):
    return _colcon_build(tmp_path_factory.mktemp('colcon'))


@pytest.fixture(scope='module')
def colcon_symlink_install(tmp_path_factory):
    return _colcon_build(tmp_path_factory.mktemp('colcon_symlink'), '--symlink-install')


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


def test_colcon_build_installs_package(colcon_install):
    prefix = _check_layout(colcon_install)
    site = prefix / 'lib' / f'python{sys.version_info[0]}.{sys.version_info[1]}' / 'site-packages'
    # The sourced workspace imports the installed copy, not the source tree or an editable install.
    assert Path(colcon_install['core']).is_relative_to(site)
    assert Path(colcon_install['ros']).is_relative_to(site)
    vocab = sorted(p.name for p in (REPO / 'cliprt_core/actions/vocabularies').glob('*.json'))
    installed = sorted(p.name for p in (site / 'cliprt_core/actions/vocabularies').glob('*.json'))
    assert installed == vocab
    # Model configs are package data: resolved by name from the installed cliprt_core.
    models = sorted(p.stem for p in (REPO / 'cliprt_core/model/configs').glob('*.yaml'))
    assert 'cliprt-tiny' in models and colcon_install['model_configs'] == models
    tiny = site / 'cliprt_core/model/configs/cliprt-tiny.yaml'
    assert Path(colcon_install['tiny_config']) == tiny
    assert colcon_install['tiny_name'] == 'cliprt-tiny'
    for node_module in (REPO / PKG).glob('*.py'):
        assert (site / PKG / node_module.name).is_file()


def test_colcon_symlink_install_links_back_to_sources(colcon_symlink_install):
    prefix = _check_layout(colcon_symlink_install)
    # Editing a source file must be visible without rebuilding: code and data resolve to the repo.
    assert Path(colcon_symlink_install['core']).resolve() == REPO / 'cliprt_core' / '__init__.py'
    assert Path(colcon_symlink_install['ros']).resolve() == REPO / PKG / '__init__.py'
    tiny = REPO / 'cliprt_core/model/configs/cliprt-tiny.yaml'
    assert Path(colcon_symlink_install['tiny_config']).resolve() == tiny
    share = prefix / 'share' / PKG
    assert (share / 'package.xml').resolve() == REPO / 'package.xml'
    for rel in _repo_data_files():
        assert (share / rel).is_symlink(), f'{rel} was copied, not symlinked'
        assert (share / rel).resolve() == REPO / rel
