"""The trainer on the tiny models, CPU, real LIBERO-layout files: overfitting, exact resume,
losses, optimizer groups, run directory, CLI, configs."""
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from cliprt_core.atomic import read_jsonl
from cliprt_core.checkpoint import load_model
from cliprt_core.checkpoint.safe_load import safe_torch_load
from cliprt_core.cli import train as train_cli
from cliprt_core.config import ConfigError, load_config
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5
from cliprt_core.inference import Policy
from cliprt_core.model import create_model, load_model_config
from cliprt_core.paths import config_dir
from cliprt_core.train import (TrainConfig, Trainer, load_train_config, masked_l1,
                               sigmoid_contrastive)
from cliprt_core.train.optim import WarmupCosine, param_groups
from cliprt_core.train.trainer import micro_batch_geometry

TASK = "put the bowl on the plate"


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    return write_libero_hdf5(root / libero_file_name(TASK), num_demos=2, length=10,
                             layout="no_noops", instruction=TASK, seed=3)


def _config(tmp_path, demos, *overrides):
    return load_train_config("tiny", [
        f"data.paths=[{demos.path}]", f"log.output_dir={tmp_path}", "log.progress=false",
        "log.tensorboard=false", "log.log_every=1", "train.num_threads=1", *overrides])


def _losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_jsonl(run_dir / "metrics.jsonl")]


def _policy_error(model, demos):
    policy = Policy(copy.deepcopy(model), device="cpu", dtype=torch.float32)
    policy.reset(demos.instruction)
    errors = []
    for name in demos.demos:
        actions = demos.actions[name]
        for t in range(len(actions)):
            target = actions[t:t + 8]
            errors.append(np.abs(policy.act(demos.upright[name][t])[:len(target)] - target).mean())
    return float(np.mean(errors))


def test_tiny_model_overfits_a_few_demos(tmp_path, demos):
    config = _config(tmp_path, demos, "train.max_steps=120", "train.global_batch_size=4",
                     "data.augment=false", "optim.lr=1.0e-3", "optim.warmup_steps=5")
    trainer = Trainer(config)
    before = _policy_error(trainer.model, demos)
    trainer.train()
    losses = [loss for _, loss in _losses(trainer.run.path)]
    assert len(losses) == 120
    assert np.mean(losses[-10:]) < 0.4 * np.mean(losses[:3])
    # the saved checkpoint serves: the policy reproduces the demos' chunks
    model, _ = load_model(trainer.run.last)
    after = _policy_error(model, demos)
    assert after < 0.4 * before, (before, after)
    trainer.close()


@pytest.mark.gpu
def test_trains_on_cuda_in_bf16(tmp_path, demos):
    """The GPU path: bf16 autocast, fused AdamW, pinned uint8 batches from 2 loader workers."""
    config = _config(tmp_path, demos, "train.device=cuda", "train.precision=auto",
                     "train.max_steps=60", "train.global_batch_size=4", "data.augment=false",
                     "data.num_workers=2", "data.pin_memory=true", "optim.lr=1.0e-3",
                     "optim.warmup_steps=5")
    trainer = Trainer(config)
    assert trainer.device.type == "cuda" and trainer.autocast_dtype == torch.bfloat16
    assert trainer.optimizer.defaults["fused"]
    trainer.train()
    losses = [loss for _, loss in _losses(trainer.run.path)]
    assert len(losses) == 60 and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:3])  # CPU bf16: ~0.55
    model, _ = load_model(trainer.run.last)  # a GPU-trained checkpoint loads on the CPU
    assert next(model.parameters()).device.type == "cpu"
    trainer.close()


