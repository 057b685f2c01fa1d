"""Launch files and node parameter files, checked without `launch` (not installable here).

The launch arguments, the parameter overrides they produce and the node parameters all derive
from the node settings (cliprt_ros/settings.py): these tests check that derivation, that the
shipped params files build valid node configs, and run each launch file against a recording
stand-in of the `launch` API (or the real one when installed) with the launch arguments a user
would type.
"""

import ast
import importlib
import sys
import types

import pytest
from ros_utils import rclpy_available, REPO
import yaml

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

LAUNCH_FILES = {
    'libero_eval.launch.py': {'policy_node', 'libero_bridge_node'},
    'policy.launch.py': {'policy_node'},
    'robot.launch.py': {'policy_node', 'action_executor'},
}
PARAMS_FILES = {'libero_eval.launch.py': 'libero_eval.yaml', 'policy.launch.py': 'policy_node.yaml',
                'robot.launch.py': 'robot.yaml'}
#: The module of each node executable (setup.py console_scripts).
NODE_MODULES = {'policy_node': 'policy_node', 'libero_bridge_node': 'libero_bridge_node',
                'action_executor': 'executor_node', 'teleop_node': 'teleop_node',
                'recorder_node': 'recorder_node'}


def _node_config(executable):
    from cliprt_core.executor import ExecutorConfig
    from cliprt_ros.settings import BRIDGE_EXCLUDED, BridgeConfig, PolicyNodeConfig

    from cliprt_ros.settings import RecorderNodeConfig, TELEOP_EXCLUDED, TeleopNodeConfig

    return {'policy_node': (PolicyNodeConfig, ()),
            'libero_bridge_node': (BridgeConfig, BRIDGE_EXCLUDED),
            'action_executor': (ExecutorConfig, ()),
            'teleop_node': (TeleopNodeConfig, TELEOP_EXCLUDED),
            'recorder_node': (RecorderNodeConfig, ())}[executable]


def _console_scripts():
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    specs = ast.literal_eval(value)
                    return dict((part.strip() for part in s.split('=')) for s in specs)
    raise AssertionError('no console_scripts in setup.py')


def _params_section(path, node_name):
    data = yaml.safe_load(path.read_text())
    sections = [v['ros__parameters'] for k, v in data.items()
                if k.split('/')[-1] == node_name and 'ros__parameters' in v]
    assert len(sections) == 1, f'{path}: expected one section for {node_name}, keys {list(data)}'
    return sections[0]


def _config_from_section(executable, section):
    """Build the node's config from a params-file section the way the node reads parameters."""
    from cliprt_core.config import from_dict, leaves, nest
    from cliprt_ros.parameters import from_parameter

    cls, exclude = _node_config(executable)
    found = leaves(cls, exclude)
    unknown = set(section) - set(found)
    assert not unknown, f'{executable} has no parameter(s) {unknown}'
    return from_dict(cls, nest({k: from_parameter(found[k], v) for k, v in section.items()}, cls))


@pytest.mark.parametrize('filename, nodes', [
    ('policy_node.yaml', ['policy_node']),
    ('libero_eval.yaml', ['policy_node', 'libero_bridge_node', 'action_executor']),
    ('robot.yaml', ['policy_node', 'action_executor']),
    ('teleop.yaml', ['libero_bridge_node', 'action_executor', 'teleop_node', 'recorder_node']),
])
def test_parameter_files_build_valid_node_configs(filename, nodes):
    from cliprt_core.config import ConfigError

    path = REPO / 'config' / 'nodes' / filename
    for executable in nodes:
        section = _params_section(path, executable)
        config = _config_from_section(executable, section)
        assert config is not None
        with pytest.raises(AssertionError, match='no parameter'):  # a typo is caught
            _config_from_section(executable, {**section, 'chekpoint': 'x.pt'})
        if executable == 'policy_node':
            with pytest.raises(ConfigError, match='dtype'):
                _config_from_section(executable, {**section, 'dtype': 'int8'})


def test_ros_and_cli_agree_on_the_defaults_they_share():
    """One definition: the bridge's eval defaults are cliprt-eval's (wrist_camera included)."""
    from cliprt_core.config import leaves
    from cliprt_core.eval import EvalConfig
    from cliprt_ros.settings import BRIDGE_EXCLUDED, BridgeConfig, PolicyNodeConfig

    bridge = leaves(BridgeConfig, BRIDGE_EXCLUDED)
    for name, leaf in leaves(EvalConfig, BRIDGE_EXCLUDED).items():
        assert bridge[name].default == leaf.default and bridge[name].description == leaf.description
    assert bridge['wrist_camera'].default is False
    section = _params_section(REPO / 'config' / 'nodes' / 'libero_eval.yaml',
                              'libero_bridge_node')
    assert section['wrist_camera'] is False  # the ROS evaluation renders what cliprt-eval does
    assert 'weights_seed' in leaves(PolicyNodeConfig) and 'seed' in bridge


