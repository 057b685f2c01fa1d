"""The head contract (cliprt_core.heads) on the tiny models: targets, loss, validation metrics,
per-query output, and a third head plugged in through the mapping alone."""
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cliprt_core.actions import LabelingConfig, label_actions, load_vocabulary
from cliprt_core.config import ConfigError
from cliprt_core.data import DemoDataset, read_file_info
from cliprt_core.heads import (CHUNK_PAD_VALUE, HEADS, ChunkHead, DiscreteAction, DiscreteHead,
                               Head, LossStep, SampleTargets, head_class, head_for)
from cliprt_core.inference import Policy
from cliprt_core.inference.backends.artifacts import graph_signature, output_name
from cliprt_core.model import create_model, load_model_config
from cliprt_core.model.preprocessing import normalize
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5

TASK = "put the bowl on the plate"


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    return write_libero_hdf5(root / libero_file_name(TASK), num_demos=2, length=[9, 12],
                             layout="original", instruction=TASK, seed=4)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create_model(load_model_config(name))
            for name in ("cliprt-tiny", "cliprt-tiny-discrete")}


def _batch(demos, head, size=None, **kw):
    """The first ``size`` (default: all) samples of the demos as a collated batch."""
    ds = DemoDataset([read_file_info(demos.path)], image_size=64, augment=False, head=head, **kw)
    samples = [ds[i] for i in range(size or len(ds))]
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


@torch.no_grad()
def _embeddings(model, batch):
    """Raw image and prompt embeddings of a batch (as the trainer computes them)."""
    pixels = batch["pixels"].float().div(255.0)
    image = model.encode_image(normalize(pixels))
    prompt = model.encode_text(model.tokenize_prompts([TASK] * len(pixels)))
    return image, prompt


def test_head_for_maps_the_config_name_to_one_class(models):
    assert set(HEADS) == {"chunk", "discrete"}
    chunk = head_for(models["cliprt-tiny"].config)
    discrete = head_for(models["cliprt-tiny-discrete"].config)
    assert type(chunk) is ChunkHead and type(discrete) is DiscreteHead
    assert (chunk.name, chunk.output_name, chunk.outputs_phrases) == ("chunk", "chunk", False)
    assert (discrete.name, discrete.output_name, discrete.outputs_phrases) == (
        "discrete", "scores", True)
    assert chunk.action_dim == 7 and chunk.output_shape == (8, 7) and chunk.actions_per_query == 8
    vocabulary = load_vocabulary("pretrain_50")
    assert discrete.vocabulary == vocabulary and discrete.output_shape == (50,)
    assert discrete.action_dim == len(vocabulary.dimensions) and discrete.actions_per_query == 1
    with pytest.raises(ConfigError, match="unknown head 'flow'; known heads: chunk, discrete"):
        head_class("flow")
    with pytest.raises(ConfigError, match="unknown head"):
        DemoDataset([], image_size=64, head="flow")


def test_chunk_targets_pad_past_the_episode_end():
    actions = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    targets = ChunkHead.sample_targets(chunk_size=4, vocabulary=None, labeling=None)
    assert targets.step_labels(actions) is None  # every step is a sample
    inside, end = targets(actions, 0, -1), targets(actions, 3, -1)
    np.testing.assert_array_equal(inside["actions"], actions[:4])
    assert inside["action_mask"].all()
    np.testing.assert_array_equal(end["actions"][:2], actions[3:])
    assert (end["actions"][2:] == CHUNK_PAD_VALUE).all()
    assert end["action_mask"].tolist() == [True, True, False, False]
    assert end["actions"].dtype == torch.float32


def test_discrete_targets_are_the_primitive_labels(demos):
    vocabulary = load_vocabulary("pretrain_50")
    with pytest.raises(ValueError, match="the discrete head needs a vocabulary"):
        DiscreteHead.sample_targets(chunk_size=8, vocabulary=None, labeling=None)
    targets = DiscreteHead.sample_targets(chunk_size=8, vocabulary=vocabulary, labeling=None)
    actions = demos.actions["demo_1"].astype(np.float32)
    expected = label_actions(actions, None, vocabulary, LabelingConfig.libero())
    np.testing.assert_array_equal(targets.step_labels(actions), expected)
    assert (expected < 0).any() and (expected >= 0).any()  # some steps are no samples
    sample = targets(actions, 5, 17)
    assert int(sample["label"]) == int(sample["phrase_id"]) == 17