def test_resume_continues_exactly(tmp_path, demos):
    overrides = ["train.max_steps=8", "train.global_batch_size=4", "data.num_workers=2",
                 "log.save_every=4", "optim.warmup_steps=2"]  # 5 steps per epoch: crosses one
    straight = Trainer(_config(tmp_path, demos, "log.run_name=straight", *overrides))
    straight.train()
    first = Trainer(_config(tmp_path, demos, "log.run_name=resumed", *overrides))
    first.train(until_step=3)
    first.close()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(_config(tmp_path, demos, "log.run_name=resumed", *overrides))
    second = Trainer(_config(tmp_path, demos, "log.run_name=resumed", *overrides), resume=True)
    assert (second.step, second.step_in_epoch) == (3, 3)
    second.train()
    a, b = _losses(straight.run.path), _losses(second.run.path)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 9))
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=0, atol=1e-6)
    for (name, p), q in zip(straight.model.named_parameters(), second.model.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-6), name
    files = sorted(p.name for p in second.run.checkpoints.iterdir())
    assert files == ["last.pt", "step_000004.pt", "step_000008.pt"]
    payload = safe_torch_load(second.run.last)  # weights_only loading of the whole state
    assert payload["trainer"]["step"] == 8 and "optimizer" in payload and "scheduler" in payload
    workers = list(second.loader._iterator._workers)  # persistent loader workers
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    straight.close()
    second.close()
    # close() stops them now (left to the garbage collector they could cost 5 s each)
    assert not any(w.is_alive() for w in workers)


def test_resume_applies_changed_optimizer_settings(tmp_path, demos):
    base = ["log.run_name=changed", "train.global_batch_size=4", "optim.warmup_steps=2"]
    first = Trainer(_config(tmp_path, demos, *base, "train.max_steps=6"))
    first.train(until_step=3)
    first.close()
    second = Trainer(_config(tmp_path, demos, *base, "train.max_steps=9", "optim.lr=2.0e-4",
                             "optim.weight_decay=0.2"), resume=True)
    rule = second.scheduler.lr_lambdas[0]
    assert rule.total_steps == 9 and second.scheduler.base_lrs == [2e-4, 2e-4]
    decay, plain = second.optimizer.param_groups
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.2, 0.0)
    assert decay["lr"] == pytest.approx(2e-4 * rule(3))  # the lr of step 4 under the new config
    assert len(second.optimizer.state) > 0  # the Adam moments are the checkpoint's
    second.close()


