"""bench.stages: a 3-frame run on the tiny engine prints a table with every stage and both frame rates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.stages import CUDA_ONLY_STAGES, STAGES, main
from conftest import shared_video


def test_three_frames_on_the_tiny_engine(tiny_engine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = shared_video("source_dance.mp4")
    args = ["--engine", str(tiny_engine), "--source", str(video), "--frames", "3", "--warmup", "1"]
    assert main([*args, "--threads", "1", "--overlap"]) == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    for stage in STAGES:
        if stage in CUDA_ONLY_STAGES:
            assert stage not in rows  # measured on CUDA only
        elif stage == "face":
            assert rows[stage].endswith("| n/a |")  # the tiny engine has no face model
        else:
            median, p95 = (float(v) for v in rows[stage].split(" | ")[1].rstrip(" |").split(" / "))
            assert 0 <= median <= p95, stage
    assert "no face model" in table
    whole = rows["whole frame, sequential"].split(" | ")[1]
    assert float(whole.split(" / ")[0]) > 0 and "mean" in whole
    sequential = rows["end-to-end fps, sequential"].split(" | ")[1].rstrip(" |")
    overlapped = rows["end-to-end fps, overlapped (stages on their own threads)"].split(" | ")[1].rstrip(" |")
    assert float(sequential) > 0 and float(overlapped) > 0
    assert rows["frames timed"].endswith("| 3 |")
    assert "tiny.onnx (onnxruntime, cpu)" in rows["stage (ms per frame: median / p95)"]


def test_cuda_is_skipped_with_a_message_where_absent(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["--device", "cuda"]) == 0
    assert "CUDA is not available" in capsys.readouterr().err


def test_errors(tiny_engine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--engine", str(tmp_path / "none.onnx"), "--frames", "1"]) == 2
    assert "engine file not found" in capsys.readouterr().err
    assert main(["--engine", str(tiny_engine), "--frames", "0"]) == 2


def test_a_failing_stage_stops_the_overlapped_run(tiny_engine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generation thread fails on its first frame: the run re-raises it instead of hanging."""
    from bench import stages

    video = shared_video("source_dance.mp4")

    def broken(self: object, pose: object, timings_ms: object = None) -> object:
        raise RuntimeError("generator failed")

    monkeypatch.setattr(stages._SyncedRetargeter, "generate", broken)
    target = stages.load_target(tiny_engine, "cpu", 1)
    with pytest.raises(RuntimeError, match="generator failed"):
        stages.run_overlapped(target, video, frames=20, warmup=1, codec="vp8")