def test_launch_arguments_are_node_settings_and_only_given_ones_override():
    from cliprt_core.config import ConfigError, leaves
    from cliprt_ros.launch_support import (argument_descriptions, bridge_overrides,
                                           EVAL_ARGUMENTS, exit_failure, POLICY_ARGUMENTS,
                                           policy_overrides)
    from cliprt_ros.settings import BRIDGE_EXCLUDED, BridgeConfig, PolicyNodeConfig

    assert set(POLICY_ARGUMENTS) <= set(leaves(PolicyNodeConfig))
    assert set(EVAL_ARGUMENTS) <= set(leaves(BridgeConfig, BRIDGE_EXCLUDED))
    descriptions = dict(argument_descriptions(POLICY_ARGUMENTS))
    assert 'onnx' in descriptions['backend'] and 'params_file' in descriptions['backend']
    # nothing given: the params file decides everything
    assert policy_overrides({'checkpoint': '', 'backend': ''}) == {}
    assert bridge_overrides({name: '' for name in EVAL_ARGUMENTS}) == {}
    # given arguments are typed like the parameters they set
    assert policy_overrides({'checkpoint': 'ours.pt', 'dtype': 'bf16', 'device': ''}) == {
        'checkpoint': 'ours.pt', 'dtype': 'bf16'}
    assert bridge_overrides({'episodes': '1', 'tasks': '0', 'max_steps': '40', 'video': 'true',
                             'checkpoint': 'ours.pt'}) == {
        'episodes': 1, 'tasks': '0', 'max_steps': 40, 'video': True, 'checkpoint': 'ours.pt'}
    for bad, match in (({'episodes': 'many'}, 'episodes'), ({'video': 'maybe'}, 'video')):
        with pytest.raises(ConfigError, match=match):
            bridge_overrides(bad)
    with pytest.raises(ConfigError, match='backend'):
        policy_overrides({'backend': 'tensorflow'})
    assert exit_failure('policy_node', 0) is None
    assert 'code 2' in exit_failure('policy_node', 2)


# --------------------------------------------------------------------------- execution

