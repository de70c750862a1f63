"""PG2's pose-mask L1 and the VGG19 perceptual loss (loading torchvision-named weights from a file)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from train.config import load_config
from train.fit import fit
from train.losses import pose_mask_l1_loss
from train.vgg import (
    PIX2PIXHD_LAYER_WEIGHTS,
    VGG19Features,
    VGGPerceptualLoss,
    VGGWeightsError,
    load_vgg19_features,
)

TINY = [
    "generator.ngf=4", "generator.n_downsample=2", "generator.n_blocks=1", "discriminator.ndf=4",
    "discriminator.n_layers=2", "discriminator.n_scales=1", "sample_every=100", "threads=1", "log_every=1",
]  # fmt: skip

#: torchvision's ``vgg19().features`` conv layer indices and shapes (out, in); the classifier is 3 linears.
TORCHVISION_VGG19_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
    16: (256, 256), 19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512), 28: (512, 512),
    30: (512, 512), 32: (512, 512), 34: (512, 512),
}  # fmt: skip


def test_pose_mask_l1_known_answer() -> None:
    generated = torch.zeros(1, 3, 2, 2)
    real = torch.full((1, 3, 2, 2), 0.5)
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])  # (1, 1, 2, 2)
    # per pixel |0 - 0.5| * (1 + M): 1.0, 0.5, 0.75, 0.5 -> mean 0.6875 (the same in each channel)
    assert pose_mask_l1_loss(generated, real, mask).item() == pytest.approx(0.6875)
    assert pose_mask_l1_loss(generated, real, torch.zeros_like(mask)).item() == pytest.approx(0.5)
    assert pose_mask_l1_loss(real, real, mask).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        pose_mask_l1_loss(generated, real[..., :1], mask)
    with pytest.raises(ValueError, match="mask must be"):
        pose_mask_l1_loss(generated, real, mask[0])


def fake_torchvision_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialized state dict with torchvision ``vgg19``'s keys and shapes."""
    rng = torch.Generator().manual_seed(seed)
    state = {}
    for index, (out_channels, in_channels) in TORCHVISION_VGG19_CONVS.items():
        state[f"features.{index}.weight"] = 0.05 * torch.randn(out_channels, in_channels, 3, 3, generator=rng)
        state[f"features.{index}.bias"] = 0.01 * torch.randn(out_channels, generator=rng)
    for index, (out_features, in_features) in {0: (8, 16), 3: (8, 8), 6: (10, 8)}.items():  # small stand-ins
        state[f"classifier.{index}.weight"] = torch.randn(out_features, in_features, generator=rng)
        state[f"classifier.{index}.bias"] = torch.randn(out_features, generator=rng)
    return state


def test_vgg19_features_have_torchvision_key_names() -> None:
    keys = set(VGG19Features().state_dict())
    assert keys == {k for k in fake_torchvision_state() if k.startswith("features.")}


def test_vgg_weights_load_from_a_torchvision_state_dict(tmp_path: Path) -> None:
    state = fake_torchvision_state()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    features = load_vgg19_features(path)
    assert not features.training and not any(p.requires_grad for p in features.parameters())
    for key, value in features.state_dict().items():
        assert torch.equal(value, state[key])
    loss = VGGPerceptualLoss(features)
    image = torch.rand(2, 3, 32, 32)
    assert loss(image, image).item() == 0.0
    other = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(other, image)
    value.backward()
    assert value.item() > 0 and other.grad is not None
    # Known answer: pix2pixHD's weighted sum of L1 distances of the five slices (ImageNet-normalized input).
    normalize = lambda x: (x - loss.mean) / loss.std  # noqa: E731
    with torch.no_grad():
        fake_slices, real_slices = features.slices(normalize(other)), features.slices(normalize(image))
        expected = sum(
            w * F.l1_loss(a, b)
            for w, a, b in zip(PIX2PIXHD_LAYER_WEIGHTS, fake_slices, real_slices, strict=True)
        )
    assert value.item() == pytest.approx(float(expected), rel=1e-5)
    assert [s.shape[1] for s in fake_slices] == [64, 128, 256, 512, 512]


def test_vgg_weights_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VGGWeightsError, match="no VGG19 weights file.*torchvision.models.vgg19"):
        load_vgg19_features(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(VGGWeightsError, match="cannot read"):
        load_vgg19_features(garbage)
    other = tmp_path / "other.pth"
    torch.save({"model.0.weight": torch.zeros(1)}, other)
    with pytest.raises(VGGWeightsError, match="not torchvision's vgg19"):
        load_vgg19_features(other)
    state = fake_torchvision_state()
    del state["features.34.weight"]
    torch.save(state, other)
    with pytest.raises(VGGWeightsError, match="does not fit"):
        load_vgg19_features(other)


def test_fit_uses_the_vgg_loss_with_a_weights_file_and_says_once_when_off(
    tiny_prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vgg19.pth"
    torch.save(fake_torchvision_state(), path)
    with caplog.at_level(logging.INFO, logger="train.fit"):
        fit(
            tiny_prepared,
            tmp_path / "with",
            load_config(None, [*TINY, "steps=1", f"loss.vgg_weights={path}"]),
        )
    assert "VGG perceptual loss on" in caplog.text
    metrics = (tmp_path / "with" / "global" / "metrics.jsonl").read_text()
    assert '"loss_g_vgg"' in metrics
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train.fit"):
        two_stages = ["steps=1", "stages=[global,face]", "face.steps=1", "face.ngf=4", "face.ndf=4"]
        fit(tiny_prepared, tmp_path / "without", load_config(None, [*TINY, *two_stages]))
    assert caplog.text.count("VGG perceptual loss is off: no VGG19 weights file given") == 1
    with pytest.raises(VGGWeightsError, match="no VGG19 weights file"):
        fit(tiny_prepared, tmp_path / "bad", load_config(None, [*TINY, "loss.vgg_weights=/nonexistent.pth"]))
