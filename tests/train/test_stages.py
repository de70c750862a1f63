"""Training stages global -> local -> face: each starts from the previous one, resumable, in one command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, TINY_STAGE_OVERRIDES, train_tiny_stages
from train.checkpoint import load_checkpoint, load_face_generator, load_generator
from train.cli import fit_main as main
from train.config import load_config
from train.fit import fit, stage_checkpoint_path
from train.models import DownscaledGenerator, LocalEnhancer, build_local_enhancer
from train.stages import StageError, build_stage_models, crop_faces, face_stage_losses, prepare_batch

REPO = Path(__file__).resolve().parents[2]


def stage_metrics(run: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def three_stage_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run through global, local and face, two steps each."""
    from conftest import make_tiny_prepared

    root = tmp_path_factory.mktemp("stages")
    data = make_tiny_prepared(root / "prepared")
    train_tiny_stages(data, root / "run", steps=2, overrides=("log_every=1", "sample_every=2"))
    return root / "run"


def test_one_command_runs_all_stages_in_order(three_stage_run: Path) -> None:
    run = three_stage_run
    assert (run / "checkpoint.pt").resolve() == (run / "face" / "checkpoint.pt").resolve()
    checkpoints = {
        stage: load_checkpoint(stage_checkpoint_path(run, stage)) for stage in ("global", "local", "face")
    }
    assert {s: c.step for s, c in checkpoints.items()} == {"global": 2, "local": 2, "face": 2}
    assert [c.stage for c in checkpoints.values()] == ["global", "local", "face"]
    assert [c.main_generator for c in checkpoints.values()] == ["global", "local", "local"]
    assert [c.main_downscale for c in checkpoints.values()] == [2, 1, 1]  # global at half the canvas
    for stage in ("global", "local", "face"):
        assert [m["step"] for m in stage_metrics(run, stage)] == [1, 2]
        assert (run / stage / "samples" / "step_0000002.png").is_file()
    assert "loss_g_face_l1" in stage_metrics(run, "face")[0]
    # The global stage's sample sheet is at half the canvas (32 px rows); the face stage adds a column.
    from PIL import Image

    assert Image.open(run / "global" / "samples" / "step_0000002.png").size == (3 * 32, 3 * 32)
    assert Image.open(run / "face" / "samples" / "step_0000002.png").size == (4 * 64, 3 * 64)


def test_local_stage_starts_from_the_global_stage(three_stage_run: Path) -> None:
    global_checkpoint = load_checkpoint(stage_checkpoint_path(three_stage_run, "global"))
    config = global_checkpoint.config
    models = build_stage_models("local", config, previous=global_checkpoint, existing=None, face_box_px=12.0)
    assert isinstance(models.main, LocalEnhancer)
    # G1 = the global generator without its output layer, weight for weight; the discriminator is copied.
    n_kept = len(models.main.global_model)
    for key, value in global_checkpoint.generator.items():
        index = int(key.split(".")[1])
        if index < n_kept:
            assert torch.equal(models.main.state_dict()[f"global_model.{key.removeprefix('model.')}"], value)
    assert all(
        torch.equal(v, global_checkpoint.discriminator[k])
        for k, v in models.discriminator.state_dict().items()
    )
    # After two Adam steps of the local stage, G1 has moved only a little from there (lr 2e-4).
    local_checkpoint = load_checkpoint(stage_checkpoint_path(three_stage_run, "local"))
    fresh = build_local_enhancer(config).state_dict()
    for key, value in global_checkpoint.generator.items():
        if int(key.split(".")[1]) < n_kept and key.endswith("weight"):
            trained = local_checkpoint.generator[f"global_model.{key.removeprefix('model.')}"]
            assert (trained - value).abs().max() < 1e-3
            assert not torch.allclose(trained, fresh[f"global_model.{key.removeprefix('model.')}"])


def test_face_stage_freezes_the_main_generator_and_starts_at_identity(three_stage_run: Path) -> None:
    local_checkpoint = load_checkpoint(stage_checkpoint_path(three_stage_run, "local"))
    face_checkpoint = load_checkpoint(stage_checkpoint_path(three_stage_run, "face"))
    for key, value in local_checkpoint.generator.items():
        assert torch.equal(face_checkpoint.generator[key], value)  # frozen
    models = build_stage_models(
        "face", face_checkpoint.config, previous=local_checkpoint, existing=None, face_box_px=12.0
    )
    assert models.face is not None and models.face_crop_px == 12
    assert not any(p.requires_grad for p in models.main.parameters())
    crops = torch.rand(2, 3, 12, 12)
    assert torch.equal(models.face(crops, crops), torch.zeros_like(crops))  # zero output layer at the start
    trained_face, _ = load_face_generator(stage_checkpoint_path(three_stage_run, "face"))
    assert trained_face is not None and trained_face(crops, crops).abs().max() > 0


