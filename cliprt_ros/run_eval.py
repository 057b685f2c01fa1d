r"""
The LIBERO evaluation through ROS 2 without ``ros2 launch``: both nodes in one process.

``launch/libero_eval.launch.py`` starts ``policy_node`` and ``libero_bridge_node`` as two
processes. Where ``launch`` is not installed (pip-only machines, CI), this entry point creates the
same two nodes, with the same parameter file, in one process and spins them on separate threads
(one executor per node by default, or rclpy's ``MultiThreadedExecutor`` with ``--executor
multi``): every image and action chunk still goes through rclpy topics (DDS).

  python -m cliprt_ros.run_eval            # config/eval/demo.yaml, tiny policy, demo_results/ros-*
  python -m cliprt_ros.run_eval --checkpoint PATH --suite libero_10 --tasks 0-9 --episodes 50
  python -m cliprt_ros.run_eval --checkpoint PATH --mode realtime --real-time-factor 0.25 \
      --publish-clock --aggregation ensemble --added-latency 0.2     # as on a robot

``--num-envs N`` runs N simulators in parallel: N bridge processes (one simulator each, as the
launch file starts them) in the namespaces ``env0`` .. ``env<N-1>`` (under ``--namespace``),
each a disjoint shard of the episode list (``shard: i/N``), all on the Fast DDS profile
``config/dds/fastdds_large_images.xml`` unless ``FASTRTPS_DEFAULT_PROFILES_FILE`` is set,
all served by ONE policy node (``robots: env0,...``) that answers their pending images in one
batch; one results folder (appends are locked), per-episode records equal to a single simulator.

``--mode realtime`` adds the ``action_executor`` node: the policy answers the executor's chunk
requests (``query_mode: on_request``), the executor sends one action per control period and the
simulator steps on the clock (with ``--publish-clock`` on the simulated ``/clock``, which the
policy node and the executor then follow with ``use_sim_time``).

Flags are those of ``cliprt-eval`` (every EvalConfig setting, ``--backend`` included) plus
``--namespace``, ``--executor`` and ``--params-file``; the success table is printed at the end,
as ``cliprt-eval`` prints it. Only the flags given override the parameter file.
"""

import os
import sys
import time

from cliprt_core.cli.options import add_config_flags, all_but, given_flags
from cliprt_core.config import ConfigError
from cliprt_core.eval.config import CLUSTER_SETTINGS
from cliprt_ros.spin import spinning


def build_parser():
    """Return the argument parser (the ``cliprt-eval`` flags plus the ROS ones)."""
    from cliprt_core.cli.eval import build_parser as eval_parser

    parser = eval_parser('python -m cliprt_ros.run_eval', __doc__, exclude=CLUSTER_SETTINGS)
    parser.set_defaults(config='demo')
    parser.add_argument('--namespace', default='',
                        help='ROS namespace of both nodes (topics are relative)')
    parser.add_argument('--executor', choices=EXECUTORS, default='threads',
                        help="threads: one executor thread per node (default); multi: rclpy's "
                             'MultiThreadedExecutor for both (slow in rclpy 7.1, see docs)')
    parser.add_argument('--params-file', dest='params_file', default=None,
                        help='node parameter YAML (default config/nodes/libero_eval.yaml)')
    parser.add_argument('--num-envs', dest='num_envs', type=_positive, default=1,
                        help='simulators in parallel: N bridges (namespaces env0..), one shard '
                             'of the episodes each, one policy node batching them (lockstep)')
    for cls, names in _runtime_flags():
        add_config_flags(parser, cls, all_but(cls, names))
    return parser


