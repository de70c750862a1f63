"""train.evaluate: the CLI on a tiny engine and dataset, the multi-model table, model resolution, curves."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_prepared, standing_pose
from realtime.catalog import POSE_ESTIMATORS, PoseEstimatorEntry
from realtime.pose.estimators import PoseEstimator, PoseFrame
from realtime.pose.skeleton import NUM_JOINTS, Joint
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


# -- unseen poses: --sources -------------------------------------------------------------------------------

STUB = "stub-brightness"


class BrightnessPose(PoseEstimator):
    """A stand-in pose estimator that reads an image's mean brightness ``b`` in [0, 1]: a frontal standing
    pose filling the frame, turned ``90 b`` degrees about the mid-hip, with the left wrist's confidence ``b``
    (found from half brightness up). Two frames' limb directions thus differ by ``90 |b1 - b2|`` degrees."""

    def __init__(self, *, video_mode: bool = False, with_mask: bool = False) -> None:
        self.video_mode = video_mode

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        height, width = rgb.shape[:2]
        brightness = float(rgb.mean()) / 255.0
        joints = standing_pose(width, height).astype(np.float64)
        turn = math.radians(90.0 * brightness)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        hip = joints[Joint.MID_HIP].copy()
        joints = (joints - hip) @ rotation.T + hip
        confidence = np.ones(NUM_JOINTS, np.float32)
        confidence[Joint.LEFT_WRIST] = brightness
        return PoseFrame(joints.astype(np.float32), confidence, timestamp_ms, (width, height))

    def close(self) -> None:
        pass


@pytest.fixture
def stub_engine(tiny_engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the tiny engine whose sidecar names :class:`BrightnessPose` (registered for the test)."""
    monkeypatch.setitem(POSE_ESTIMATORS, STUB, PoseEstimatorEntry(f"{__name__}:BrightnessPose"))
    folder = tmp_path / "stub_engine"
    folder.mkdir()
    engine = Path(shutil.copy(tiny_engine, folder / tiny_engine.name))
    sidecar = json.loads(tiny_engine.with_suffix(".json").read_text())
    sidecar["pose_estimator"] = STUB
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    return engine


def tiny_source_video(path: Path, num_frames: int = 8) -> Path:
    """A tiny rendered source video, 48x64: frames of rising brightness (0.6 to 0.9 of full scale)."""
    from realtime.video import VideoWriter

    writer = VideoWriter(path, 24.0, 48, 64)
    try:
        for i in range(num_frames):
            level = round(255 * (0.6 + 0.3 * i / (num_frames - 1)))
            writer.write(np.full((64, 48, 3), level, np.uint8))
    finally:
        writer.close()
    return path


def test_sources_add_limb_directions_to_metrics_and_every_table_row(
    stub_engine: Path, tiny_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from realtime.model.pipeline import Target

    video = tiny_source_video(tmp_path / "tiny_source.mp4")
    out = tmp_path / "eval"
    args = [str(stub_engine), "--data", str(tiny_prepared), "--out", str(out)]
    assert main([*args, "--sources", str(video), "--source-frames", "5"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    (unseen,) = metrics["unseen_poses"]
    assert unseen["name"] == "tiny_source" and unseen["num_frames"] == 5
    median, p90 = unseen["limb_direction_median_deg"], unseen["limb_direction_p90_deg"]
    missed = unseen["missed_arm_joint_rate"]
    assert math.isfinite(median) and math.isfinite(p90) and 0 <= median <= p90 <= 90
    assert 0.0 <= missed <= 1.0
    assert unseen["details"]["num_measurements"] == unseen["limb_measurements"] > 0
    # Every limb turned by the same angle in each frame: each limb's median is the frames' median.
    per_limb = unseen["details"]["median_deg_per_limb"]
    assert per_limb["right_forearm"] == pytest.approx(median, abs=1e-3)
    assert per_limb["left_shin"] == pytest.approx(median, abs=1e-3)
    sheet = np.asarray(Image.open(out / "samples_tiny_source.png"))
    assert sheet.shape == (4 * 64, 48 + 64 + 64, 3)  # 4 rows of source | stick figure | generated
    assert "driven by tiny_source (5 frames)" in printed
    table = (out / "metrics.md").read_text()
    header, *rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert (
        "| body PSNR (dB) | limb dir. median / p90 (deg), tiny_source | elbows+wrists missed, tiny_source |"
        in header
    )
    cells = {row.split(" | ")[0][2:]: row.split(" | ") for row in rows}
    column = header.split(" | ").index("limb dir. median / p90 (deg), tiny_source")
    assert cells["tiny"][column] == f"{median:.1f} / {p90:.1f}"
    assert cells["tiny"][column + 1] == f"{missed:.1%}"
    assert cells[REFERENCE_LABEL][column] == "n/a" and cells[BACKGROUND_LABEL][column + 1] == "n/a"
    assert "first frames of" in table and "Limb dir. (unseen poses" in table

    # Other generated frames (the generator's output turned to its negative): other figures.
    generate = Target.generate

    def negative(self, inputs, out=None):
        result = generate(self, inputs, out)
        return result.mul_(-1.0).add_(1.0)

    monkeypatch.setattr(Target, "generate", negative)
    again = tmp_path / "again"
    assert main([str(stub_engine), "--data", str(tiny_prepared), "--out", str(again), "--sources", str(video),
                 "--source-frames", "5", "--no-reference", "--no-background"]) == 0  # fmt: skip
    (changed,) = json.loads((again / "metrics.json").read_text())["unseen_poses"]
    assert changed["limb_direction_median_deg"] != pytest.approx(median, abs=0.5)
    assert changed["missed_arm_joint_rate"] != missed or changed["limb_direction_p90_deg"] != p90


def test_sources_that_are_not_there_are_refused_before_any_work(stub_engine, tiny_prepared, tmp_path, capsys):
    args = [str(stub_engine), "--data", str(tiny_prepared), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--sources", str(tmp_path / "none.mp4")])
    assert exited.value.code == 2 and "none.mp4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--sources", str(tmp_path), "--source-frames", "0"])
    assert not (tmp_path / "o").exists()
