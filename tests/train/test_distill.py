"""Distillation from a trained target (the teacher) into the generator being trained, and the light CPU
generator trained that way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared
from realtime.model.inputs import GeneratorInputs
from realtime.model.nets import load_weights
from realtime.model.pipeline import Target
from train.checkpoint import load_checkpoint
from train.config import load_config
from train.dataset import FramePairs, load_prepared
from train.fit import fit
from train.models import build_discriminator, build_generator, generator_inputs
from train.stages import Teacher, main_stage_losses

pytest.importorskip("onnxruntime")


def _batch(data_dir: Path, inputs: GeneratorInputs) -> dict[str, torch.Tensor]:
    pairs = FramePairs(load_prepared(data_dir), "train", inputs=inputs)
    return {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in pairs[0].items()}


def test_teacher_unroll_is_the_engine_run_on_the_two_step_unroll(tiny_engine: Path, tmp_path: Path) -> None:
    data = make_tiny_prepared(tmp_path / "prepared")
    inputs = GeneratorInputs.of(["stick_figure", "previous_frame"])
    teacher = Teacher.load(tiny_engine, inputs, (64, 64), threads=1)
    batch = _batch(data, inputs)
    teacher_prev, teacher_frame = teacher.unroll(batch)
    target = Target.load(tiny_engine)
    zeros = torch.zeros_like(batch["frame"])
    expected_prev = target.generate(
        {"stick_figure": batch["stick_figure_prev"], "previous_frame": zeros}
    ).clone()
    expected = target.generate({"stick_figure": batch["stick_figure"], "previous_frame": expected_prev})
    assert teacher_prev is not None
    assert torch.equal(teacher_prev, expected_prev) and torch.equal(teacher_frame, expected)
    assert not teacher_frame.requires_grad and teacher_frame.shape == (1, 3, 64, 64)


def test_a_student_equal_to_its_teacher_has_zero_distillation_loss(tiny_engine: Path, tmp_path: Path) -> None:
    """The teacher's own PyTorch weights (``NAME.pt``) as the student: ONNX Runtime and PyTorch agree, so the
    distillation term is ~0, while a perturbed student's is not."""
    data = make_tiny_prepared(tmp_path / "prepared")
    config = load_config(
        None, [*TINY_MODEL_OVERRIDES, f"distill.teacher={tiny_engine}", "distill.lambda_l1=3"]
    )
    student = load_weights(tiny_engine.with_suffix(".pt")).eval()
    discriminator = build_discriminator(config.discriminator)
    inputs = generator_inputs(config.generator)
    teacher = Teacher.load(tiny_engine, inputs, (64, 64))
    batch = _batch(data, inputs)
    losses = main_stage_losses(student, discriminator, discriminator, batch, config, None, teacher)
    assert losses.logged["loss_g_distill_l1"].item() < 1e-5
    without = main_stage_losses(student, discriminator, discriminator, batch, config, None, None)
    assert "loss_g_distill_l1" not in without.logged
    assert losses.generator.item() == pytest.approx(without.generator.item(), abs=1e-4)
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    perturbed = main_stage_losses(student, discriminator, discriminator, batch, config, None, teacher)
    distill = perturbed.logged["loss_g_distill_l1"]
    assert distill.item() > 1e-3 and distill.requires_grad  # the gradient reaches the student only


def test_a_temporal_teacher_teaches_a_student_without_the_previous_frame(
    tiny_engine: Path, tmp_path: Path
) -> None:
    """The teacher runs its own two-step unroll (its previous output fed back); the student without a
    previous-frame input learns the teacher's frame t only."""
    data = make_tiny_prepared(tmp_path / "prepared")
    single = GeneratorInputs.of(["stick_figure"])
    teacher = Teacher.load(tiny_engine, single, (64, 64), threads=1)
    batch = _batch(data, single)
    teacher_prev, teacher_frame = teacher.unroll(batch)
    target = Target.load(tiny_engine)
    expected_prev = target.generate(
        {"stick_figure": batch["stick_figure_prev"], "previous_frame": torch.zeros_like(batch["frame"])}
    ).clone()
    expected = target.generate({"stick_figure": batch["stick_figure"], "previous_frame": expected_prev})
    assert teacher_prev is not None and torch.equal(teacher_frame, expected)
    config = load_config(
        None,
        [*TINY_MODEL_OVERRIDES, "generator.kind=mobile", "generator.temporal=false",
         f"distill.teacher={tiny_engine}", "distill.lambda_l1=3"],
    )  # fmt: skip
    torch.manual_seed(0)
    student = build_generator(config.generator)
    discriminator = build_discriminator(config.discriminator, temporal=False)
    losses = main_stage_losses(student, discriminator, discriminator, batch, config, None, teacher)
    with torch.no_grad():
        frame = student(batch["stick_figure"])
    expected_l1 = (frame - teacher_frame).abs().mean().item()
    assert losses.logged["loss_g_distill_l1"].item() == pytest.approx(expected_l1, rel=1e-5)


