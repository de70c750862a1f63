"""One bundle, two models: a run's teacher and its real-time student exported together, and the one that
runs chosen by device (issue 19, item 2)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from export.onnx import ExportError, export_onnx
from realtime.model.bundle import BundleError, read_bundle
from realtime.model.pipeline import Target
from tests.conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared
from train.config import load_config
from train.fit import fit

OVERRIDES = (
    *TINY_MODEL_OVERRIDES, "student.ngf=4", "student.n_downsample=2", "student.n_blocks=1", "threads=1",
    "steps=1", "student.steps=1", "stages=[global,student]",
    "generator.extra_inputs=[appearance_prior,background_plate]", "generator.blend_prior=appearance_prior",
    "generator.composite_over=background_plate",
)  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("student_bundle")
    data = make_tiny_prepared(root / "prepared", num_frames=12, width=64, height=64)
    fit(data, root / "run", load_config(None, list(OVERRIDES)))
    return root / "run"


def test_a_student_run_exports_both_models_with_one_sidecar(run: Path, tmp_path: Path) -> None:
    report = export_onnx(run / "checkpoint.pt", tmp_path / "t.onnx")
    assert report.student_onnx_path == tmp_path / "t.student.onnx"
    assert report.student_max_abs_error is not None and report.student_max_abs_error < 1e-4
    names = sorted(p.name for p in tmp_path.iterdir())
    int8 = ["t.student.int8.onnx"] if report.tuning and report.tuning.chosen.precision == "int8" else []
    assert names == sorted(
        ["t.json", "t.onnx", "t.pt", "t.student.onnx", "t.student.pt", "t.target_inputs.npz", *int8]
    )
    teacher_graph = [i.name for i in onnx.load(str(tmp_path / "t.onnx")).graph.input]
    student_graph = [i.name for i in onnx.load(str(tmp_path / "t.student.onnx")).graph.input]
    assert teacher_graph == ["stick_figure", "previous_frame", "appearance_prior", "background_plate"]
    assert student_graph == ["stick_figure", "appearance_prior", "background_plate"]
    bundle = read_bundle(tmp_path / "t.onnx")
    assert bundle.student is not None and bundle.format_version == 4
    assert bundle.student.checkpoint_step == 1
    # The student's threads and precision, chosen by timing it here, are in the sidecar.
    assert report.tuning is not None and len(report.tuning.candidates) == 4
    chosen = report.tuning.chosen
    assert (bundle.student.cpu_threads, bundle.student.precision) == (chosen.threads, chosen.precision)
    assert bundle.student.file == ("t.student.int8.onnx" if int8 else "t.student.onnx")
    sidecar = json.loads((tmp_path / "t.json").read_text())
    assert sidecar["student"]["file"] == bundle.student.file
    assert bundle.for_student().inputs == tuple(student_graph) and bundle.for_student().face_model is None


def test_the_cpu_runs_the_student_and_a_flag_the_teacher(
    run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    export_onnx(run / "checkpoint.pt", tmp_path / "t.onnx", tune=False)
    with caplog.at_level(logging.INFO, logger="realtime.model.pipeline"):
        student = Target.load(tmp_path / "t.onnx", device="cpu", threads=1)
    assert student.role == "student" and student.path.name == "t.student.onnx"
    assert "running the student (the generator runs on the CPU" in caplog.text
    assert not student.bundle.temporal and set(student.per_target) >= {"background_plate"}
    teacher = Target.load(tmp_path / "t.onnx", device="cpu", model="teacher", threads=1)
    assert teacher.role == "teacher" and teacher.bundle.temporal and teacher.path.name == "t.onnx"
    weights = Target.load(tmp_path / "t.pt", device="cpu", model="student")  # the PyTorch backend
    assert weights.path.name == "t.student.pt"
    inputs = {
        "stick_figure": torch.rand(1, 3, 64, 64), "appearance_prior": torch.rand(1, 4, 64, 64),
        **student.per_target,
    }  # fmt: skip
    torch.testing.assert_close(student.generate(inputs), weights.generate(inputs), atol=1e-4, rtol=0)
    with pytest.raises(BundleError, match="model must be one of"):
        Target.load(tmp_path / "t.onnx", device="cpu", model="fastest")


def test_a_bundle_without_a_student_runs_its_one_model(run: Path, tmp_path: Path) -> None:
    export_onnx(run / "global" / "checkpoint.pt", tmp_path / "g.onnx")
    assert read_bundle(tmp_path / "g.onnx").student is None
    assert Target.load(tmp_path / "g.onnx", device="cpu").role == "only"
    with pytest.raises(BundleError, match="no real-time student"):
        Target.load(tmp_path / "g.onnx", device="cpu", model="student")


def test_evaluate_gives_the_teacher_and_the_student_a_row_each(run: Path, tmp_path: Path) -> None:
    from train.evaluate import evaluate_models

    data = run.parent / "prepared"
    _, table = evaluate_models(
        [run], data, tmp_path / "eval", model="both", reference=False, background=False
    )
    rows = [line for line in table.splitlines() if line.startswith("| run")]
    assert [row.split(" | ")[0] for row in rows] == ["| run (teacher)", "| run (student)"]
    assert (tmp_path / "eval" / "run_teacher" / "metrics.json").is_file()
    _, table = evaluate_models([run], data, tmp_path / "auto", reference=False, background=False)
    assert "| run (student) |" in table  # a student run's checkpoint is the student


def test_a_student_without_its_teacher_is_not_exported(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    shutil.rmtree(copy / "global")
    with pytest.raises(ExportError, match="which is missing"):
        export_onnx(copy / "checkpoint.pt", tmp_path / "t.onnx")
    assert not list(tmp_path.glob("t.*"))  # nothing written
