"""Checkpoints: our format round trip, the official CLIP-RT(+) layout, hub ids, bad files."""
import os

import numpy as np
import pytest
import torch

from cliprt_core.checkpoint import CheckpointError, load_model, save_model_checkpoint
from cliprt_core.checkpoint.hub import resolve_checkpoint
from cliprt_core.checkpoint.official import map_official_state_dict, our_state_dict_to_official
from cliprt_core.model import create_model, load_model_config


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(3)
    return create_model(load_model_config("cliprt-tiny")).eval()


def _official_file(path, state_dict):
    """A file as the authors' training wrote it: DDP keys, epoch, AdamW state with numpy scalars."""
    torch.save({"epoch": 3, "name": "cliprt_libero_goal",
                "state_dict": state_dict,
                "optimizer": {"state": {0: {"step": np.float64(12.0),
                                            "exp_avg": torch.zeros(2)}},
                              "param_groups": [{"lr": np.float64(5e-6), "params": [0]}]}},
               path)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_native_round_trip(tiny, tmp_path):
    path = tmp_path / "model.pt"
    save_model_checkpoint(tiny, path, metadata={"note": "test"})
    loaded, info = load_model(path)
    assert info.kind == "native" and info.payload["metadata"]["note"] == "test"
    assert loaded.config == tiny.config
    assert _same_weights(loaded, tiny)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary behind


def test_official_layout_has_every_duplicate(tiny):
    official = our_state_dict_to_official(tiny.state_dict())
    keys = set(official)
    assert all(k.startswith("module.") for k in keys)
    assert "module.text.transformer.resblocks.0.attn.in_proj_weight" in keys
    assert "module.text2.transformer.resblocks.1.mlp.c_fc.weight" in keys
    assert "module.transformer2.resblocks.1.mlp.c_fc.weight" in keys
    assert {"module.token_embedding2.weight", "module.positional_embedding2",
            "module.ln_final2.weight", "module.text_projection2",
            "module.action_head.mlp_resnet_blocks.1.ffn.1.weight"} <= keys
    assert not any("attn_mask" in k or "logit_bias" in k for k in keys)


def test_official_clip_rt_plus_file_loads(tiny, tmp_path):
    path = tmp_path / "cliprt_libero_goal.pt"
    _official_file(path, our_state_dict_to_official(tiny.state_dict()))
    loaded, info = load_model(path, model_config="cliprt-tiny")
    assert info.kind == "official"
    assert _same_weights(loaded, tiny)


def test_official_file_with_unknown_and_missing_keys_is_rejected(tiny, tmp_path):
    state = our_state_dict_to_official(tiny.state_dict())
    state["module.surprise.weight"] = torch.zeros(1)
    del state["module.action_head.fc2.bias"]
    path = tmp_path / "bad.pt"
    _official_file(path, state)
    with pytest.raises(CheckpointError) as err:
        load_model(path, model_config="cliprt-tiny")
    assert "module.surprise.weight" in str(err.value)
    assert "action_head.fc2.bias" in str(err.value)


def test_conflicting_duplicates_and_shapes_are_named(tiny):
    state = our_state_dict_to_official(tiny.state_dict())
    state["module.text.ln_final.weight"] = state["module.ln_final.weight"] + 1
    state["module.visual.proj"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as err:
        map_official_state_dict(state, tiny.state_dict())
    assert "module.text.ln_final.weight differs" in str(err.value)
    assert "module.visual.proj" in str(err.value)


def test_discrete_official_file(tmp_path):
    torch.manual_seed(4)
    model = create_model(load_model_config("cliprt-tiny-discrete"))
    path = tmp_path / "pretrained.pt"
    _official_file(path, our_state_dict_to_official(model.state_dict()))
    loaded, _ = load_model(path, model_config="cliprt-tiny-discrete")
    assert _same_weights(loaded, model)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10])
def test_garbage_and_empty_files(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="x.pt"):
        load_model(path)


def test_truncated_checkpoint(tiny, tmp_path):
    path = tmp_path / "model.pt"
    save_model_checkpoint(tiny, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_model(path)


def test_unrelated_torch_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="neither a cliprt checkpoint"):
        load_model(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_hub_id_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint("clip-rt/clip-rt-finetuned-libero-goal")
    assert "cliprt_libero_goal.pt" in str(err.value) and "huggingface-cli download" in str(err.value)


def test_hub_id_resolves_from_the_hub_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    repo = cache / "models--clip-rt--clip-rt-finetuned-libero-goal"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    _official_file(snapshot / "cliprt_libero_goal.pt",
                   our_state_dict_to_official(tiny.state_dict()))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    assert resolve_checkpoint("clip-rt/clip-rt-finetuned-libero-goal").name == "cliprt_libero_goal.pt"
    loaded, _ = load_model("clip-rt/clip-rt-finetuned-libero-goal", model_config="cliprt-tiny")
    assert _same_weights(loaded, tiny)


def test_unknown_hub_repo_needs_a_file_name():
    with pytest.raises(CheckpointError, match="owner/model:<file>.pt|'someone/model:<file>.pt'"):
        resolve_checkpoint("someone/model")


def test_published_clip_rt_plus_has_exactly_the_official_layout():
    """Official-checkpoint facts for the real ViT-H-14-378 CLIP-RT+, on the meta device (no memory):
    1581 keys (686 backbone, 293 ``text.``, 293 ``text2.`` + 293 top-level ``*2``, 16 head),
    1,350,195,976 parameters, and every key maps back one to one."""
    with torch.device("meta"):
        model = create_model(load_model_config("cliprt-plus-vit-h-14-378"))
    ours = model.state_dict()
    official = our_state_dict_to_official(ours)
    assert len(official) == 1581
    assert sum(p.numel() for p in model.parameters()) == 1_350_195_976
    groups = {"text.": 0, "text2.": 0, "action_head.": 0}
    for key in official:
        name = key.removeprefix("module.")
        for prefix in groups:
            groups[prefix] += name.startswith(prefix)
    assert groups == {"text.": 293, "text2.": 293, "action_head.": 16}
    assert official["module.text2.positional_embedding"].shape == (58, 1024)
    assert official["module.positional_embedding2"].shape == (58, 1024)
    assert official["module.visual.positional_embedding"].shape == (730, 1280)
    assert official["module.action_head.fc1.weight"].shape == (1024, 7168)
    assert set(map_official_state_dict(official, ours)) == set(ours)
    backbone = [k for k in ours if k.startswith("clip.")]
    assert len(backbone) == 686


@pytest.mark.parametrize("module", [b"numpy.core.multiarray", b"numpy._core.multiarray"])
def test_numpy_scalars_load_whichever_numpy_wrote_them(tmp_path, module):
    """numpy 2 pickles its scalars as numpy._core.multiarray.scalar, numpy 1 (the official
    files) as numpy.core.multiarray.scalar: both load, with weights_only=True."""
    from cliprt_core.checkpoint.safe_load import safe_torch_load

    path = tmp_path / "numpy.pt"
    torch.save({"lr": np.float64(5e-6)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()  # protocol 2: the GLOBAL opcode names its module as text
    assert b"cnumpy.core.multiarray\nscalar" in data
    path.write_bytes(data.replace(b"cnumpy.core.multiarray\n", b"c" + module + b"\n"))
    assert safe_torch_load(path) == {"lr": 5e-6}
