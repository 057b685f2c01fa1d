"""Launch files and node parameter files, checked without `launch` (not installable here).

The launch files are parsed with `ast`: they must name only executables that setup.py installs,
pass only parameters the nodes declare (with the declared types), use only declared launch
arguments, and point at parameter files that exist and match the nodes. Then they are executed
against a recording stand-in of the `launch` API (or the real one when installed) to prove they
run.
"""

import ast
import importlib
from pathlib import Path
import sys
import types

import pytest
from ros_utils import rclpy_available, REPO
import yaml

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

LAUNCH_FILES = {
    'libero_eval.launch.py': {'policy_node', 'libero_bridge_node'},
    'policy.launch.py': {'policy_node'},
}
REQUIRED_ARGUMENTS = {
    'libero_eval.launch.py': {'suite', 'tasks', 'episodes', 'checkpoint', 'backend',
                              'results_dir', 'params_file'},
    'policy.launch.py': {'checkpoint', 'backend', 'image_topic', 'params_file'},
}
VALUE_TYPES = {'str': str, 'int': int, 'bool': bool, 'float': float}


def _declared_parameters(executable):
    module = importlib.import_module(f'cliprt_ros.{executable}')
    return {name: default for name, (default, _) in module.PARAMETERS.items()}


def _console_scripts():
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    specs = ast.literal_eval(value)
                    return dict((part.strip() for part in s.split('=')) for s in specs)
    raise AssertionError('no console_scripts in setup.py')


def _call_name(call):
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, 'attr', None)


class LaunchFile:
    """What a launch file declares and starts, read from its syntax tree."""

    def __init__(self, path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.constants = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                try:
                    self.constants[node.targets[0].id] = ast.literal_eval(node.value)
                except (ValueError, AttributeError):
                    pass
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]

    def value(self, node):
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        return ast.literal_eval(node)

    def launch_configurations(self):
        """Names used as LaunchConfiguration('x') or through the alias ``arg('x')``."""
        return {self.value(c.args[0]) for c in self.calls
                if _call_name(c) in ('LaunchConfiguration', 'arg') and c.args}

    def declared_arguments(self):
        names = set(self.constants.get('ARGUMENTS', {}))
        for call in self.calls:
            if _call_name(call) == 'DeclareLaunchArgument' and \
                    isinstance(call.args[0], ast.Constant):
                names.add(call.args[0].value)
        return names

    def params_file_default(self):
        """Return the default ``params_file`` (a PathJoinSubstitution under the share)."""
        for call in self.calls:
            if _call_name(call) == 'DeclareLaunchArgument' and \
                    isinstance(call.args[0], ast.Constant) and call.args[0].value == 'params_file':
                default = {k.arg: k.value for k in call.keywords}['default_value']
                assert _call_name(default) == 'PathJoinSubstitution'
                parts = default.args[0].elts
                assert _call_name(parts[0]) == 'FindPackageShare'
                assert self.value(parts[0].args[0]) == 'cliprt_ros'
                return Path(*(self.value(p) for p in parts[1:]))
        raise AssertionError(f'{self.path.name}: no params_file argument')

    def nodes(self):
        """
        Describe each ``Node(...)``.

        Keyword literals, the parameter dict {name: value_type or None}, and whether the params
        file argument is passed.
        """
        found = []
        for call in self.calls:
            if _call_name(call) != 'Node':
                continue
            kwargs = {k.arg: k.value for k in call.keywords}
            info = {key: self.value(kwargs[key]) for key in ('package', 'executable', 'name')}
            info['parameters'] = {}
            info['uses_params_file'] = False
            for item in kwargs.get('parameters', ast.List(elts=[])).elts:
                if isinstance(item, ast.Dict):
                    for key, value in zip(item.keys, item.values):
                        vtype = None
                        if isinstance(value, ast.Call) and _call_name(value) == 'ParameterValue':
                            vtype = {k.arg: k.value for k in value.keywords}['value_type'].id
                        info['parameters'][self.value(key)] = vtype
                elif isinstance(item, ast.Call):  # LaunchConfiguration('params_file')
                    assert _call_name(item) in ('LaunchConfiguration', 'arg')
                    assert self.value(item.args[0]) == 'params_file'
                    info['uses_params_file'] = True
                else:  # the variable params_file = LaunchConfiguration('params_file')
                    assert isinstance(item, ast.Name) and item.id == 'params_file'
                    info['uses_params_file'] = True
            info['remappings'] = [tuple(self.value(e) if i == 0 else None
                                        for i, e in enumerate(pair.elts))
                                  for pair in kwargs.get('remappings', ast.List(elts=[])).elts]
            found.append(info)
        return found


def _params_section(path, node_name):
    data = yaml.safe_load(path.read_text())
    sections = [v['ros__parameters'] for k, v in data.items()
                if k.split('/')[-1] == node_name and 'ros__parameters' in v]
    assert len(sections) == 1, f'{path}: expected one section for {node_name}, keys {list(data)}'
    return sections[0]