def test_discrete_model_trains_with_validation(tmp_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("discrete")
    for seed, task in enumerate(["open the drawer", "close the drawer"]):
        write_libero_hdf5(root / libero_file_name(task), num_demos=3, length=10,
                          layout="original", instruction=task, seed=seed)
    config = load_train_config("tiny", [
        "model=cliprt-tiny-discrete", f"data.paths=[{root}]", f"log.output_dir={tmp_path}",
        "log.progress=false", "log.log_every=1", "train.max_steps=12", "train.num_threads=1",
        "train.global_batch_size=8", "data.val_fraction=0.34", "log.eval_every=6",
        "optim.warmup_steps=2"])
    trainer = Trainer(config)
    trainer.train()
    records = read_jsonl(trainer.run.metrics_file)
    assert all(set(r) >= {"step", "loss", "lr", "samples_per_s", "logit_scale"} for r in records)
    assert np.mean([r["loss"] for r in records[-3:]]) < records[0]["loss"]
    val = read_jsonl(trainer.run.val_file)
    assert [r["step"] for r in val] == [6, 12]
    assert 0 <= val[-1]["val_accuracy"] <= 1 and val[-1]["val_samples"] > 0
    assert (trainer.run.checkpoints / "best.pt").is_file()
    assert list((trainer.run.path / "tb").glob("events.out.tfevents.*"))
    assert 0 <= float(trainer.model.logit_scale.detach()) <= math.log(100) + 1e-6
    model, _ = load_model(trainer.run.checkpoints / "best.pt")
    assert model.config.head == "discrete"
    trainer.close()


def test_gradient_accumulation_matches_full_batch(tmp_path, demos):
    runs = {}
    for name, micro in (("full", "null"), ("accum", "2")):  # accum also recomputes activations
        trainer = Trainer(_config(tmp_path, demos, f"log.run_name={name}", "train.max_steps=3",
                                  "train.global_batch_size=4", f"train.micro_batch_size={micro}",
                                  f"train.grad_checkpointing={name == 'accum'}"))
        assert trainer.accumulation == (1 if name == "full" else 2)
        trainer.train()
        runs[name] = [loss for _, loss in _losses(trainer.run.path)]
        trainer.close()
    np.testing.assert_allclose(runs["full"], runs["accum"], rtol=1e-5)


def test_cli_trains_and_rejects_bad_configs(tmp_path, demos, capsys):
    args = ["--config", "tiny", f"data.paths=[{demos.path}]", f"log.output_dir={tmp_path}",
            "train.max_steps=2", "log.progress=false", "train.global_batch_size=4"]
    assert train_cli.main(args) == 0
    run = tmp_path / "tiny"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "config.yaml").is_file()
    saved = load_config(TrainConfig, run / "config.yaml")
    assert saved.train.max_steps == 2 and saved.log.run_name == "tiny"
    # resume from the run directory alone, extending the run
    assert train_cli.main(["--run-dir", str(run), "--resume", "train.max_steps=3"]) == 0
    assert [s for s, _ in _losses(run)] == [2, 3]  # log_every=5: the final step of each run
    capsys.readouterr()
    assert train_cli.main(["--config", "tiny", "optim.lrr=0.1"]) == 2
    assert "unknown config key(s) in 'optim': optim.lrr" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: cliprt-tiny\ntrain: {max_steps: 3, warmup: 5}\n")
    assert train_cli.main(["--config", str(bad)]) == 2
    assert "train.warmup" in capsys.readouterr().err
    assert train_cli.main(["--config", "tiny", f"data.paths=[{tmp_path / 'empty'}]"]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_overrides_the_architecture_and_resumes_it(tmp_path, demos):
    """`model.decoder.layers=1` changes the model trained, and the run remembers it."""
    args = ["--config", "tiny", f"data.paths=[{demos.path}]", f"log.output_dir={tmp_path}",
            "train.max_steps=1", "log.progress=false", "train.global_batch_size=4",
            "model.decoder.layers=1", "model.action_head.blocks=1"]
    assert train_cli.main(args) == 0
    run = tmp_path / "tiny"
    saved = load_config(TrainConfig, run / "config.yaml")
    assert saved.model.decoder.layers == 1 and saved.model.action_head.blocks == 1
    model, _ = load_model(run / "checkpoints" / "last.pt")
    assert len(model.decoder.transformer.resblocks) == 1
    assert train_cli.main(["--run-dir", str(run), "--resume", "train.max_steps=2"]) == 0
    with pytest.raises(ConfigError, match="model.decoder.layerz"):
        load_train_config("tiny", ["model.decoder.layerz=1"])
    with pytest.raises(dataclasses.FrozenInstanceError):  # frozen once loaded
        saved.optim.lr = 1.0


def test_shipped_configs_load():
    names = sorted(p.stem for p in (config_dir() / "train").glob("*.yaml"))
    assert {"tiny", "cliprt-discrete", "cliprt-plus-libero-spatial", "cliprt-plus-libero-object",
            "cliprt-plus-libero-goal", "cliprt-plus-libero-10"} <= set(names)
    for name in names:
        config = load_train_config(name)
        load_model_config(config.model)  # the model config exists (no model is built)
        assert config.data.paths or name in ("tiny", "learn-demo")  # data on the command line
    learn = load_train_config("learn-demo")
    assert (learn.model, learn.train.max_steps, learn.train.global_batch_size,
            learn.optim.lr) == ("cliprt-small", 3000, 16, 3e-4)
    spatial = load_train_config("cliprt-plus-libero-spatial")
    assert (spatial.optim.lr, spatial.optim.weight_decay, spatial.optim.warmup_steps) == \
        (5e-6, 0.1, 1000)
    assert spatial.optim.betas == (0.9, 0.98) and spatial.optim.eps == 1e-6
    assert spatial.train.global_batch_size == 128 and spatial.train.micro_batch_size == 32
    assert spatial.data.paths == ["data/libero_spatial_no_noops/*.hdf5"]
    with pytest.raises(ConfigError, match="unknown config key"):
        load_train_config("tiny", ["data.pathz=[x]"])


def test_masked_l1_is_split_invariant():
    torch.manual_seed(0)
    pred, target = torch.randn(6, 8, 7), torch.randn(6, 8, 7)
    mask = torch.rand(6, 8) > 0.3
    reference = ((pred - target).abs() * mask[..., None]).sum() / (mask.sum() * 7)
    count = mask.sum() * 7
    parts = sum(masked_l1(pred[i:i + 2], target[i:i + 2], mask[i:i + 2], count) for i in (0, 2, 4))
    assert torch.allclose(parts, reference) and torch.allclose(
        masked_l1(pred, target, mask, count), reference)


def test_sigmoid_contrastive_matches_definition():
    torch.manual_seed(0)
    ctx = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    sup = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1])
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * ctx @ sup.T
    target = (labels[:, None] == labels[None]).float()
    manual = -(target * torch.log(torch.sigmoid(logits))
               + (1 - target) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert torch.allclose(sigmoid_contrastive(ctx, sup, labels, scale), manual, atol=1e-6)


def test_param_groups_and_schedule():
    model = create_model(load_model_config("cliprt-tiny"))
    decay, plain = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    plain_names = {names[id(p)] for p in plain["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert "clip.logit_scale" in plain_names and "clip.visual.conv1.weight" in decay_names
    assert all(n.endswith("bias") or "ln" in n or "norm" in n or model.get_parameter(n).ndim < 2
               or n.endswith("class_embedding") for n in plain_names)
    assert "decoder.transformer.resblocks.0.ln_1.weight" in plain_names
    assert "action_head.fc1.weight" in decay_names and "action_head.fc1.bias" in plain_names
    assert len(plain_names) + len(decay_names) == len(names)
    rule = WarmupCosine(10, 110)
    assert rule(0) == pytest.approx(0.1) and rule(9) == pytest.approx(1.0)
    assert rule(60) == pytest.approx(0.5) and rule(110) == pytest.approx(0.0)
    assert WarmupCosine(0, 10, "constant")(5) == 1.0


def test_micro_batch_geometry():
    assert micro_batch_geometry(128, 4, 32) == (32, 1)
    assert micro_batch_geometry(128, 1, 32) == (32, 4)
    assert micro_batch_geometry(128, 8, 32) == (16, 1)
    assert micro_batch_geometry(12, 1, 5) == (4, 3)
    with pytest.raises(ConfigError, match="not divisible"):
        micro_batch_geometry(10, 4, None)


def test_sigterm_saves_and_stops(tmp_path, demos):
    import signal

    trainer = Trainer(_config(tmp_path, demos, "train.max_steps=50", "train.global_batch_size=4"))
    advance = trainer._advance

    def advance_then_signal():
        advance()
        if trainer.step == 2:
            signal.raise_signal(signal.SIGTERM)

    trainer._advance = advance_then_signal
    assert trainer.train()["step"] == 2
    assert safe_torch_load(trainer.run.last)["trainer"]["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    trainer.close()


def test_initialise_from_checkpoints(tmp_path):
    from cliprt_core.checkpoint import save_model_checkpoint
    from cliprt_core.checkpoint.errors import CheckpointError
    from cliprt_core.checkpoint.official import our_state_dict_to_official
    from cliprt_core.train.init import initialise

    torch.manual_seed(1)
    chunk_source = create_model(load_model_config("cliprt-tiny"))
    discrete_source = create_model(load_model_config("cliprt-tiny-discrete"))
    save_model_checkpoint(chunk_source, tmp_path / "chunk.pt")
    save_model_checkpoint(discrete_source, tmp_path / "discrete.pt")
    torch.save({"epoch": 1, "state_dict": our_state_dict_to_official(
        discrete_source.state_dict())}, tmp_path / "official.pt")

    model = create_model(load_model_config("cliprt-tiny"))
    assert "whole model" in initialise(model, str(tmp_path / "chunk.pt"), "full")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 chunk_source.state_dict().values()))
    for source in ("discrete.pt", "official.pt"):
        model = create_model(load_model_config("cliprt-tiny"))
        decoder_before = model.decoder.text_projection.clone()
        with pytest.raises(CheckpointError, match="init_mode=backbone"):
            initialise(model, str(tmp_path / source), "full")
        assert "head tensors stay random" in initialise(model, str(tmp_path / source), "backbone")
        assert torch.equal(model.clip.visual.conv1.weight,
                           discrete_source.clip.visual.conv1.weight)
        assert torch.equal(model.decoder.text_projection, decoder_before)
