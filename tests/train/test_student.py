"""The student stage: a light real-time generator distilled from the finished model in the same run
(issue 19), with per-stage budgets and the plan printed at the start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared
from train.checkpoint import load_checkpoint, runnable_generator, target_from_checkpoint
from train.config import load_config, student_config
from train.fit import fit, plan_text, stage_checkpoint_path

TINY_STUDENT = (
    *TINY_MODEL_OVERRIDES, "student.ngf=4", "student.n_downsample=2", "student.n_blocks=1", "log_every=1",
    "threads=1",
)  # fmt: skip
PRIOR_AND_PLATE = (
    "generator.extra_inputs=[appearance_prior,background_plate]",
    "generator.blend_prior=appearance_prior",
    "generator.composite_over=background_plate",
)


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    return make_tiny_prepared(tmp_path / "prepared", num_frames=12, width=64, height=64)


def test_the_student_learns_from_the_finished_model_with_its_prior_and_plate(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    overrides = [*TINY_STUDENT, *PRIOR_AND_PLATE, "steps=2", "stages=[global,student]", "student.steps=3"]
    config = load_config(None, overrides)
    with caplog.at_level(logging.INFO, logger="train.fit"):
        latest = fit(prepared, run, config)
    assert "plan: global 2 steps, student 3 steps" in caplog.text
    assert "stage student: distilling the global stage's model" in caplog.text
    # The last lines say what the user got: each model's held-out figures and speed, and what to run next.
    last = [r.getMessage() for r in caplog.records if r.name == "train.fit"][-3:]
    assert last[0].startswith("teacher (global stage, 2 steps") and last[1].startswith(
        "student (student stage, 3"
    )
    assert all("held-out body SSIM 0." in line and " fps on this machine" in line for line in last[:2])
    assert last[2].startswith("export both: python -m export onnx")

    student = load_checkpoint(latest)
    assert latest.resolve() == stage_checkpoint_path(run, "student").resolve()
    assert student.stage == "student" and student.step == 3 and student.teacher_stage == "global"
    assert student.teacher_path == stage_checkpoint_path(run, "global").resolve()
    assert student.config == student_config(config)
    spec = student.config.generator
    assert (spec.kind, spec.temporal, spec.blend_prior, spec.composite_over) == (
        "mobile", False, "appearance_prior", "background_plate",
    )  # fmt: skip
    generator = runnable_generator(student)
    assert list(generator.inputs.names) == ["stick_figure", "appearance_prior", "background_plate"]
    lines = (run / "student" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all('"loss_g_distill_l1"' in line for line in lines)

    # The student runs as a target from its checkpoint (with the per-target inputs it was trained with).
    target = target_from_checkpoint(latest)
    inputs = {
        "stick_figure": torch.rand(1, 3, 64, 64),
        "appearance_prior": torch.rand(1, 4, 64, 64),
        **target.per_target,
    }
    frame = target.generate({name: inputs[name] for name in target.bundle.inputs})
    assert frame.shape == (1, 3, 64, 64) and 0 <= float(frame.min()) and float(frame.max()) <= 1

    # Running the command again changes nothing: both stages are done.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train.fit"):
        fit(prepared, run, config)
    assert "stage global: done (2 steps)" in caplog.text and "stage student: done (3 steps)" in caplog.text
    assert load_checkpoint(latest).step == 3


def test_a_stage_budget_ends_the_stage_and_the_next_one_starts(
    tiny_prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    overrides = [
        *TINY_STUDENT, "steps=100000", "stages=[global,student]", "student.steps=1",
        "stage_minutes.global=0.002",
    ]  # fmt: skip
    config = load_config(None, overrides)
    with caplog.at_level(logging.INFO, logger="train.fit"):
        fit(tiny_prepared, run, config)
    assert "budget of 0.002 min spent" in caplog.text
    teacher = load_checkpoint(stage_checkpoint_path(run, "global"))
    assert teacher.step < 100000 and teacher.elapsed_s >= 0.12
    assert load_checkpoint(stage_checkpoint_path(run, "student")).step == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train.fit"):
        fit(tiny_prepared, run, config)  # the spent budget is remembered: the global stage stays done
    assert "stage global: done at its budget of 0.002 min" in caplog.text
    assert load_checkpoint(stage_checkpoint_path(run, "global")).step == teacher.step


def test_the_plan_gives_the_time_the_run_takes_at_most() -> None:
    budgets = ["stage_minutes.global=30", "stage_minutes.student=20"]
    config = load_config(None, ["stages=[global,student]", *budgets])
    assert plan_text(config).startswith(
        "plan: global 1000 steps or 30 min, student 4000 steps or 20 min: done within 50 min of training"
    )
    assert "no time limit" in plan_text(load_config(None, ["stages=[global,student]"]))
    assert "within 5 min" in plan_text(load_config(None, ["max_minutes=5"]))


def test_stage_budgets_and_the_student_are_checked() -> None:
    with pytest.raises(ValueError, match="stage_minutes"):
        load_config(None, ["stage_minutes.warp=3"])  # not a stage
    with pytest.raises(ValueError, match="stage_minutes"):
        load_config(None, ["stage_minutes.global=-1"])
    # A budget for a stage the run skips is unused: small.yaml's student budget with stages=[global].
    assert load_config(None, ["stage_minutes.student=20"]).stages == ("global",)
    with pytest.raises(ValueError, match="stages must start with 'global'"):
        load_config(None, ["stages=[global,student,face]"])
    with pytest.raises(ValueError, match="student.steps"):
        load_config(None, ["student.steps=0"])


def test_the_command_resumes_a_run_whose_latest_checkpoint_is_the_students(
    tiny_prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from train.cli import fit_main

    run = tmp_path / "run"
    overrides = [*TINY_STUDENT, "steps=1", "stages=[global,student]", "student.steps=1"]
    assert fit_main([str(tiny_prepared), "--out", str(run), *overrides]) == 0
    assert fit_main([str(tiny_prepared), "--out", str(run), "student.steps=2"]) == 0  # the run's config
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(stage_checkpoint_path(run, "student")).step == 2
    assert load_checkpoint(stage_checkpoint_path(run, "global")).step == 1
