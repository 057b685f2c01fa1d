"""Two-process DDP (gloo, CPU) through torchrun agrees with one process on the same global batch.

The test launches this file under ``python -m torch.distributed.run --nproc-per-node 2``; the
``__main__`` block is the per-rank worker. Both heads are trained for a few steps: CLIP-RT+
(masked L1, normalised over the global batch) and discrete CLIP-RT (sigmoid contrastive loss
over features all-gathered with gradients). Random crops stay on: they are seeded per sample.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

STEPS = 4


def _overrides(data, out, name, model):
    return [f"model={model}", f"data.paths=[{data}]", f"log.output_dir={out}",
            f"log.run_name={name}", "log.progress=false", "log.tensorboard=false",
            "log.log_every=1", f"train.max_steps={STEPS}", "train.global_batch_size=8",
            "train.num_threads=1", "optim.warmup_steps=2",
            "optim.lr=1.0e-4"]  # a smaller step keeps fp32 rounding noise from being amplified


MODELS = {"chunk": "cliprt-tiny", "discrete": "cliprt-tiny-discrete"}


def _worker(data, out):
    """Per-rank body: a gradient check of all_gather_with_grad, then both trainings."""
    from cliprt_core.train import Trainer, load_train_config
    from cliprt_core.train import distributed as D

    dist = D.init_distributed("cpu")
    x = torch.full((2, 3), float(dist.rank + 1), requires_grad=True)
    gathered = D.all_gather_with_grad(x)
    weights = torch.arange(12.0).reshape(4, 3) * (dist.rank + 1)
    (gathered * weights).sum().backward()  # d/dx of sum over ranks = sum_r weights_r[my rows]
    expected = torch.arange(12.0).reshape(4, 3)[2 * dist.rank:2 * dist.rank + 2] * 3
    assert torch.equal(gathered[:, 0], torch.tensor([1.0, 1.0, 2.0, 2.0]))
    assert torch.equal(x.grad, expected), (x.grad, expected)
    for head, model in MODELS.items():
        trainer = Trainer(load_train_config("tiny", _overrides(data, out, f"ddp-{head}", model)))
        assert (trainer.micro_batch, trainer.accumulation) == (4, 1)
        trainer.train()
        trainer.close()
    D.cleanup()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    from cliprt_core.atomic import read_jsonl
    from cliprt_core.checkpoint.safe_load import safe_torch_load
    from cliprt_core.train import Trainer, load_train_config
    from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5

    data = tmp_path / "data"
    for seed, task in enumerate(["open the drawer", "close the drawer"]):
        write_libero_hdf5(data / libero_file_name(task), num_demos=2, length=10,
                          layout="no_noops", instruction=task, seed=seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          str(Path(__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           __file__, str(data), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    for head, model in MODELS.items():
        config = load_train_config("tiny", _overrides(data, tmp_path, f"one-{head}", model))
        single = Trainer(config)
        single.train()
        single.close()
        ddp_losses = [r["loss"] for r in read_jsonl(tmp_path / f"ddp-{head}" / "metrics.jsonl")]
        one_losses = [r["loss"] for r in read_jsonl(single.run.metrics_file)]
        assert len(ddp_losses) == len(one_losses) == STEPS
        np.testing.assert_allclose(ddp_losses, one_losses, rtol=1e-5, atol=1e-6, err_msg=head)
        assert one_losses[-1] != one_losses[0]  # it did train
        ddp_state = safe_torch_load(tmp_path / f"ddp-{head}" / "checkpoints" / "last.pt")
        one_state = single.model.state_dict()
        worst = max((ddp_state["state_dict"][k] - v).abs().max().item()
                    for k, v in one_state.items())
        assert worst < 1e-5, (head, worst)
        assert json.dumps(ddp_state["trainer"]["step"]) == str(STEPS)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
