"""Image preprocessing as torch ops, and the orientation convention."""
import numpy as np
import torch

from cliprt_core.model.preprocessing import (CLIP_MEAN, CLIP_STD, center_crop, normalize,
                                             preprocess_eval, preprocess_train,
                                             resize_shortest_side)
from cliprt_core.orientation import libero_to_upright


def test_eval_resizes_shortest_side_then_center_crops():
    image = torch.zeros(1, 3, 100, 200)
    image[..., :, 50:150] = 1.0  # central square is white, the sides black
    out = center_crop(resize_shortest_side(image, 50), 50)
    assert out.shape == (1, 3, 50, 50)
    assert out[..., 5:-5, 5:-5].min() > 0.99  # the crop is the central region


def test_preprocess_eval_normalises_constant_image():
    gray = np.full((2, 32, 48, 3), 128, np.uint8)
    pixels = preprocess_eval(torch.from_numpy(gray), 16)
    assert pixels.shape == (2, 3, 16, 16) and pixels.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(pixels[0, :, 8, 8], expected, atol=1e-4)


def test_train_crop_is_random_and_seeded():
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    a = preprocess_train(image, 32, torch.Generator().manual_seed(1))
    b = preprocess_train(image, 32, torch.Generator().manual_seed(1))
    c = preprocess_train(image, 32, torch.Generator().manual_seed(2))
    assert a.shape == (3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= float(a.mean()) <= 1.0  # unnormalised, normalisation happens on device
    assert torch.allclose(normalize(a[None])[0] * torch.tensor(CLIP_STD).view(3, 1, 1)
                          + torch.tensor(CLIP_MEAN).view(3, 1, 1), a, atol=1e-6)


def test_libero_images_are_rotated_180_degrees():
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = [255, 0, 0]  # top-left red in LIBERO's upside-down render
    upright = libero_to_upright(image)
    assert upright[-1, -1].tolist() == [255, 0, 0] and upright[0, 0].tolist() == [0, 0, 0]
    batch = np.stack([image, image])
    assert np.array_equal(libero_to_upright(batch)[1], upright)
    assert upright.flags["C_CONTIGUOUS"]


def test_eval_preprocessing_matches_torchvision_resize_and_center_crop():
    """The eval transform is open_clip's Resize(S, bicubic) + CenterCrop(S) + Normalize,
    including torchvision's long-side size (int, not round: 100x151 -> 64x96, not 64x97)."""
    from cliprt_core.model.torchvision_compat import import_open_clip

    import_open_clip()  # torchvision importable on CPU-only machines
    from torchvision import transforms as T

    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (100, 151, 3), np.uint8))
    reference = T.Compose([
        T.Resize(64, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(64), T.Normalize(CLIP_MEAN, CLIP_STD)])
    expected = reference(image.permute(2, 0, 1).float() / 255.0)
    assert resize_shortest_side(image.permute(2, 0, 1)[None].float(), 64).shape[-2:] == (64, 96)
    torch.testing.assert_close(preprocess_eval(image[None], 64)[0], expected, atol=1e-5, rtol=0)