def test_face_stage_losses_touch_only_the_face_generator(three_stage_run: Path) -> None:
    from torch.utils.data import default_collate

    from train.dataset import FramePairs, load_prepared

    face_checkpoint = load_checkpoint(stage_checkpoint_path(three_stage_run, "face"))
    config = face_checkpoint.config
    models = build_stage_models("face", config, previous=None, existing=face_checkpoint, face_box_px=12.0)
    data = load_prepared(three_stage_run.parent / "prepared")
    batch = prepare_batch(
        default_collate([FramePairs(data, require_face=True)[i] for i in (0, 1)]), torch.device("cpu"), 1
    )
    losses = face_stage_losses(
        models, models.face, models.discriminator, models.discriminator, batch, config, None
    )
    losses.generator.backward()
    assert all(p.grad is None for p in models.main.parameters())
    assert all(p.grad is None for p in models.discriminator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in models.face.parameters())
    assert {"loss_g", "loss_d", "loss_g_face_l1", "face_l1_before"} <= set(losses.logged)
    crops = crop_faces(batch["frame"], batch["face_center"], 12)
    assert crops.shape == (2, 3, 12, 12)


def test_every_stage_checkpoint_runs_at_the_canvas(three_stage_run: Path) -> None:
    stick, previous = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    kinds = {"global": DownscaledGenerator, "local": LocalEnhancer, "face": LocalEnhancer}
    for stage, kind in kinds.items():
        generator, checkpoint = load_generator(stage_checkpoint_path(three_stage_run, stage))
        assert isinstance(generator, kind) and not generator.training
        with torch.no_grad():
            assert generator(stick, previous).shape == (1, 3, 64, 64)
    face, _ = load_face_generator(stage_checkpoint_path(three_stage_run, "global"))
    assert face is None


def test_finished_run_is_not_trained_again_and_a_done_stage_is_kept(
    three_stage_run: Path, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(three_stage_run, run, symlinks=True)
    before = {s: stage_checkpoint_path(run, s).stat().st_mtime_ns for s in ("global", "local", "face")}
    config = load_checkpoint(run / "checkpoint.pt").config
    # More global steps: the local stage already started from the global stage, so it stays.
    fit(three_stage_run.parent / "prepared", run, load_config(None, ["steps=5"], base=config))
    after = {s: stage_checkpoint_path(run, s).stat().st_mtime_ns for s in ("global", "local", "face")}
    assert after == before
    # More face steps: only the face stage trains on.
    fit(three_stage_run.parent / "prepared", run, load_config(None, ["face.steps=3"], base=config))
    assert load_checkpoint(stage_checkpoint_path(run, "face")).step == 3
    assert stage_checkpoint_path(run, "local").stat().st_mtime_ns == before["local"]


def test_stage_validation() -> None:
    for bad in ("[local]", "[global,face,local]", "[global,global]", "[global,middle]", "[]"):
        with pytest.raises(ValueError, match="stages must start with 'global'"):
            load_config(None, [f"stages={bad}"])
    with pytest.raises(ValueError, match="ngf must be even"):
        load_config(None, ["stages=[global,local]", "generator.ngf=5"])
    config = load_config(None, ["stages=[global,local,face]"])
    assert config.main_generator == "local" and config.global_downscale == 2
    assert load_config(None, ["stages=[global,face]"]).global_downscale == 1


def test_adding_a_local_stage_to_a_full_canvas_global_stage_is_refused(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train_tiny_stages(tiny_prepared, run, stages=("global",))
    assert load_checkpoint(run / "checkpoint.pt").main_downscale == 1
    with pytest.raises(StageError, match="trained at the full canvas.*new --out"):
        train_tiny_stages(tiny_prepared, run, stages=("global", "local"))
    # A face stage may follow a full-canvas global stage.
    train_tiny_stages(tiny_prepared, run, stages=("global", "face"))
    face = load_checkpoint(run / "checkpoint.pt")
    assert face.stage == "face" and face.main_generator == "global"


def test_resume_after_sigterm_mid_stage(tiny_prepared: Path, tmp_path: Path) -> None:
    """Kill (SIGTERM) the one-command run in its local stage; running the command again finishes it."""
    run = tmp_path / "run"
    overrides = [
        *TINY_MODEL_OVERRIDES, *TINY_STAGE_OVERRIDES, "stages=[global,local,face]", "steps=2",
        "local.steps=100000", "face.steps=2", "log_every=1", "checkpoint_every=100000",
    ]  # fmt: skip
    command = [sys.executable, "-m", "train", "fit", str(tiny_prepared), "--out", str(run), *overrides]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline_s = time.monotonic() + 60
        while not (run / "local" / "metrics.jsonl").is_file():  # the local stage is under way
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline_s, "the local stage did not start within 60 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "SIGTERM" in output
    assert not stage_checkpoint_path(run, "face").exists()
    local_step = load_checkpoint(stage_checkpoint_path(run, "local")).step
    assert 1 <= local_step < 100000
    assert (run / "checkpoint.pt").resolve() == stage_checkpoint_path(run, "local").resolve()
    # The same command (with a reachable local budget) resumes the local stage, then runs the face stage.
    assert main([str(tiny_prepared), "--out", str(run), f"local.steps={local_step + 2}"]) == 0
    assert load_checkpoint(stage_checkpoint_path(run, "global")).step == 2
    assert load_checkpoint(stage_checkpoint_path(run, "local")).step == local_step + 2
    assert load_checkpoint(run / "checkpoint.pt").stage == "face"
    local_steps = [m["step"] for m in stage_metrics(run, "local")]
    assert local_steps == list(range(1, local_step + 3))  # resumed: no step logged twice, none missing