def _positive(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be an integer >= 1, got {text!r}')
    return value


def _runtime_flags():
    """Return the node settings run_eval exposes as flags (real-time evaluation)."""
    from cliprt_core.executor import ExecutorConfig
    from cliprt_ros.settings import BridgeConfig, PolicyNodeConfig

    return ((BridgeConfig, REALTIME_BRIDGE_SETTINGS), (ExecutorConfig, REALTIME_EXECUTOR_SETTINGS),
            (PolicyNodeConfig, ('added_latency',)))


REALTIME_BRIDGE_SETTINGS = ('mode', 'real_time_factor', 'publish_clock', 'camera_period')
REALTIME_EXECUTOR_SETTINGS = ('aggregation', 'ensemble_decay', 'request_threshold',
                              'latency_compensation')


def runtime_values(args):
    """``(bridge, executor, policy)`` parameter dicts of the real-time flags that were given."""
    return tuple(given_flags(args, cls, all_but(cls, names)) for cls, names in _runtime_flags())


def create_nodes(config, namespace='', params_file=None, policy=None,
                 env_factory=None, runtime=({}, {}, {}), num_envs=1):
    """
    Create ``(policy_node, bridge_node, extra_nodes)`` for EvalConfig ``config``.

    ``num_envs`` > 1: ``bridge_node`` is a list of N :class:`~cliprt_ros.bridge_process.
    BridgeProcess` (one simulator process each, namespaces :func:`env_namespaces` under
    ``namespace``, shard i/N each) and the policy node serves them all (``robots``).

    ``policy`` (a loaded cliprt_core Policy) and ``env_factory`` are optional injections for
    tests and benchmarks; by default the policy node loads what ``config`` names. ``runtime``:
    ``(bridge, executor, policy)`` parameters of a real-time run (:func:`runtime_values`);
    ``mode: realtime`` adds the ``action_executor`` (the only extra node).
    """
    from rclpy.parameter import Parameter

    from cliprt_core.eval import EvalConfig
    from cliprt_core.inference import PolicySettings
    from cliprt_core.paths import config_dir
    from cliprt_ros.launch_support import env_namespaces
    from cliprt_ros.libero_bridge_node import LiberoBridgeNode
    from cliprt_ros.parameters import config_to_parameters
    from cliprt_ros.policy_node import PolicyNode
    from cliprt_ros.settings import BRIDGE_EXCLUDED

    params_file = params_file or str(config_dir() / 'nodes' / 'libero_eval.yaml')
    if not os.path.isfile(params_file):
        raise FileNotFoundError(f'node parameter file not found: {params_file}')
    cli_args = ['--ros-args', '--params-file', params_file]
    # Policy settings left at their defaults do not override the parameter file.
    defaults = config_to_parameters(PolicySettings(), PolicySettings)
    policy_values = {name: value for name, value in
                     config_to_parameters(config.policy, PolicySettings).items()
                     if value != defaults[name]}
    bridge_values = config_to_parameters(config, EvalConfig, exclude=BRIDGE_EXCLUDED)
    bridge_runtime, executor_values, policy_runtime = runtime
    bridge_values.update(bridge_runtime)
    policy_values.update(policy_runtime)
    realtime = bridge_runtime.get('mode') == 'realtime'
    if realtime and num_envs > 1:
        raise ConfigError('--num-envs > 1 needs --mode lockstep (one action_executor per robot '
                          'is not wired)')
    if realtime:
        sim_time = {'use_sim_time': bool(bridge_runtime.get('publish_clock', False))}
        policy_values.update(sim_time, query_mode='on_request')
        executor_values = {**executor_values, **sim_time}

    def overrides(values):
        return [Parameter(k, value=v) for k, v in values.items()]

    # The bridges first: they check the results folder before a large model is loaded.
    made = []
    try:
        if num_envs == 1:
            bridge = LiberoBridgeNode(env_factory=env_factory, log_report=False,
                                      namespace=namespace, cli_args=cli_args,
                                      parameter_overrides=overrides(bridge_values))
            made.append(bridge)
        else:
            from cliprt_ros.bridge_process import BridgeProcess

            policy_values['robots'] = ','.join(env_namespaces(num_envs))
            for index, env in enumerate(env_namespaces(num_envs)):
                made.append(BridgeProcess(
                    f'{namespace.rstrip("/")}/{env}' if namespace else env, cli_args,
                    {**bridge_values, 'shard': f'{index}/{num_envs}'}, env_factory))
            for each in made:
                each.wait_ready()
            bridge = list(made)
        if realtime:
            from cliprt_ros.executor_node import ActionExecutorNode

            made.append(ActionExecutorNode(namespace=namespace, cli_args=cli_args,
                                           parameter_overrides=overrides(executor_values)))
        policy_node = PolicyNode(policy=policy, namespace=namespace, cli_args=cli_args,
                                 parameter_overrides=overrides(policy_values))
    except BaseException:
        for node in made:
            node.destroy_node()
        raise
    return policy_node, bridge, made[1:] if num_envs == 1 else made[num_envs:]


EXECUTORS = ('threads', 'multi')


def run_nodes(policy_node, bridge, extra_nodes=(), executor='threads'):
    """
    Spin both nodes (and ``extra_nodes``) in this process until the bridge has finished.

    ``bridge`` may be a list of bridge processes (``--num-envs``): the run ends when all have
    finished, and the summary of the shared results folder is written once.

    ``executor='threads'`` (default): one ``SingleThreadedExecutor`` per node, each on its own
    thread. ``'multi'``: one rclpy ``MultiThreadedExecutor`` for all nodes; in rclpy 7.1.x
    (Jazzy) its spin loop re-queues callbacks that have not started yet and starves the
    worker threads (ros2/rclpy#1452, fixed upstream by #1547), which adds ~100 ms per message
    here - see training/bench_ros.py. Either way every message goes through rclpy topics.
    Returns the summary, or None if ROS was shut down first (SIGINT / SIGTERM).
    """
    from cliprt_ros.libero_bridge_node import spin_until_finished

    if executor not in EXECUTORS:
        raise ValueError(f'executor must be one of {EXECUTORS}, got {executor!r}')
    if isinstance(bridge, (list, tuple)):
        return _run_shards(policy_node, bridge, extra_nodes)
    if executor == 'multi':
        _spin_multi(bridge, (policy_node, bridge, *extra_nodes))
        return bridge.summary
    from rclpy.executors import SingleThreadedExecutor

    with spinning((policy_node, *extra_nodes), bridge.context):
        main_executor = SingleThreadedExecutor(context=bridge.context)
        main_executor.add_node(bridge)
        try:
            spin_until_finished(main_executor, bridge)
        finally:
            main_executor.shutdown()
    return bridge.summary


def _run_shards(policy_node, bridges, extra_nodes):
    """Spin the policy node until every bridge process finished; write the summary once."""
    import rclpy

    context = policy_node.context
    with spinning((policy_node, *extra_nodes), context):
        while rclpy.ok(context=context) and not all(b.finished for b in bridges):
            time.sleep(0.05)
    if not all(b.finished for b in bridges):
        return None
    first = bridges[0]
    run = {**first.run_settings, 'transport': 'ros2', 'num_envs': len(bridges),
           'episodes_this_run': sum(len(b.finished_now) for b in bridges)}
    stopped = [b.stop_reason for b in bridges if b.stop_reason]
    if stopped:
        run['stopped'] = '; '.join(stopped)
    summary = first.results.write_summary(expected=first.wanted, run=run)
    for each in bridges:
        each.summary = summary
    return summary


def _spin_multi(bridge, nodes):
    from cliprt_ros.libero_bridge_node import spin_until_finished
    from cliprt_ros.spin import make_executor, shutdown_executor

    executor = make_executor('multi', context=bridge.context)
    for node in nodes:
        executor.add_node(node)
    try:
        spin_until_finished(executor, bridge)
    finally:
        shutdown_executor(executor)  # drains the thread pool: no callback outlives its node


def main(argv=None):
    """Run the evaluation through both ROS 2 nodes in one process; print the success table."""
    args = build_parser().parse_args(argv)
    from cliprt_core.cli.eval import config_from_args, summary_only
    from cliprt_core.eval import report, ResultsMismatchError

    if args.results_dir is None and args.config == 'demo':  # like cliprt-demo: a fresh folder
        args.results_dir = os.path.join('demo_results', time.strftime('ros-%Y%m%d-%H%M%S'))
    try:
        config = config_from_args(args, exclude=CLUSTER_SETTINGS)
    except (ConfigError, FileNotFoundError) as exc:
        print(f'run_eval: {exc}', file=sys.stderr)
        return 2
    if args.summary_only:  # as cliprt-eval --summary-only: re-tabulate, no ROS
        return summary_only(config, 'run_eval')
    if config.workers > 1:
        print('run_eval: --workers is ignored: the bridge node runs one simulator',
              file=sys.stderr)
    # One process talks to itself: keep discovery on this machine unless the user chose.
    if 'ROS_LOCALHOST_ONLY' not in os.environ:
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from cliprt_ros.launch_support import large_image_dds_env

    os.environ.update(large_image_dds_env(args.num_envs))
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from cliprt_ros.spin import ignore_stop_signals, init

    init()
    nodes = []
    try:
        policy_node, bridge, extra = create_nodes(
            config, namespace=args.namespace, params_file=args.params_file,
            runtime=runtime_values(args), num_envs=args.num_envs)
        bridges = bridge if isinstance(bridge, list) else [bridge]
        nodes = [policy_node, *bridges, *extra]
        summary = run_nodes(policy_node, bridge, extra_nodes=extra, executor=args.executor)
        if summary is None:
            raise KeyboardInterrupt  # ROS was shut down (SIGINT / SIGTERM) before the end
        print(report(summary, bridges[0].results))
        return max(each.exit_code for each in bridges)
    except (KeyboardInterrupt, ExternalShutdownException):
        print('\nrun_eval: interrupted; finished episodes are kept; rerun the same command to '
              'resume', file=sys.stderr)
        return 130
    except (ConfigError, ResultsMismatchError, FileNotFoundError, ValueError) as exc:
        print(f'run_eval: {exc}', file=sys.stderr)
        return 2
    finally:
        ignore_stop_signals()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