def test_chunk_loss_is_the_masked_mean_l1_over_the_global_batch(models, demos):
    model = models["cliprt-tiny"]
    head = head_for(model.config)
    batch = _batch(demos, "chunk", size=6)
    batch["action_mask"][0, 3:] = False  # some padding inside the batch too
    image, prompt = _embeddings(model, batch)
    with torch.no_grad():
        pred = head.training_output(model, image, prompt)
    error = (pred - batch["actions"]).abs() * batch["action_mask"][..., None]
    expected = error.sum() / (batch["action_mask"].sum() * 7)
    whole = head.loss(pred, batch, LossStep(normalizer=head.loss_weight([batch])))
    torch.testing.assert_close(whole, expected)
    # two accumulation micro-batches (and their share of the normaliser) add up to the same
    halves = [{k: v[i:i + 3] for k, v in batch.items()} for i in (0, 3)]
    step = LossStep(accumulation=2, normalizer=head.loss_weight(halves).float())
    parts = sum(head.loss(pred[i:i + 3], half, step) for i, half in zip((0, 3), halves))
    torch.testing.assert_close(parts, expected)
    # DDP averages gradients over ranks: a rank-local loss is pre-multiplied by the world size
    torch.testing.assert_close(
        head.loss(pred, batch, LossStep(world_size=2, normalizer=2 * head.loss_weight([batch]))),
        expected)
    sums = head.validation_batch(pred, batch, None)
    metrics = head.validation_metrics({k: float(v) for k, v in sums.items()})
    assert metrics == pytest.approx({"val_loss": float(expected), "val_samples": 6.0})


def test_discrete_loss_is_the_sigmoid_contrastive_formula(models, demos):
    model = models["cliprt-tiny-discrete"]
    head = head_for(model.config)
    batch = _batch(demos, "discrete", vocabulary=head.vocabulary)
    labels = batch["label"]
    assert len(set(labels.tolist())) < len(labels)  # shared classes: off-diagonal positives
    image, prompt = _embeddings(model, batch)
    cpu = torch.device("cpu")
    with torch.no_grad():
        output = head.training_output(model, image, prompt,
                                      *head.training_inputs(model, batch, cpu))
        loss = head.loss(output, batch, LossStep())
        phrase_tokens = model.tokenize(head.vocabulary.phrases)
        vocabulary = F.normalize(model.encode_text(phrase_tokens), dim=-1)
        reference = head.validation_reference(model, cpu)
        sums = head.validation_batch(output, batch, reference)
    # The CLIP-RT paper's loss, written out: context = normalize(image + prompt), supervision = the
    # label's phrase embedding, sigmoid BCE over the in-batch matrix, mean over B^2
    context, phrases = F.normalize(image + prompt, dim=-1), vocabulary[labels]
    torch.testing.assert_close(output[0], context)
    torch.testing.assert_close(output[1], phrases)
    scale = float(model.logit_scale.detach().exp())
    z = scale * (context @ phrases.T).double()
    y = (labels[:, None] == labels[None, :]).double()
    p = torch.sigmoid(z)
    manual = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    torch.testing.assert_close(loss.double(), manual, rtol=1e-5, atol=1e-6)
    assert output[2] is model.logit_scale
    assert head.log_values(model) == {"logit_scale": pytest.approx(scale)}
    # validation: the same in-batch loss, and argmax accuracy over the whole vocabulary
    torch.testing.assert_close(reference, vocabulary)
    accuracy = float(((context @ vocabulary.T).argmax(dim=-1) == labels).double().mean())
    metrics = head.validation_metrics({k: float(v) for k, v in sums.items()})
    assert metrics == pytest.approx({"val_loss": float(manual), "val_accuracy": accuracy,
                                     "val_samples": len(labels)}, rel=1e-5)
    # a context equal to its label's phrase embedding is always classified right
    with torch.no_grad():
        oracle = head.validation_batch((phrases, phrases, output[2]), batch, reference)
    assert head.validation_metrics({k: float(v) for k, v in oracle.items()})["val_accuracy"] == 1