@pytest.mark.parametrize('filename', sorted(LAUNCH_FILES))
def test_launch_file_names_installed_executables_and_declared_parameters(filename):
    launch = LaunchFile(REPO / 'launch' / filename)
    compile(launch.path.read_text(), str(launch.path), 'exec')
    scripts = _console_scripts()
    nodes = launch.nodes()
    assert {n['executable'] for n in nodes} == LAUNCH_FILES[filename]
    params_file = REPO / launch.params_file_default()
    assert params_file.is_file(), params_file
    for node in nodes:
        assert node['package'] == 'cliprt_ros'
        assert node['name'] == node['executable']
        assert scripts[node['executable']] == f'cliprt_ros.{node["executable"]}:main'
        declared = _declared_parameters(node['executable'])
        unknown = set(node['parameters']) - set(declared)
        assert not unknown, f'{filename}: {node["executable"]} does not declare {unknown}'
        for name, vtype in node['parameters'].items():
            assert vtype is not None, f'{name}: wrap launch arguments in ParameterValue'
            assert VALUE_TYPES[vtype] is type(declared[name]), (name, vtype, declared[name])
        assert node['uses_params_file']
        section = _params_section(params_file, node['executable'])
        assert set(section) <= set(declared), set(section) - set(declared)
    arguments = launch.declared_arguments()
    assert REQUIRED_ARGUMENTS[filename] <= arguments
    assert launch.launch_configurations() == arguments  # all declared arguments used, no others


def test_policy_launch_remaps_only_topics_the_node_uses():
    source = (REPO / 'cliprt_ros' / 'policy_node.py').read_text()
    tree = ast.parse(source)
    topics = {call.args[1].value for call in ast.walk(tree) if isinstance(call, ast.Call)
              and _call_name(call) in ('create_subscription', 'create_publisher')}
    assert {'instruction', 'camera/image_raw', 'action_chunk'} <= topics
    (node,) = LaunchFile(REPO / 'launch' / 'policy.launch.py').nodes()
    remapped = {pair[0] for pair in node['remappings']}
    assert 'camera/image_raw' in remapped and remapped <= topics


@pytest.mark.parametrize('filename, nodes', [
    ('policy_node.yaml', ['policy_node']),
    ('libero_eval.yaml', ['policy_node', 'libero_bridge_node']),
])
def test_parameter_files_match_declared_names_and_types(filename, nodes):
    path = REPO / 'config' / 'nodes' / filename
    for executable in nodes:
        declared = _declared_parameters(executable)
        section = _params_section(path, executable)
        for name, value in section.items():
            assert name in declared, f'{filename}: {executable} does not declare {name!r}'
            expected = type(declared[name])
            assert type(value) is expected, f'{filename}: {name}={value!r} must be {expected}'
            if expected is list:
                assert all(type(v) is type(declared[name][0]) for v in value), name


def test_bridge_parameters_map_onto_eval_config():
    from cliprt_core.config import ConfigError
    from cliprt_core.eval import EvalConfig
    from cliprt_ros.libero_bridge_node import (eval_config_from_parameters,
                                               eval_config_to_parameters, PARAMETERS)

    defaults = {name: default for name, (default, _) in PARAMETERS.items()}
    config = eval_config_from_parameters(defaults)
    assert config.max_steps is None and config.results_dir is None and config.checkpoint is None
    assert (config.suite, config.tasks, config.episodes, config.seed) == (
        EvalConfig.suite, 'all', 50, 7)
    demo = EvalConfig(tasks='0', episodes=1, max_steps=48, checkpoint='ckpt.pt', video=True)
    assert eval_config_from_parameters({**defaults, **eval_config_to_parameters(demo)}) == \
        EvalConfig(**{**demo.__dict__, 'workers': 1, 'progress': False})
    with pytest.raises(ConfigError, match='suite'):
        eval_config_from_parameters({**defaults, 'suite': 'libero_100'})


# --------------------------------------------------------------------------- execution

class _Recorded:
    """Stand-in for any `launch` class: records its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_launch_modules():
    names = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'EmitEvent', 'RegisterEventHandler'],
        'launch.event_handlers': ['OnProcessExit'],
        'launch.events': ['Shutdown'],
        'launch.substitutions': ['LaunchConfiguration', 'PathJoinSubstitution'],
        'launch_ros': [],
        'launch_ros.actions': ['Node'],
        'launch_ros.parameter_descriptions': ['ParameterValue'],
        'launch_ros.substitutions': ['FindPackageShare'],
    }
    modules = {}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for cls in classes:
            setattr(module, cls, type(cls, (_Recorded,), {}))
        modules[module_name] = module
    return modules


@pytest.mark.parametrize('filename', sorted(LAUNCH_FILES))
def test_launch_file_generates_a_description(filename, monkeypatch):
    try:
        importlib.import_module('launch_ros.actions')
        real = True
    except ImportError:
        real = False
        for name, module in _stub_launch_modules().items():
            monkeypatch.setitem(sys.modules, name, module)
    path = REPO / 'launch' / filename
    namespace = {'__name__': 'launch_file', '__file__': str(path)}
    exec(compile(path.read_text(), str(path), 'exec'), namespace)
    description = namespace['generate_launch_description']()
    if real:
        return  # the real launch API built it: nothing more to check here
    entities = description.args[0]
    nodes = [e for e in entities if type(e).__name__ == 'Node']
    assert {n.kwargs['executable'] for n in nodes} == LAUNCH_FILES[filename]
    declared = [e.args[0] for e in entities if type(e).__name__ == 'DeclareLaunchArgument']
    assert len(declared) == len(set(declared)) and REQUIRED_ARGUMENTS[filename] <= set(declared)
    if filename == 'libero_eval.launch.py':
        (handler,) = [e for e in entities if type(e).__name__ == 'RegisterEventHandler']
        bridge = [n for n in nodes if n.kwargs['executable'] == 'libero_bridge_node'][0]
        assert handler.args[0].kwargs['target_action'] is bridge
