"""Generators that composite over the background plate (``GeneratorSpec.composite_over``,
realtime/model/nets.py): the output is the plate where the alpha is very negative and the foreground where it
is very positive, for every kind that can take it; the spec's checks and its files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from realtime.model.inputs import (
    PREVIOUS_FRAME,
    STICK_FIGURE,
    GeneratorInputs,
    InputRole,
    TensorSpec,
    declare_input,
    forget_input,
)
from realtime.model.nets import (
    DownscaledGenerator,
    GeneratorSpec,
    GlobalGenerator,
    LocalEnhancer,
    MobileGenerator,
    build_network,
    composite,
    load_weights,
    save_weights,
)
from realtime.model.plate import BACKGROUND_PLATE

PLATE_INPUTS = GeneratorInputs((STICK_FIGURE, PREVIOUS_FRAME, BACKGROUND_PLATE))
H, W = 32, 48


def _spec(kind: str) -> GeneratorSpec:
    return GeneratorSpec(
        kind, ngf=4, n_downsample=2, n_blocks=1, n_blocks_local=1 if kind == "local" else 0,
        inputs=PLATE_INPUTS, composite_over="background_plate",
    )  # fmt: skip


def _output_conv(generator: nn.Module) -> tuple[nn.Conv2d, slice, slice]:
    """The last conv, and the slices of its output channels that become the foreground and the alpha."""
    if isinstance(generator, MobileGenerator):
        conv = generator.output[0]  # pixel shuffle: output channel c reads 4c to 4c + 3
        return conv, slice(0, 12), slice(12, 16)
    if isinstance(generator, LocalEnhancer):
        conv = generator.local_back[-2]
    else:
        assert isinstance(generator, GlobalGenerator)
        conv = generator.model[-2]
    assert isinstance(conv, nn.Conv2d) and conv.out_channels == 4
    return conv, slice(0, 3), slice(3, 4)


@pytest.mark.parametrize("kind", ["global", "local", "mobile"])
def test_the_output_is_the_plate_or_the_foreground_as_alpha_says(kind: str) -> None:
    torch.manual_seed(0)
    generator = build_network(_spec(kind)).eval()
    conv, foreground, alpha = _output_conv(generator)
    plate = torch.rand(2, 3, H, W)
    inputs = (torch.rand(2, 3, H, W), torch.rand(2, 3, H, W), plate)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[foreground] = 0.4  # foreground (tanh(0.4) + 1) / 2 everywhere
        conv.bias[alpha] = -40.0
        assert torch.allclose(generator(*inputs), plate, atol=1e-6)
        conv.bias[alpha] = 40.0
        expected = torch.full_like(plate, (float(torch.tanh(torch.tensor(0.4))) + 1) / 2)
        assert torch.allclose(generator(*inputs), expected, atol=1e-6)
        conv.bias[alpha] = 0.0  # half and half
        assert torch.allclose(generator(*inputs), 0.5 * (plate + expected), atol=1e-6)
        # Another plate changes the frame where the alpha lets it through.
        other = generator(*inputs[:2], torch.zeros_like(plate))
        assert torch.allclose(other, 0.5 * expected, atol=1e-6)


def test_composite_formula_and_alpha_range() -> None:
    raw = torch.tensor([0.0, 0.0, 0.0, 2.0]).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    background = torch.full((1, 3, 2, 2), 0.2)
    frame, alpha = composite(raw, background)
    a = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(alpha, a.expand(1, 1, 2, 2))
    assert torch.allclose(frame, 0.2 + a * (0.5 - 0.2))


def test_the_alpha_is_kept_for_its_loss_in_training_only() -> None:
    generator = build_network(_spec("global"))
    inputs = tuple(torch.rand(1, 3, H, W) for _ in range(3))
    generator.eval()
    generator(*inputs)
    assert generator.last_alpha is None
    generator.train()
    generator(*inputs)
    alpha = generator.last_alpha
    assert alpha is not None and alpha.shape == (1, 1, H, W) and alpha.requires_grad
    assert 0.0 <= float(alpha.detach().min()) and float(alpha.detach().max()) <= 1.0


def test_a_half_size_global_generator_composites_too() -> None:
    generator = build_network(dataclasses.replace(_spec("global"), downscale=2))
    assert isinstance(generator, DownscaledGenerator)
    with torch.no_grad():
        out = generator.eval()(*(torch.rand(1, 3, H, W) for _ in range(3)))
    assert out.shape == (1, 3, H, W) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_the_local_enhancer_loads_a_compositing_global_generator() -> None:
    g1 = build_network(_spec("global"))
    enhancer = build_network(_spec("local"))
    assert isinstance(enhancer, LocalEnhancer)
    enhancer.load_global(g1.state_dict())
    torch.testing.assert_close(enhancer.global_model[1].weight, g1.model[1].weight)


def test_the_spec_checks_composite_over() -> None:
    with pytest.raises(ValueError, match="must name a per-target input"):
        GeneratorSpec("global", 4, 2, 1, composite_over="background_plate")  # not among the inputs
    with pytest.raises(ValueError, match="must name a per-target input"):
        GeneratorSpec("global", 4, 2, 1, inputs=PLATE_INPUTS, composite_over="stick_figure")
    gray = TensorSpec("gray_plate", 1, InputRole.PER_TARGET, "test input: one channel")
    declare_input(gray, lambda frames: None, replace=True)  # type: ignore[arg-type, return-value]
    try:
        with pytest.raises(ValueError, match="with 3 channels"):
            GeneratorSpec(
                "global", 4, 2, 1, inputs=GeneratorInputs((STICK_FIGURE, gray)), composite_over="gray_plate"
            )
    finally:
        forget_input(gray.name)
    with pytest.raises(ValueError, match="two backgrounds"):
        GeneratorSpec(
            "mobile", 4, 2, 1, inputs=PLATE_INPUTS, background_hw=(H, W), composite_over="background_plate"
        )
    with pytest.raises(ValueError, match="cannot composite"):
        GeneratorSpec("face", 4, 2, 1, inputs=PLATE_INPUTS, composite_over="background_plate")


def test_the_spec_round_trips_and_older_files_read(tmp_path: Path) -> None:
    spec = _spec("mobile")
    assert GeneratorSpec.from_json(spec.to_json()) == spec
    older = spec.to_json()
    del older["composite_over"]
    assert GeneratorSpec.from_json(older).composite_over == ""
    generator = build_network(_spec("global"))
    path = save_weights(tmp_path / "g.pt", generator)
    loaded = load_weights(path)
    assert loaded.spec == generator.spec and loaded.spec.composite_over == "background_plate"
    inputs = tuple(torch.rand(1, 3, H, W) for _ in range(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs), generator.eval()(*inputs))


@pytest.mark.parametrize("kind", ["global", "local", "mobile"])
def test_with_a_prior_blend_the_person_is_blended_first_then_composited(kind: str) -> None:
    # Last conv: RGB, the prior's weight, the alpha logit. The person is the prior where the weight says
    # trust and the prior covers; the frame is the plate or that person as the alpha says. (The mobile
    # generator's last conv predicts each channel as 4 sub-pixels that a pixel shuffle rearranges.)
    from realtime.model.appearance import APPEARANCE_PRIOR

    inputs = GeneratorInputs((STICK_FIGURE, PREVIOUS_FRAME, APPEARANCE_PRIOR, BACKGROUND_PLATE))
    spec = GeneratorSpec(
        kind, ngf=4, n_downsample=2, n_blocks=1, n_blocks_local=1 if kind == "local" else 0, inputs=inputs,
        blend_prior="appearance_prior", composite_over="background_plate",
    )  # fmt: skip
    torch.manual_seed(0)
    generator = build_network(spec).eval()
    conv = {"local": lambda: generator.local_back[-2], "global": lambda: generator.model[-2],
            "mobile": lambda: generator.output[0]}[kind]()  # fmt: skip
    subpixels = 4 if kind == "mobile" else 1
    assert isinstance(conv, nn.Conv2d) and conv.out_channels == 5 * subpixels

    def bias(channel: int, value: float) -> None:
        conv.bias[channel * subpixels : (channel + 1) * subpixels] = value

    prior = torch.rand(1, 4, H, W)
    prior[:, 3, :, : W // 2] = 1.0  # covered on the left half only
    prior[:, 3, :, W // 2 :] = 0.0
    prior[:, :3] *= prior[:, 3:4]
    plate = torch.rand(1, 3, H, W)
    frame = (torch.rand(1, 3, H, W), torch.rand(1, 3, H, W), prior, plate)
    generated = (float(torch.tanh(torch.tensor(0.4))) + 1) / 2
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for channel in range(3):
            bias(channel, 0.4)
        bias(3, 40.0)  # trust the prior
        bias(4, 40.0)  # the person everywhere
        out = generator(*frame)
        torch.testing.assert_close(out[..., : W // 2], prior[:, :3, :, : W // 2])
        torch.testing.assert_close(out[..., W // 2 :], torch.full_like(out[..., W // 2 :], generated))
        # A closed alpha: the plate, except where the prior is trusted and covers (the left half): that is
        # the person by construction, and is not faded into the plate.
        bias(4, -40.0)
        out = generator(*frame)
        torch.testing.assert_close(out[..., : W // 2], prior[:, :3, :, : W // 2])
        torch.testing.assert_close(out[..., W // 2 :], plate[..., W // 2 :])
        bias(3, -40.0)  # no trust in the prior, half alpha
        bias(4, 0.0)
        torch.testing.assert_close(generator(*frame), 0.5 * (plate + generated))
