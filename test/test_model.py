"""CLIP-RT model: the CLIP-RT+ decoder against an independent step-by-step implementation of the
forward pass of the official checkpoints, the discrete head, and configs."""
import math

import pytest
import torch
import torch.nn.functional as F

from cliprt_core.config import ConfigError
from cliprt_core.model import create_model, load_model_config
from cliprt_core.model.configuration import DEFAULT_PROMPT, CLIPRTConfig


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = create_model(load_model_config("cliprt-tiny")).eval()
    # Random but non-trivial LayerNorm / bias values so that the parity test sees every term.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_final.weight")):
                param.add_(torch.randn_like(param) * 0.1)
    return model


def _layer_norm(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], eps=1e-5)


def _reference_decoder(sd, img, inst, heads, layers, chunk, action_dim):
    """CHECKPOINTS.md 'Forward pass of the decoder', written out with plain tensor ops."""
    batch, width = img.shape
    img = img / img.norm(dim=-1, keepdim=True)
    inst = inst / inst.norm(dim=-1, keepdim=True)
    n_pad = chunk * action_dim
    pad = sd["decoder.token_embedding.weight"][torch.zeros(batch, n_pad, dtype=torch.long)]
    x = torch.cat([img[:, None], inst[:, None], pad], dim=1) + sd["decoder.positional_embedding"]
    head_dim = width // heads
    for i in range(layers):
        p = f"decoder.transformer.resblocks.{i}"
        h = _layer_norm(x, sd, p + ".ln_1")
        qkv = h @ sd[p + ".attn.in_proj_weight"].T + sd[p + ".attn.in_proj_bias"]
        q, k, v = qkv.split(width, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)  # no mask
        o = (attn @ v).transpose(1, 2).reshape(batch, -1, width)
        x = x + o @ sd[p + ".attn.out_proj.weight"].T + sd[p + ".attn.out_proj.bias"]
        h = _layer_norm(x, sd, p + ".ln_2")
        h = h @ sd[p + ".mlp.c_fc.weight"].T + sd[p + ".mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU
        x = x + h @ sd[p + ".mlp.c_proj.weight"].T + sd[p + ".mlp.c_proj.bias"]
    x = _layer_norm(x, sd, "decoder.ln_final") @ sd["decoder.text_projection"]
    x = x[:, 2:].reshape(batch, chunk, action_dim * x.shape[-1])
    h = _layer_norm(x, sd, "action_head.layer_norm1")
    h = torch.relu(h @ sd["action_head.fc1.weight"].T + sd["action_head.fc1.bias"])
    for b in range(2):
        p = f"action_head.mlp_resnet_blocks.{b}.ffn"
        r = _layer_norm(h, sd, p + ".0")
        h = h + torch.relu(r @ sd[p + ".1.weight"].T + sd[p + ".1.bias"])
    h = _layer_norm(h, sd, "action_head.layer_norm2")
    return h @ sd["action_head.fc2.weight"].T + sd["action_head.fc2.bias"]


def test_decoder_matches_step_by_step_reference(tiny_model):
    cfg = tiny_model.config
    torch.manual_seed(1)
    img = torch.randn(3, tiny_model.embed_dim)
    inst = torch.randn(3, tiny_model.embed_dim)
    with torch.no_grad():
        ours = tiny_model.predict_chunk(img, inst)
        sd = {k: v.double() for k, v in tiny_model.state_dict().items()}
        ref = _reference_decoder(sd, img.double(), inst.double(), cfg.decoder.heads,
                                 cfg.decoder.layers, cfg.chunk_size, cfg.action_dim)
    assert ours.shape == (3, 8, 7)
    assert torch.allclose(ours.double(), ref, atol=1e-5), (ours.double() - ref).abs().max()
    # The reference is sensitive: a different prompt gives a clearly different chunk.
    with torch.no_grad():
        other = tiny_model.predict_chunk(img, torch.randn(3, tiny_model.embed_dim))
    assert (other - ours).abs().max() > 1e-3


def test_full_forward_uses_image_and_prompt(tiny_model):
    torch.manual_seed(2)
    pixels = torch.randn(2, 3, 64, 64)
    tokens = tiny_model.tokenize_prompts(["pick up the bowl", "open the drawer"])
    with torch.no_grad():
        chunk = tiny_model(pixels, tokens)
        expected = tiny_model.predict_chunk(tiny_model.encode_image(pixels),
                                            tiny_model.encode_text(tokens))
    assert chunk.shape == (2, 8, 7)
    assert torch.equal(chunk, expected)
    assert not torch.allclose(chunk[0], chunk[1])


def test_discrete_head_context_and_scores():
    torch.manual_seed(0)
    model = create_model(load_model_config("cliprt-tiny-discrete")).eval()
    assert model.decoder is None and model.action_head is None
    img, txt = torch.randn(2, 64), torch.randn(2, 64)
    ctx = model.context(img, txt)
    assert torch.allclose(ctx, (img + txt) / (img + txt).norm(dim=-1, keepdim=True), atol=1e-6)
    prims = torch.randn(5, 64)
    logits = model.primitive_logits(img, txt, prims)
    expected = ctx @ (prims / prims.norm(dim=-1, keepdim=True)).T
    assert torch.allclose(logits, expected, atol=1e-6)
    with pytest.raises(RuntimeError, match="discrete head"):
        model.predict_chunk(img, txt)


def test_logit_scale_clamp():
    model = create_model(load_model_config("cliprt-tiny-discrete"))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_prompt_is_lower_cased_template():
    cfg = CLIPRTConfig()
    assert cfg.prompt("  Put the BOWL on the plate ") == DEFAULT_PROMPT.format(
        "put the bowl on the plate")
    assert cfg.prompt("x").startswith("what motion should the robot arm perform")


def test_real_architecture_configs_parse():
    plus = load_model_config("cliprt-plus-vit-h-14-378")
    assert (plus.backbone, plus.head, plus.decoder.layers, plus.decoder.heads) == (
        "ViT-H-14-378-quickgelu", "chunk", 24, 16)
    assert plus.num_action_tokens == 56 and plus.action_head.hidden_dim == 1024
    assert load_model_config("cliprt-vit-h-14-378").head == "discrete"


def test_model_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhead: chunk\ndecoder: {layers: 2, heads: 2, depth: 3}\n")
    with pytest.raises(ConfigError, match="decoder.depth"):
        load_model_config(bad)
    with pytest.raises(FileNotFoundError, match="cliprt-tiny"):
        load_model_config("no-such-model")
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        create_model(CLIPRTConfig(backbone="ViT-Nope-1"))
