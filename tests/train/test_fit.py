"""Two-iteration training smoke test, resume, checkpoints and the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from train.checkpoint import CheckpointError, load_checkpoint, load_generator
from train.cli import fit_main as main
from train.config import load_config
from train.dataset import load_prepared
from train.fit import fit
from train.models import GlobalGenerator

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "generator.ngf=8", "generator.n_downsample=2", "generator.n_blocks=1",
    "discriminator.ndf=8", "discriminator.n_layers=2", "discriminator.n_scales=2",
    "log_every=1", "sample_every=100", "checkpoint_every=100", "threads=1",
]  # fmt: skip


def read_metrics(run: Path, stage: str = "global") -> list[dict]:
    return [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]


def test_two_steps_then_resume(tiny_prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    path = fit(tiny_prepared, run, load_config(None, [*TINY, "steps=2"]))
    assert path == run / "checkpoint.pt" and (run / "config.yaml").is_file()
    assert path.resolve() == (run / "global" / "checkpoint.pt").resolve()  # the latest stage's checkpoint
    assert load_config(run / "config.yaml").steps == 2
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == [1, 2] and {m["stage"] for m in metrics} == {"global"}
    for key in (
        "loss_g", "loss_d", "loss_g_feature_matching", "loss_g_l1", "loss_g_pose_mask_l1", "sec_per_step",
        "elapsed_s",
    ):  # fmt: skip
        assert all(isinstance(m[key], float) for m in metrics)
    assert "loss_g_vgg" not in metrics[0]  # no VGG weights file: the term is off
    assert (run / "global" / "samples" / "step_0000002.png").is_file()

    checkpoint = load_checkpoint(path)
    assert checkpoint.step == 2 and checkpoint.config.generator.ngf == 8
    assert (
        checkpoint.stage == "global" and checkpoint.main_downscale == 1 and checkpoint.face_generator is None
    )
    assert checkpoint.data_meta == load_prepared(tiny_prepared).meta
    generator, _ = load_generator(path)
    assert isinstance(generator, GlobalGenerator) and not generator.training
    saved = checkpoint.generator
    assert all(torch.equal(value, saved[name]) for name, value in generator.state_dict().items())

    fit(tiny_prepared, run, load_config(None, [*TINY, "steps=4"]))
    resumed = load_checkpoint(path)
    assert resumed.step == 4 and resumed.elapsed_s >= checkpoint.elapsed_s
    assert [m["step"] for m in read_metrics(run)] == [1, 2, 3, 4]
    assert not all(torch.equal(value, saved[name]) for name, value in resumed.generator.items())


def test_non_temporal_and_batch_two(tiny_prepared: Path, tmp_path: Path) -> None:
    config = load_config(None, [*TINY, "steps=1", "batch_size=2", "generator.temporal=false"])
    fit(tiny_prepared, tmp_path / "run", config)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").config.generator.temporal is False


def test_resume_with_a_different_model_is_refused(tiny_prepared: Path, tmp_path: Path) -> None:
    fit(tiny_prepared, tmp_path / "run", load_config(None, [*TINY, "steps=1"]))
    with pytest.raises(ValueError, match=r"different model \(generator\.ngf: 8 -> 4\)"):
        fit(tiny_prepared, tmp_path / "run", load_config(None, [*TINY, "steps=2", "generator.ngf=4"]))


def test_max_minutes_stops_and_checkpoints(tiny_prepared: Path, tmp_path: Path) -> None:
    fit(tiny_prepared, tmp_path / "run", load_config(None, [*TINY, "steps=1000", "max_minutes=0.0001"]))
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").step < 1000


def test_corrupt_checkpoint_raises_clearly(tiny_prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "global").mkdir(parents=True)
    (run / "global" / "checkpoint.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(run / "global" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        fit(tiny_prepared, run, load_config(None, [*TINY, "steps=1"]))
    torch.save({"step": 3}, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(run / "checkpoint.pt")
    torch.save({"format_version": 1, "step": 3}, run / "checkpoint.pt")  # written before training stages
    with pytest.raises(CheckpointError, match="format version 1 .*train it again"):
        load_checkpoint(run / "checkpoint.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_cli(tiny_prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main([str(tiny_prepared), "--out", str(run), *TINY, "steps=1", "stages=[global]"]) == 0
    assert main([str(tiny_prepared), "--out", str(run), "steps=2"]) == 0  # resumes with the stored config
    assert load_checkpoint(run / "checkpoint.pt").step == 2
    assert "resuming" in capsys.readouterr().out
    assert main([str(tiny_prepared), "--out", str(run), "generator.ngff=3"]) == 2
    assert "unknown config key 'generator.ngff'" in capsys.readouterr().err


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "train",
        "fit",
        str(tiny_prepared),
        "--out",
        str(run),
        *TINY,
        "steps=100000",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline_s = time.monotonic() + 60
        while not (run / "global" / "metrics.jsonl").is_file():  # training has started
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline_s, "training did not start within 60 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "SIGTERM" in output
    assert 1 <= load_checkpoint(run / "checkpoint.pt").step < 100000
