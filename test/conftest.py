"""
Shared pytest configuration.

Markers: ``gpu`` (auto-skipped without CUDA) and ``slow`` (the LIBERO simulator, colcon builds,
subprocesses; ``pytest -m "not slow"`` is the development loop). Session fixtures for what is
expensive to build: the tiny policies, the rclpy context, one colcon install of the repo.
"""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'gpu: needs a CUDA GPU; skipped automatically when torch.cuda is unavailable')
    config.addinivalue_line(
        'markers', 'slow: LIBERO simulator, colcon build or subprocess (seconds or more); '
        'deselect with -m "not slow"')


def _cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker('gpu') is not None]
    if not gpu_items or _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason='needs a CUDA GPU (torch.cuda.is_available() is False)')
    for item in gpu_items:
        item.add_marker(skip_gpu)


@pytest.fixture(scope='session', autouse=True)
def single_torch_thread():
    """
    One intra-op thread for the whole suite.

    Tiny models gain nothing from more threads, and on a loaded 2-core CI machine (DDP, env
    workers and node subprocesses run beside the test process) OpenMP spinning makes them up to
    100x slower. Restored afterwards.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_policy():
    """
    The session's real random-weight ``cliprt-tiny`` policy (CPU, fp32, seed 0).

    Shared by every test that only queries it: tests reset it to their own instruction before
    ``act``; a test that changes its weights, cache or backend builds its own.
    """
    from cliprt_core.inference import Policy

    return Policy.from_config('cliprt-tiny', device='cpu', seed=0)


@pytest.fixture(scope='session')
def tiny_discrete_policy():
    """The session's real random-weight ``cliprt-tiny-discrete`` policy, as ``tiny_policy``."""
    from cliprt_core.inference import Policy

    return Policy.from_config('cliprt-tiny-discrete', device='cpu', seed=0)


@pytest.fixture(scope='session')
def rclpy_context():
    """rclpy initialised once for the session, on the isolated DDS domain of :mod:`ros_utils`."""
    import ros_utils  # isolates DDS (domain, localhost discovery) before rclpy starts

    if not ros_utils.rclpy_available():
        pytest.skip('rclpy wheels not installed')
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope='session')
def colcon_install(tmp_path_factory):
    """
    The install prefix (``.../install/cliprt_ros``) of one colcon build of the repo per session.

    Every test that runs or inspects the installed package shares it (skipped without colcon).
    """
    from ros_utils import colcon_build

    try:
        return colcon_build(tmp_path_factory.mktemp('colcon'))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope='module')
def libero_env(request):
    """
    A real ``LiberoTaskEnv('libero_spatial', 0)`` for one test module (skipped without LIBERO).

    The module sets ``LIBERO_CAMERA`` (pixels, default 64) and ``LIBERO_WRIST`` (default False).
    """
    from cliprt_core.sim import libero_available, LiberoTaskEnv

    if not libero_available():
        pytest.skip('LIBERO is not installed')
    env = LiberoTaskEnv('libero_spatial', 0,
                        camera_size=getattr(request.module, 'LIBERO_CAMERA', 64),
                        wrist_camera=getattr(request.module, 'LIBERO_WRIST', False))
    yield env
    env.close()
