"""Shared pytest configuration: markers `gpu` (auto-skipped without CUDA) and `slow`."""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'gpu: needs a CUDA GPU; skipped automatically when torch.cuda is unavailable')
    config.addinivalue_line(
        'markers', 'slow: slow test (seconds or more); deselect with -m "not slow"')


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
    """One intra-op thread for the whole suite.

    Tiny models gain nothing from more threads, and on a loaded 2-core CI machine (DDP, env
    workers and node subprocesses run beside the test process) OpenMP spinning makes them up to
    100x slower. Restored afterwards.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def libero_env(request):
    """A real ``LiberoTaskEnv('libero_spatial', 0)`` for one test module (skipped without LIBERO).

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
