"""
The shipped training configs learn: a model trained with them on a clearly learnable fixture
predicts actions that follow the image, instead of collapsing to the constant (mean) output.
"""
import copy

import numpy as np
import pytest
import torch

from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5
from cliprt_core.inference import Policy
from cliprt_core.train import Trainer, load_train_config

TASK = 'put the bowl on the plate'
pytestmark = pytest.mark.slow
EXTRA: list = []  # extra overrides: a broken setting (optim.lr=0.3) makes this test fail


@pytest.fixture(scope='module')
def learnable(tmp_path_factory):
    """Two demos whose frames say which step it is (a moving square, a tint) and so the action."""
    root = tmp_path_factory.mktemp('learnable')
    return write_libero_hdf5(root / libero_file_name(TASK), num_demos=2, length=16,
                             layout='no_noops', instruction=TASK, seed=11)


def _first_actions(model, written):
    policy = Policy(copy.deepcopy(model), device='cpu', dtype=torch.float32)
    policy.reset(written.instruction)
    predicted, target = [], []
    for name in written.demos:
        for t, frame in enumerate(written.upright[name]):
            predicted.append(policy.act(frame)[0])
            target.append(written.actions[name][t])
    return np.array(predicted), np.array(target)


@pytest.mark.parametrize('config', ['tiny'])
def test_shipped_config_learns_instead_of_collapsing(tmp_path, learnable, config):
    trainer = Trainer(load_train_config(config, [
        f'data.paths=[{learnable.path}]', f'log.output_dir={tmp_path}', 'log.progress=false',
        'log.tensorboard=false', 'train.num_threads=1', 'train.max_steps=200', *EXTRA]))
    trainer.train()
    predicted, target = _first_actions(trainer.model, learnable)
    trainer.close()
    motion = slice(0, 6)
    constant_error = np.abs(target[:, motion] - target[:, motion].mean(axis=0)).mean()
    error = np.abs(predicted[:, motion] - target[:, motion]).mean()
    # a collapsed model predicts (almost) the same action for every frame
    spread = predicted[:, motion].std(axis=0).mean() / target[:, motion].std(axis=0).mean()
    assert spread > 0.5, f'predictions barely depend on the image (spread ratio {spread:.2f})'
    assert error < 0.5 * constant_error, (error, constant_error)