def test_policy_exposes_its_head_and_action_dim(models):
    frames = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
              for i in range(2)]
    chunk = Policy(models["cliprt-tiny"], device="cpu", dtype=torch.float32)
    assert isinstance(chunk.head, ChunkHead) and not chunk.head.outputs_phrases
    assert chunk.action_dim == 7
    out = chunk.act_batch(frames, [TASK, TASK])
    assert out.shape == (2, *chunk.head.output_shape) and out.dtype == np.float32
    discrete = Policy(models["cliprt-tiny-discrete"], device="cpu", dtype=torch.float32)
    assert discrete.head.outputs_phrases and discrete.action_dim == 7
    with torch.inference_mode():
        prompts = discrete.prompt_embeddings([TASK] * 2)
        scores = discrete.graph(discrete.preprocess(frames), prompts)
    decoded = discrete.act_batch(frames, [TASK, TASK])
    for row, action in zip(scores.numpy(), decoded):
        assert isinstance(action, DiscreteAction)
        assert action.index == int(row.argmax()) and action.score == pytest.approx(row.max())
        assert action.phrase == discrete.vocabulary.phrases[action.index]
        np.testing.assert_array_equal(action.action, discrete.vocabulary.vectors[action.index])
    assert output_name(chunk) == "chunk" and output_name(discrete) == "scores"
    assert graph_signature(chunk)["output"] == {"chunk": ["batch", 8, 7]}
    assert graph_signature(discrete)["output"] == {"scores": ["batch", 50]}


class NextActionTargets(SampleTargets):
    def __call__(self, actions, position, label):
        return {"action": torch.from_numpy(actions[position].copy())}


class NextActionHead(Head):
    """A made-up third head: the first 7 context coordinates regress the next action."""

    name = "next_action"
    output_name = "action"

    action_dim = 7
    actions_per_query = 1
    output_shape = (7,)

    @classmethod
    def sample_targets(cls, *, chunk_size, vocabulary, labeling):
        return NextActionTargets()

    def training_output(self, model, image, prompt, *inputs):
        return model.context(image, prompt)[:, :7]

    def loss(self, output, batch, step):
        return (output - batch["action"]).abs().mean() * step.world_size

    def validation_batch(self, output, batch, reference):
        return {"loss": (output - batch["action"]).abs().sum(), "weight": output.numel(),
                "samples": len(output)}

    def query(self, model, image, prompt, text_embeddings):
        return model.context(image, prompt)[:, :7]

    def decode(self, output):
        return output.astype(np.float32)


def test_a_third_head_is_one_class_and_one_mapping_entry(monkeypatch, models, demos):
    monkeypatch.setitem(HEADS, NextActionHead.name, NextActionHead)
    config = dataclasses.replace(models["cliprt-tiny-discrete"].config, name="next",
                                 head="next_action")
    batch = _batch(demos, "next_action", size=4)
    np.testing.assert_array_equal(batch["action"][0], demos.actions["demo_0"][0])
    torch.manual_seed(0)
    policy = Policy(create_model(config), device="cpu", dtype=torch.float32)
    assert isinstance(policy.head, NextActionHead) and policy.action_dim == 7
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    policy.reset(TASK)
    assert policy.act(frame).shape == (7,)
    assert graph_signature(policy)["output"] == {"action": ["batch", 7]}


@pytest.mark.slow  # a fresh interpreter
def test_heads_sit_below_data_and_training():
    """Importing the heads first pulls in neither the data nor the train package (both import
    the heads), and the validation pass does not import the trainer."""
    code = ("import sys, cliprt_core.heads; "
            "assert not [m for m in sys.modules if m.startswith(('cliprt_core.data', "
            "'cliprt_core.train', 'cliprt_core.inference'))], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    source = Path(__file__).parents[1] / "cliprt_core" / "train" / "evaluation.py"
    imported = {node.module for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.ImportFrom)}
    assert "cliprt_core.train.trainer" not in imported and "cliprt_core.heads" in imported