class _Recorded:
    """Stand-in for any `launch` class: records its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_launch_modules():
    names = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'EmitEvent', 'OpaqueFunction',
                           'RegisterEventHandler'],
        'launch.event_handlers': ['OnProcessExit'],
        'launch.events': ['Shutdown'],
        'launch.substitutions': ['PathJoinSubstitution'],
        'launch_ros': [],
        'launch_ros.actions': ['Node'],
        'launch_ros.substitutions': ['FindPackageShare'],
    }
    modules = {}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for cls in classes:
            setattr(module, cls, type(cls, (_Recorded,), {}))
        modules[module_name] = module
    return modules


def _run_launch_file(filename, monkeypatch, given, params_file='/tmp/params.yaml'):
    """Generate the description and run its OpaqueFunction with the arguments a user gave."""
    for name, module in _stub_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    path = REPO / 'launch' / filename
    namespace = {'__name__': 'launch_file', '__file__': str(path)}
    exec(compile(path.read_text(), str(path), 'exec'), namespace)
    entities = namespace['generate_launch_description']().args[0]
    declared = {e.args[0]: e.kwargs for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    (setup,) = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
    configurations = {name: kwargs.get('default_value', '') for name, kwargs in declared.items()}
    configurations.update(given, params_file=params_file)
    actions = setup.kwargs['function'](types.SimpleNamespace(launch_configurations=configurations))
    return declared, actions


@pytest.mark.parametrize('filename', sorted(LAUNCH_FILES))
def test_launch_file_runs_with_user_arguments(filename, monkeypatch):
    declared, actions = _run_launch_file(filename, monkeypatch, {'checkpoint': 'ours.pt'})
    params_default = declared['params_file']['default_value']
    assert tuple(params_default.args[0][1:]) == ('config', 'nodes', PARAMS_FILES[filename])
    assert (REPO / 'config' / 'nodes' / PARAMS_FILES[filename]).is_file()
    nodes = [a for a in actions if type(a).__name__ == 'Node']
    scripts = _console_scripts()
    assert {n.kwargs['executable'] for n in nodes} == LAUNCH_FILES[filename]
    for node in nodes:
        executable = node.kwargs['executable']
        assert node.kwargs['package'] == 'cliprt_ros' and node.kwargs['name'] == executable
        assert scripts[executable] == f'cliprt_ros.{NODE_MODULES[executable]}:main'
        params_file, overrides = node.kwargs['parameters']
        assert params_file == '/tmp/params.yaml'
        # given; nothing else overrides the file
        assert overrides == ({} if executable == 'action_executor' else {'checkpoint': 'ours.pt'})
    # every handler stops (or fails) the launch when its node exits
    handlers = [a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler']
    assert {h.kwargs['target_action'].kwargs['executable'] for h in handlers} == \
        LAUNCH_FILES[filename]
    for handler in handlers:
        on_exit = handler.kwargs['on_exit']
        with pytest.raises(RuntimeError, match='exited with code 2'):
            on_exit(types.SimpleNamespace(returncode=2), None)
        on_exit(types.SimpleNamespace(returncode=0), None)


def test_policy_launch_remaps_only_topics_the_node_uses(monkeypatch):
    source = (REPO / 'cliprt_ros' / 'policy_node.py').read_text()
    tree = ast.parse(source)
    # per-robot topics are written topic('name') (cliprt_ros.robot_port.RobotPort.topic)
    topics = {(arg.args[0] if isinstance(arg, ast.Call) else arg).value
              for call in ast.walk(tree) if isinstance(call, ast.Call)
              and getattr(call.func, 'attr', None) in ('create_subscription', 'create_publisher')
              for arg in call.args[1:2]}
    assert {'instruction', 'camera/image_raw', 'action_chunk'} <= topics
    _, actions = _run_launch_file('policy.launch.py', monkeypatch,
                                  {'image_topic': '/cam/color/image_raw'})
    (node,) = [a for a in actions if type(a).__name__ == 'Node']
    remapped = dict(node.kwargs['remappings'])
    assert remapped['camera/image_raw'] == '/cam/color/image_raw' and set(remapped) <= topics


def test_realtime_evaluation_launch_adds_the_executor_on_the_simulated_clock(monkeypatch):
    _, actions = _run_launch_file('libero_eval.launch.py', monkeypatch, {
        'mode': 'realtime', 'publish_clock': 'true', 'real_time_factor': '0.25',
        'aggregation': 'ensemble', 'added_latency': '0.2'})
    nodes = {a.kwargs['executable']: a for a in actions if type(a).__name__ == 'Node'}
    assert set(nodes) == {'policy_node', 'libero_bridge_node', 'action_executor'}
    params = {name: node.kwargs['parameters'][1] for name, node in nodes.items()}
    assert params['libero_bridge_node'] == {'mode': 'realtime', 'publish_clock': True,
                                            'real_time_factor': 0.25}
    assert params['policy_node'] == {'added_latency': 0.2, 'query_mode': 'on_request',
                                     'use_sim_time': True}
    assert params['action_executor'] == {'aggregation': 'ensemble', 'use_sim_time': True}
    handlers = [a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler']
    assert len(handlers) == 3


def test_parallel_evaluation_launch_runs_sharded_bridges_and_one_policy_node(monkeypatch):
    from cliprt_core.config import ConfigError
    from cliprt_ros.launch_support import DDS_PROFILE_VARIABLE

    monkeypatch.delenv(DDS_PROFILE_VARIABLE, raising=False)
    _, actions = _run_launch_file('libero_eval.launch.py', monkeypatch,
                                  {'num_envs': '3', 'namespace': 'eval', 'episodes': '5'})
    nodes = [a for a in actions if type(a).__name__ == 'Node']
    profile = REPO / 'config' / 'dds' / 'fastdds_large_images.xml'
    assert profile.is_file()  # every node of the N-simulator run gets the large-image profile
    assert all(n.kwargs['additional_env'] == {DDS_PROFILE_VARIABLE: str(profile)} for n in nodes)
    monkeypatch.setenv(DDS_PROFILE_VARIABLE, '/etc/my_dds.xml')  # the user's own one is kept
    _, mine = _run_launch_file('libero_eval.launch.py', monkeypatch, {'num_envs': '2'})
    _, single = _run_launch_file('libero_eval.launch.py', monkeypatch, {})
    assert all(a.kwargs['additional_env'] is None for a in (*mine, *single)
               if type(a).__name__ == 'Node')
    (policy,) = [n for n in nodes if n.kwargs['executable'] == 'policy_node']
    bridges = [n for n in nodes if n.kwargs['executable'] == 'libero_bridge_node']
    assert policy.kwargs['namespace'] == 'eval'
    assert policy.kwargs['parameters'][1] == {'robots': 'env0,env1,env2'}
    assert [b.kwargs['namespace'] for b in bridges] == ['eval/env0', 'eval/env1', 'eval/env2']
    assert [b.kwargs['parameters'][1] for b in bridges] == [
        {'episodes': 5, 'shard': f'{i}/3'} for i in range(3)]
    handlers = [a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler']
    assert len(handlers) == 4
    (on_bridge_exit,) = {h.kwargs['on_exit'] for h in handlers
                         if h.kwargs['target_action'] in bridges}
    ok = types.SimpleNamespace(returncode=0)
    assert on_bridge_exit(ok, None) == [] and on_bridge_exit(ok, None) == []
    assert type(on_bridge_exit(ok, None)[0]).__name__ == 'EmitEvent'  # the last one stops
    with pytest.raises(RuntimeError, match='exited with code 1'):
        on_bridge_exit(types.SimpleNamespace(returncode=1), None)
    for given in ({'num_envs': '0'}, {'num_envs': 'x'}, {'num_envs': '2', 'mode': 'realtime'}):
        with pytest.raises(ConfigError, match='num_envs'):
            _run_launch_file('libero_eval.launch.py', monkeypatch, given)


def test_robot_launch_wires_camera_policy_executor_and_servo(monkeypatch):
    _, actions = _run_launch_file('robot.launch.py', monkeypatch, {
        'image_topic': '/camera/color/image_raw', 'twist_topic': '/servo/cmd',
        'aggregation': 'ensemble'})
    nodes = {a.kwargs['executable']: a for a in actions if type(a).__name__ == 'Node'}
    policy, executor = nodes['policy_node'], nodes['action_executor']
    assert dict(policy.kwargs['remappings'])['camera/image_raw'] == '/camera/color/image_raw'
    remapped = dict(executor.kwargs['remappings'])
    assert remapped['servo_node/delta_twist_cmds'] == '/servo/cmd'
    assert remapped['gripper_command'] == 'gripper_command'  # the default: no remapping
    assert executor.kwargs['parameters'][1] == {'aggregation': 'ensemble'}
    section = _params_section(REPO / 'config' / 'nodes' / 'robot.yaml', 'policy_node')
    assert section['query_mode'] == 'on_request' and section['image_qos'] == 'sensor_data'


def test_teleop_launch_runs_robot_executor_teleop_and_recorder_on_one_clock(monkeypatch):
    from cliprt_core.config import ConfigError

    params_file = str(REPO / 'config' / 'nodes' / 'teleop.yaml')
    declared, actions = _run_launch_file('teleop.launch.py', monkeypatch, {
        'suite': 'libero_goal', 'tasks': '3', 'first_episode': '7', 'vocabulary': 'finetune_58',
        'output_dir': '/data/teleop', 'max_episode_steps': '200'}, params_file)
    assert {'robot', 'suite', 'tasks', 'vocabulary', 'checkpoint', 'output_dir',
            'instruction'} <= set(declared)
    nodes = {a.kwargs['executable']: a for a in actions if type(a).__name__ == 'Node'}
    assert set(nodes) == {'libero_bridge_node', 'action_executor', 'teleop_node',
                          'recorder_node'}
    scripts = _console_scripts()
    params = {}
    for name, node in nodes.items():
        assert scripts[name] == f'cliprt_ros.{NODE_MODULES[name]}:main'
        file, params[name] = node.kwargs['parameters']
        assert file == params_file
    # the bridge publishes /clock (teleop.yaml): the other nodes follow it
    assert params['libero_bridge_node'] == {'suite': 'libero_goal', 'tasks': '3',
                                            'first_episode': 7}
    assert params['action_executor'] == {'use_sim_time': True}
    assert params['teleop_node'] == {'vocabulary': 'finetune_58', 'use_sim_time': True}
    assert params['recorder_node'] == {'output_dir': '/data/teleop', 'max_episode_steps': 200,
                                       'suite': 'libero_goal', 'task_id': 3, 'init_state': 7,
                                       'use_sim_time': True}
    handlers = [a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler']
    assert {h.kwargs['target_action'].kwargs['executable'] for h in handlers} == set(nodes)
    # a real robot: no bridge, nothing on simulated time
    _, actions = _run_launch_file('teleop.launch.py', monkeypatch, {'robot': 'real'},
                                  params_file)
    nodes = {a.kwargs['executable']: a for a in actions if type(a).__name__ == 'Node'}
    assert set(nodes) == {'action_executor', 'teleop_node', 'recorder_node'}
    assert nodes['action_executor'].kwargs['parameters'][1] == {'use_sim_time': False}
    with pytest.raises(RuntimeError, match='robot'):
        _run_launch_file('teleop.launch.py', monkeypatch, {'robot': 'ur5'}, params_file)
    with pytest.raises(ConfigError, match='min_similarity'):
        _run_launch_file('teleop.launch.py', monkeypatch, {'min_similarity': 'high'},
                         params_file)


def test_launch_files_import_with_the_real_launch_api_when_installed():
    try:
        importlib.import_module('launch_ros.actions')
    except ImportError:
        pytest.skip('launch / launch_ros are not installed here (see README)')
    for filename in LAUNCH_FILES:
        path = REPO / 'launch' / filename
        namespace = {'__name__': 'launch_file', '__file__': str(path)}
        exec(compile(path.read_text(), str(path), 'exec'), namespace)
        assert namespace['generate_launch_description']() is not None
