"""train.evaluate: the CLI on a tiny engine and dataset, the multi-model table, model resolution, curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_tiny_prepared
from train.cli import evaluate_main as main
from train.evaluate import (
    BACKGROUND_LABEL,
    REFERENCE_LABEL,
    model_label,
    plot_training_curves,
    read_training_log,
    resolve_model,
    training_logs,
)

HEADLINE_KEYS = (
    "num_frames", "ssim", "psnr_db", "body_ssim", "body_psnr_db", "face_ssim", "face_psnr_db",
    "pose_distance_px", "missed_joint_rate",
    "temporal_change_levels", "generator_ms_per_frame",
)  # fmt: skip


def table_rows(markdown: str) -> list[str]:
    """The data rows of the first markdown table (header and separator dropped)."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    return rows[1:]


def test_cli_on_a_tiny_engine(tiny_engine: Path, tiny_prepared: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert main([str(tiny_engine), "--data", str(tiny_prepared), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    for key in HEADLINE_KEYS:
        assert key in metrics, key
    assert metrics["num_frames"] == 1 and metrics["label"] == "tiny"
    assert -1 <= metrics["ssim"] <= 1 and metrics["psnr_db"] > 0 and metrics["generator_ms_per_frame"] > 0
    assert metrics["face_num_frames"] == 1  # the tiny data's face box lies inside the canvas
    assert 0 <= metrics["missed_joint_rate"] <= 1
    assert metrics["temporal_change_levels"] is None and metrics["num_still_pairs"] == 0  # one frame
    assert metrics["details"]["frame"]["ssim_per_frame"] == [metrics["ssim"]]
    rows = table_rows((out / "metrics.md").read_text())
    labels = [row.split(" | ")[0] for row in rows]
    assert labels == ["| tiny", f"| {REFERENCE_LABEL}", f"| {BACKGROUND_LABEL}"]
    reference = json.loads((out / "reference.json").read_text())
    assert reference["frame"]["ssim"] == pytest.approx(1.0)
    assert reference["body"]["ssim"] == pytest.approx(1.0)
    assert metrics["body_num_frames"] == 1 and -1 <= metrics["body_ssim"] <= 1
    background = json.loads((out / "background.json").read_text())
    assert background["body"]["num_frames"] == 1 and background["body"]["ssim"] < 1
    assert (out / "background.png").is_file()
    assert (out / "samples.png").is_file()
    assert "no training curves" in printed  # the engine has no metrics.jsonl beside it
    assert not (out / "training_curves.png").exists()


def test_several_models_in_one_table(tiny_engine: Path, tiny_prepared: Path, tmp_path: Path, capsys) -> None:
    run = (
        tiny_engine.parent / "run"
    )  # the run the tiny engine was exported from: checkpoint.pt, metrics.jsonl
    out = tmp_path / "ablation"
    args = [str(tiny_engine), str(run), str(tiny_engine), "--data", str(tiny_prepared), "--out", str(out)]
    assert main([*args, "--no-reference", "--no-background"]) == 0
    rows = table_rows((out / "metrics.md").read_text())
    assert [row.split(" | ")[0] for row in rows] == ["| tiny", "| run", "| tiny-2"]
    # The ONNX engine and its checkpoint compute the same frames: same scores, up to float rounding.
    onnx, torch = (json.loads((out / name / "metrics.json").read_text()) for name in ("tiny", "run"))
    assert onnx["ssim"] == pytest.approx(torch["ssim"], abs=1e-3)
    assert (out / "run" / "training_curves.png").is_file() and (out / "tiny-2" / "samples.png").is_file()
    comparison = json.loads((out / "comparison.json").read_text())
    assert [m["label"] for m in comparison["models"]] == ["tiny", "run", "tiny-2"]
    assert "training curves" in capsys.readouterr().out


def test_cli_errors(tiny_engine: Path, tiny_prepared: Path, tmp_path: Path, capsys) -> None:
    data = ["--data", str(tiny_prepared)]
    assert main([str(tmp_path / "missing.onnx"), *data]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main([str(tiny_engine), str(tiny_engine), *data]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main([str(tiny_engine), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a prepared target directory" in capsys.readouterr().err
    other = make_tiny_prepared(tmp_path / "other", width=48, height=48)
    assert main([str(tiny_engine), "--data", str(other), "--out", str(tmp_path / "o")]) == 2
    assert "differs from the data's 48x48" in capsys.readouterr().err


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_resolve_model_layouts(tmp_path: Path) -> None:
    engine = touch(tmp_path / "a.onnx")
    assert resolve_model(engine) == engine
    with pytest.raises(ValueError, match="not a model file"):
        resolve_model(touch(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="model not found"):
        resolve_model(tmp_path / "nothing")

    single = tmp_path / "single"
    touch(single / "checkpoint.pt")
    assert resolve_model(single) == single / "checkpoint.pt"

    staged = tmp_path / "staged"
    touch(staged / "global" / "checkpoint.pt")
    touch(staged / "local" / "checkpoint.pt")
    assert resolve_model(staged) == staged / "local" / "checkpoint.pt"  # the last stage trained
    assert model_label(staged, resolve_model(staged)) == "staged/local"
    touch(staged / "face" / "checkpoint.pt")
    assert resolve_model(staged) == staged / "face" / "checkpoint.pt"

    unknown = tmp_path / "unknown"
    touch(unknown / "stage_1" / "checkpoint.pt")
    assert resolve_model(unknown) == unknown / "stage_1" / "checkpoint.pt"
    touch(unknown / "stage_2" / "checkpoint.pt")
    with pytest.raises(ValueError, match="several checkpoints"):
        resolve_model(unknown)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_model(empty)


def test_model_labels(tmp_path: Path) -> None:
    run = tmp_path / "alice"
    checkpoint = touch(run / "checkpoint.pt")
    assert model_label(run, checkpoint) == "alice"
    assert model_label(checkpoint, checkpoint) == "alice"
    engine = touch(tmp_path / "alice_v2.onnx")
    assert model_label(engine, engine) == "alice_v2"


def write_log(path: Path, records: list[dict], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_training_logs_and_curves(tmp_path: Path) -> None:
    run = tmp_path / "run"
    records = [{"step": s, "loss_g": 5.0 / s, "loss_d": 0.25, "sec_per_step": 1.0} for s in range(1, 6)]
    write_log(run / "global" / "metrics.jsonl", records)
    write_log(run / "face" / "metrics.jsonl", [{**r, "stage": "face"} for r in records], tail='{"step": 6, ')
    checkpoint = touch(run / "face" / "checkpoint.pt")
    logs = training_logs(run, checkpoint)
    assert logs == [run / "global" / "metrics.jsonl", run / "face" / "metrics.jsonl"]
    assert training_logs(checkpoint, checkpoint) == [run / "face" / "metrics.jsonl"]
    assert len(read_training_log(logs[1])) == 5  # the unfinished last line is ignored
    png = plot_training_curves(logs, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_log_errors(tmp_path: Path) -> None:
    broken = write_log(tmp_path / "a" / "metrics.jsonl", [], tail='{"step": 1\n{"step": 2, "loss_g": 1.0}\n')
    with pytest.raises(ValueError, match="line 1: not JSON"):
        read_training_log(broken)
    no_loss = write_log(tmp_path / "b" / "metrics.jsonl", [{"step": 1, "sec_per_step": 2.0}])
    with pytest.raises(ValueError, match="no loss values"):
        plot_training_curves([no_loss], tmp_path / "curves.png")
