"""Multi-process training: torchrun with 2 processes, gloo on CPU, DistributedDataParallel, every stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed

from conftest import TINY_MODEL_OVERRIDES, TINY_STAGE_OVERRIDES
from train.checkpoint import load_checkpoint
from train.fit import stage_checkpoint_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no gloo backend for CPU process groups",
)
def test_torchrun_two_processes_gloo(tiny_prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "train", "fit", str(tiny_prepared), "--out", str(run),
        *TINY_MODEL_OVERRIDES, *TINY_STAGE_OVERRIDES, "stages=[global,local,face]", "steps=2",
        "local.steps=2", "face.steps=2", "log_every=1", "sample_every=2", "device=cpu",
        "augment.enabled=true",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "rank 1 of 2" in output and "backend gloo" in output
    assert output.count("checkpoint: ") == 1  # only rank 0 prints and writes
    for stage in ("global", "local", "face"):
        checkpoint = load_checkpoint(stage_checkpoint_path(run, stage))
        assert checkpoint.step == 2 and checkpoint.stage == stage
        assert not any(key.startswith("module.") for key in checkpoint.generator)  # DDP's wrapper not saved
        metrics = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [1, 2]  # one writer
    assert load_checkpoint(run / "checkpoint.pt").stage == "face"
