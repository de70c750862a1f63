"""Generator, discriminator and losses: shapes, ranges, errors, known values, ONNX export parity."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from realtime.model.nets import GeneratorSpec, MobileGenerator, load_weights, save_weights
from train.config import DiscriminatorConfig, FaceConfig, GeneratorConfig, load_config, student_config
from train.losses import feature_matching_loss, l1_loss, lsgan_loss
from train.models import (
    DownscaledGenerator,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    build_discriminator,
    build_face_discriminator,
    build_face_generator,
    build_generator,
    build_local_enhancer,
    downsample_half,
)

ONNX_TOLERANCE = 1e-4  # max abs difference, frames in [0, 1]


def tiny_generator(temporal: bool = True) -> GlobalGenerator:
    torch.manual_seed(0)
    return build_generator(GeneratorConfig(ngf=8, n_downsample=2, n_blocks=2, temporal=temporal))


@pytest.mark.parametrize("temporal", [True, False])
def test_generator_shape_and_range(temporal: bool) -> None:
    generator = tiny_generator(temporal)
    stick, previous = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    out = generator(stick, previous) if temporal else generator(stick)
    assert out.shape == (2, 3, 32, 48) and out.dtype == torch.float32
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0


def test_generator_temporal_uses_previous_frame_and_non_temporal_takes_only_the_stick_figure() -> None:
    stick = torch.rand(1, 3, 32, 32)
    temporal = tiny_generator(True)
    # (random previous frames: a constant one only shifts the first conv's output, which InstanceNorm removes)
    previous_a, previous_b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert not torch.allclose(temporal(stick, previous_a), temporal(stick, previous_b))
    single = tiny_generator(False)
    assert single.inputs.names == ("stick_figure",) and temporal.inputs.names == (
        "stick_figure",
        "previous_frame",
    )
    with pytest.raises(ValueError, match="takes 1 inputs"):
        single(stick, previous_a)
    assert temporal.model[1].in_channels == 6 and single.model[1].in_channels == 3


def test_generator_rejects_bad_inputs() -> None:
    generator = tiny_generator(True)  # n_downsample=2: sides must be multiples of 4
    with pytest.raises(ValueError, match="divisible by 4"):
        generator(torch.rand(1, 3, 30, 32), torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="previous_frame"):
        generator(torch.rand(1, 3, 32, 32))  # "takes 2 inputs ['stick_figure', 'previous_frame'], got 1"
    with pytest.raises(ValueError, match="must match"):
        generator(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 64))
    with pytest.raises(ValueError, match="float32"):
        generator(torch.rand(1, 3, 32, 32, dtype=torch.float64), torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("temporal, channels", [(True, 12), (False, 6)])
def test_discriminator_outputs_per_scale(temporal: bool, channels: int) -> None:
    discriminator = build_discriminator(DiscriminatorConfig(ndf=8, n_layers=3, n_scales=3), temporal=temporal)
    outputs = discriminator(torch.rand(2, channels, 64, 64))
    assert len(outputs) == 3
    for features in outputs:
        assert len(features) == 3 + 2
        assert features[-1].shape[:2] == (2, 1)
        assert [f.shape[1] for f in features[:-1]] == [8, 16, 32, 64]
    assert outputs[1][-1].shape[-1] < outputs[0][-1].shape[-1]  # coarser scale, smaller patch grid
    with pytest.raises(ValueError, match=f"\\(B, {channels}, H, W\\)"):
        discriminator(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="in_channels"):
        MultiscaleDiscriminator(in_channels=9)


def fake_outputs(value: float, scales: int = 2, layers: int = 3) -> list[list[torch.Tensor]]:
    return [
        [torch.full((1, 4, 5, 5), value) for _ in range(layers + 1)] + [torch.full((1, 1, 3, 3), value)]
    ] * scales


def test_lsgan_loss_known_values() -> None:
    assert lsgan_loss(fake_outputs(1.0), target_is_real=True).item() == 0.0
    assert lsgan_loss(fake_outputs(0.0), target_is_real=False).item() == 0.0
    assert lsgan_loss(fake_outputs(0.0), target_is_real=True).item() == pytest.approx(1.0)
    assert lsgan_loss(fake_outputs(0.5), target_is_real=False).item() == pytest.approx(0.25)


def test_feature_matching_loss_known_values() -> None:
    assert feature_matching_loss(fake_outputs(0.3), fake_outputs(0.3)).item() == 0.0
    # each of 4 intermediate maps differs by 0.5, weight 4/4 per layer, 1/2 per scale, 2 scales: 4 * 0.5 = 2
    assert feature_matching_loss(fake_outputs(0.5), fake_outputs(0.0)).item() == pytest.approx(2.0)
    # the last map (the prediction) is not matched
    real = fake_outputs(0.0)
    fake = [scale[:-1] + [torch.ones_like(scale[-1])] for scale in real]
    assert feature_matching_loss(fake, real).item() == 0.0


def test_feature_matching_detaches_real_features() -> None:
    real = [[torch.rand(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    fake = [[torch.rand(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    feature_matching_loss(fake, real).backward()
    assert all(t.grad is None for t in real[0]) and fake[0][0].grad is not None


def test_l1_loss() -> None:
    assert l1_loss(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.25)).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shapes differ"):
        l1_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 8))


def export_onnx(generator: GlobalGenerator, path: str) -> None:
    """The export call the export module makes (TorchScript exporter: ``dynamo=False``)."""
    stick, previous = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            generator,
            (stick, previous),
            path,
            input_names=["stick_figure", "previous_frame"],
            output_names=["frame"],
            dynamic_axes={
                "stick_figure": {0: "batch"},
                "previous_frame": {0: "batch"},
                "frame": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def test_onnx_export_matches_torch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    generator = tiny_generator(True).eval()
    path = str(tmp_path / "generator.onnx")
    export_onnx(generator, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["stick_figure", "previous_frame"]
    stick, previous = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)  # batch 2: the batch axis is dynamic
    (onnx_frame,) = session.run(
        ["frame"], {"stick_figure": stick.numpy(), "previous_frame": previous.numpy()}
    )
    with torch.no_grad():
        torch_frame = generator(stick, previous).numpy()
    error = float(np.abs(onnx_frame - torch_frame).max())
    print(f"ONNX Runtime vs torch, 64x64 temporal generator: max abs error {error:.3g}")
    assert error < ONNX_TOLERANCE


def test_onnx_export_non_temporal_takes_its_declared_input_only(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    generator = tiny_generator(False).eval()
    path = str(tmp_path / "generator.onnx")
    stick = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator, (stick,), path, input_names=["stick_figure"], output_names=["frame"], opset_version=17,
            dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["stick_figure"]
    (onnx_frame,) = session.run(["frame"], {"stick_figure": stick.numpy()})
    with torch.no_grad():
        assert float(np.abs(onnx_frame - generator(stick).numpy()).max()) < ONNX_TOLERANCE


def tiny_local_enhancer(temporal: bool = True) -> LocalEnhancer:
    torch.manual_seed(0)
    config = load_config(
        None,
        ["generator.ngf=8", "generator.n_downsample=2", "generator.n_blocks=2", "local.n_blocks=1",
         f"generator.temporal={str(temporal).lower()}", "stages=[global,local]"],
    )  # fmt: skip
    return build_local_enhancer(config)


@pytest.mark.parametrize("temporal", [True, False])
def test_local_enhancer_shape_range_and_size_multiple(temporal: bool) -> None:
    enhancer = tiny_local_enhancer(temporal)
    assert enhancer.size_multiple_px == 8  # G1 sees half the size and downsamples twice
    n_inputs = 2 if temporal else 1
    out = enhancer(*torch.rand(n_inputs, 2, 3, 32, 48))
    assert out.shape == (2, 3, 32, 48) and 0.0 <= out.min().item() and out.max().item() <= 1.0
    with pytest.raises(ValueError, match="divisible by 8"):
        enhancer(*torch.rand(n_inputs, 1, 3, 36, 32))
    assert enhancer.local_front[1].in_channels == (6 if temporal else 3)
    with pytest.raises(ValueError, match="even ngf"):
        LocalEnhancer(GeneratorSpec("local", ngf=5, n_downsample=2, n_blocks=1, n_blocks_local=1))


def test_local_enhancer_loads_a_global_generator_strictly() -> None:
    global_generator = tiny_generator(True)
    enhancer = tiny_local_enhancer(True)
    enhancer.load_global(global_generator.state_dict())
    # G1's layers are the global generator's, and its coarse output feeds G2 (pix2pixHD's LocalEnhancer).
    x = torch.rand(1, 6, 16, 16)
    with torch.no_grad():
        expected = global_generator.model[: len(enhancer.global_model)](x)
        assert torch.equal(enhancer.global_model(x), expected)
    wrong = build_generator(GeneratorConfig(ngf=8, n_downsample=2, n_blocks=3, temporal=True))
    with pytest.raises(ValueError, match="do not fit"):
        enhancer.load_global(wrong.state_dict())
    with pytest.raises(ValueError, match="not a GlobalGenerator"):
        enhancer.load_global({"net.0.weight": torch.zeros(1)})


def test_downscaled_generator_runs_a_half_size_generator_at_full_size() -> None:
    generator = tiny_generator(True)
    wrapped = DownscaledGenerator(generator).eval()
    stick, previous = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = wrapped(stick, previous)
        small = generator(downsample_half(stick), downsample_half(previous))
    assert out.shape == (1, 3, 32, 32) and wrapped.size_multiple_px == 8
    assert torch.allclose(downsample_half(out).mean(), small.mean(), atol=0.02)


def test_face_generator_residual_starts_at_zero_and_checks_inputs() -> None:
    torch.manual_seed(0)
    face = build_face_generator(FaceConfig(ngf=4, n_downsample=2, n_blocks=1))
    crops = torch.rand(2, 3, 12, 12)
    assert torch.equal(face(crops, crops), torch.zeros_like(crops))
    assert torch.equal(face.refine(crops, crops), crops)
    torch.nn.init.normal_(face.model[-2].weight, 0, 0.5)
    residual = face(crops, torch.rand(2, 3, 12, 12))
    assert residual.shape == (2, 3, 12, 12) and residual.abs().max() > 0 and residual.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible by 4"):
        face(torch.rand(1, 3, 10, 10), torch.rand(1, 3, 10, 10))
    with pytest.raises(ValueError, match="must match"):
        face(torch.rand(1, 3, 12, 12), torch.rand(1, 3, 8, 8))
    discriminator = build_face_discriminator(FaceConfig(ndf=4, n_layers=2, n_scales=1))
    assert discriminator(torch.rand(1, 6, 12, 12))[0][-1].shape[:2] == (1, 1)


def tiny_mobile(temporal: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator(
        GeneratorConfig(kind="mobile", ngf=4, n_downsample=3, n_blocks=2, temporal=temporal)
    )


def test_mobile_generator_shape_range_inputs_and_checks() -> None:
    generator = tiny_mobile(True)
    assert isinstance(generator, MobileGenerator) and generator.spec.kind == "mobile"
    assert generator.size_multiple_px == 8 and generator.stem[0].in_channels == 6
    stick, previous = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    out = generator(stick, previous)
    assert out.shape == (2, 3, 32, 48) and out.dtype == torch.float32
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0
    assert not torch.allclose(out, generator(stick, torch.rand(2, 3, 32, 48)))  # the previous frame matters
    single = tiny_mobile(False)
    assert single.inputs.names == ("stick_figure",) and single.stem[0].in_channels == 3
    with pytest.raises(ValueError, match="divisible by 8"):
        generator(torch.rand(1, 3, 36, 32), torch.rand(1, 3, 36, 32))
    with pytest.raises(ValueError, match="previous_frame"):
        generator(torch.rand(1, 3, 32, 32))


def test_mobile_generator_is_several_times_lighter_than_the_bundled_architecture() -> None:
    """The bundled mannequin's teacher against its student (mannequin.yaml's generator and student):
    parameters and multiply-adds per 256x256 frame (counted over every conv) at least 5x fewer (measured:
    3.10M vs 0.52M parameters, 1.37 vs 0.19 GMACs)."""

    def macs(model: torch.nn.Module) -> int:
        total = 0

        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            nonlocal total
            if isinstance(module, torch.nn.Conv2d):
                kh, kw = module.kernel_size
                total += out.numel() * module.in_channels // module.groups * kh * kw
            elif isinstance(module, torch.nn.ConvTranspose2d):
                kh, kw = module.kernel_size
                total += args[0].numel() * module.out_channels * kh * kw

        handles = [m.register_forward_hook(hook) for m in model.modules()]
        with torch.no_grad():
            model(*(torch.rand(1, item.channels, 256, 256) for item in model.inputs.inputs))
        for handle in handles:
            handle.remove()
        return total

    config = load_config("train/configs/mannequin.yaml")
    bundled, mobile = config.generator, student_config(config).generator
    assert mobile.kind == "mobile" and bundled.kind == "global"
    big, small = build_generator(bundled), build_generator(mobile)
    assert isinstance(small, MobileGenerator)
    n_big, n_small = (sum(p.numel() for p in m.parameters()) for m in (big, small))
    macs_big, macs_small = macs(big), macs(small)
    print(
        f"parameters {n_big} vs {n_small}; "
        f"GMACs per 256x256 frame {macs_big / 1e9:.3f} vs {macs_small / 1e9:.3f}"
    )
    assert n_small * 5 < n_big and macs_small * 5 < macs_big


def test_mobile_generator_composites_over_its_learned_background() -> None:
    """vid2vid's foreground-background prior: alpha 0 gives the learned background, alpha 1 the predicted
    foreground; another input size gets the background resized; the spec round-trips through JSON."""
    torch.manual_seed(0)
    generator = build_generator(
        GeneratorConfig(
            kind="mobile", ngf=4, n_downsample=3, n_blocks=1, temporal=False, background_hw=(32, 48)
        )
    ).eval()
    assert isinstance(generator, MobileGenerator) and generator.learned_background
    room = torch.rand(5, 3, 32, 48)
    generator.init_background(room)
    assert torch.equal(generator.background, room.median(dim=0, keepdim=True).values)
    conv = generator.output[0]
    stick = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[12:] = -40.0  # the alpha channel 3 (pixel shuffle: output channel c reads 4c to 4c + 3)
        assert torch.allclose(generator(stick), generator.background.expand(2, -1, -1, -1), atol=1e-6)
        conv.bias[12:] = 40.0  # alpha 1: the foreground, tanh(0) -> 0.5
        assert torch.allclose(generator(stick), torch.full((2, 3, 32, 48), 0.5), atol=1e-6)
        conv.bias[12:] = -40.0
        small = generator(torch.rand(1, 3, 16, 24))
    expected = torch.nn.functional.interpolate(generator.background, size=(16, 24), mode="bilinear")
    assert torch.allclose(small, expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"frames must be \(N, 3, 32, 48\)"):
        generator.init_background(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="no learned background"):
        tiny_mobile(False).init_background(room)
    assert GeneratorSpec.from_json(generator.spec.to_json()) == generator.spec
    with pytest.raises(ValueError, match="needs generator kind 'mobile'"):
        GeneratorSpec("global", 4, 2, 1, background_hw=(32, 32))
    with pytest.raises(ValueError, match="background_hw must be"):
        GeneratorSpec("mobile", 4, 2, 1, background_hw=(32, 0))
    with pytest.raises(ValueError, match="needs kind 'mobile'"):
        GeneratorConfig(background_hw=(32, 32))
    for wrong in (256, (256,), ("a", 3), (-1, 4)):
        with pytest.raises(ValueError, match=r"generator.background_hw must be \[H, W\]"):
            GeneratorConfig(kind="mobile", background_hw=wrong)  # type: ignore[arg-type]


def test_mobile_generator_onnx_export_and_weights_file(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    generator = tiny_mobile(True).eval()
    path = str(tmp_path / "mobile.onnx")
    export_onnx(generator, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    stick, previous = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    (onnx_frame,) = session.run(
        ["frame"], {"stick_figure": stick.numpy(), "previous_frame": previous.numpy()}
    )
    with torch.no_grad():
        torch_frame = generator(stick, previous)
    assert float(np.abs(onnx_frame - torch_frame.numpy()).max()) < ONNX_TOLERANCE
    save_weights(tmp_path / "mobile.pt", generator)
    loaded = load_weights(tmp_path / "mobile.pt")
    assert isinstance(loaded, MobileGenerator) and loaded.spec == generator.spec
    with torch.no_grad():
        assert torch.equal(loaded(stick, previous), torch_frame)


def test_mobile_generator_cannot_take_a_local_stage() -> None:
    with pytest.raises(ValueError, match="generator.kind must be 'global' with a local stage"):
        load_config(None, ["generator.kind=mobile", "stages=[global,local]"])
    with pytest.raises(ValueError, match="generator.kind must be one of"):
        load_config(None, ["generator.kind=tiny"])


def test_generator_spec_documents_every_registered_kind() -> None:
    """The docstring of GeneratorSpec.kind names each architecture of the registry with its class, and the
    training config only offers registered ones."""
    from realtime.model.nets import NETWORKS
    from train.config import GENERATOR_KINDS

    doc = " ".join((GeneratorSpec.__doc__ or "").split())
    for kind, factory in NETWORKS.items():
        assert f'"{kind}" (:class:`{getattr(factory, "__name__", "")}`)' in doc, kind
    assert set(GENERATOR_KINDS) <= set(NETWORKS)