def test_teacher_must_fit_the_student(tiny_engine: Path, tmp_path: Path) -> None:
    temporal = GeneratorInputs.of(["stick_figure", "previous_frame"])
    with pytest.raises(ValueError, match="runs at 64x64"):
        Teacher.load(tiny_engine, temporal, (32, 32))
    with pytest.raises(FileNotFoundError, match="distill.teacher"):
        Teacher.load(tmp_path / "missing.onnx", temporal, (64, 64))


def test_the_mobile_generator_with_a_learned_background_trains_exports_and_teaches(
    tiny_engine: Path, tmp_path: Path
) -> None:
    """generator.background_hw: the background starts as the median of the training frames (the tiny data's
    gray room), survives export (ONNX Runtime = PyTorch), and a non-temporal engine cannot teach a temporal
    student."""
    from export.onnx import export_onnx

    data = make_tiny_prepared(tmp_path / "prepared")
    overrides = [*TINY_MODEL_OVERRIDES, "generator.kind=mobile", "generator.temporal=false", "threads=1",
                 "log_every=1", f"distill.teacher={tiny_engine}", "distill.lambda_l1=2"]  # fmt: skip
    with pytest.raises(ValueError, match=r"set generator.background_hw=\[64,64\]"):
        fit(
            data,
            tmp_path / "wrong",
            load_config(None, [*overrides, "steps=1", "generator.background_hw=[32,32]"]),
        )
    config = load_config(None, [*overrides, "steps=2", "generator.background_hw=[64,64]"])
    checkpoint = fit(data, tmp_path / "run", config)
    prepared = load_prepared(data)
    frames = prepared.frames[: prepared.meta.train_end].copy()
    median = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255).median(dim=0, keepdim=True).values
    background = load_checkpoint(checkpoint).generator["background"]
    assert background.shape == (1, 3, 64, 64)
    # Two Adam steps of lr 2e-4 move each pixel by at most ~4e-4 from where it started.
    assert (background - median).abs().max().item() < 1e-3
    report = export_onnx(checkpoint, tmp_path / "composited.onnx")
    assert report.max_abs_error < 1e-4
    weights = load_weights(report.onnx_path.with_suffix(".pt"))
    assert weights.spec.background_hw == (64, 64) and weights.inputs.names == ("stick_figure",)
    with pytest.raises(ValueError, match="a temporal one for a temporal student"):
        Teacher.load(report.onnx_path, GeneratorInputs.of(["stick_figure", "previous_frame"]), (64, 64))


def test_two_steps_of_the_mobile_generator_distilled_from_the_tiny_engine(
    tiny_engine: Path, tmp_path: Path
) -> None:
    from export.onnx import export_onnx

    data = make_tiny_prepared(tmp_path / "prepared")
    config = load_config(
        None,
        [*TINY_MODEL_OVERRIDES, "generator.kind=mobile", "steps=2", "log_every=1", "threads=1",
         f"distill.teacher={tiny_engine}", "distill.lambda_l1=5"],
    )  # fmt: skip
    checkpoint = fit(data, tmp_path / "run", config)
    records = [json.loads(line) for line in (tmp_path / "run/global/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["loss_g_distill_l1"] > 0 for r in records)
    report = export_onnx(checkpoint, tmp_path / "mobile.onnx")
    assert report.max_abs_error < 1e-4
    target = Target.load(report.onnx_path)
    frame = target.generate(
        {"stick_figure": torch.rand(1, 3, 64, 64), "previous_frame": torch.zeros(1, 3, 64, 64)}
    )
    assert frame.shape == (1, 3, 64, 64) and 0 <= frame.min() and frame.max() <= 1
    assert load_weights(report.onnx_path.with_suffix(".pt")).spec.kind == "mobile"
