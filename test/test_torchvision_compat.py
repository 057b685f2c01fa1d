"""The torchvision op-schema workaround: open_clip imports and CLIP runs in a fresh process."""
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_open_clip_imports_and_runs_in_a_fresh_process():
    code = (
        "from cliprt_core.model.torchvision_compat import import_open_clip\n"
        "open_clip = import_open_clip()\n"
        "import torch, torchvision\n"
        "m = open_clip.create_model('ViT-B-32', pretrained=None).eval()\n"
        "with torch.no_grad():\n"
        "    e = m.encode_image(torch.zeros(1, 3, 224, 224))\n"
        "print(tuple(e.shape), hasattr(torch.ops.torchvision, 'nms'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(1,", "512)", "True"]
