"""The background plate end to end: prepared with the data, trained over (2 steps, with the alpha's mask
loss), exported as a graph input with ``NAME.target_inputs.npz``, run by ``Target``/``Retargeter`` (ONNX
Runtime and PyTorch weights alike), and scored by ``train.evaluate``, whose empty-background row is the same
plate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared, standing_pose, train_tiny_stages
from realtime.model.bundle import read_bundle, read_target_inputs
from realtime.model.inputs import InputRole
from realtime.model.pipeline import Retargeter, Target
from realtime.model.plate import BACKGROUND_PLATE, median_plate
from realtime.pose.estimators import PoseFrame
from realtime.pose.skeleton import NUM_JOINTS

PLATE_OVERRIDES = (
    "generator.extra_inputs=[background_plate]",
    "generator.composite_over=background_plate",
    "loss.lambda_alpha_mask=1.0",
    "log_every=1",
)


@dataclass(frozen=True)
class PlateRun:
    data: Path
    checkpoint: Path
    engine: Path


@pytest.fixture(scope="module")
def plate_run(tmp_path_factory: pytest.TempPathFactory) -> PlateRun:
    from export.onnx import export_onnx
    from train.config import load_config
    from train.fit import fit

    root = tmp_path_factory.mktemp("plate")
    data = make_tiny_prepared(root / "prepared")
    config = load_config(None, [*TINY_MODEL_OVERRIDES, "steps=2", *PLATE_OVERRIDES])
    checkpoint = fit(data, root / "run", config)
    engine = export_onnx(checkpoint, root / "plated.onnx").onnx_path
    return PlateRun(data, checkpoint, engine)


def test_the_default_config_composites_over_the_plate_and_blends_the_prior() -> None:
    # issue 18's evidence (docs/RESULTS.md): small.yaml, the default, takes both; without them is overrides
    from train.config import DEFAULT_CONFIG_PATH, config_differences, load_config

    without = ["generator.extra_inputs=[]", "generator.blend_prior=''", "generator.composite_over=''"]
    differences = config_differences(
        load_config(DEFAULT_CONFIG_PATH, without), load_config(DEFAULT_CONFIG_PATH)
    )
    assert differences == {
        "generator.blend_prior": ("", "appearance_prior"),
        "generator.composite_over": ("", "background_plate"),
        "generator.extra_inputs": ((), ("appearance_prior", "background_plate")),
    }
    with pytest.raises(ValueError, match="must be one of generator.extra_inputs"):
        load_config(None, ["generator.composite_over=background_plate"])


def test_the_plate_is_prepared_trained_with_and_exported(plate_run: PlateRun) -> None:
    from train.checkpoint import load_checkpoint, load_generator
    from train.dataset import load_prepared, target_frames, target_input_path

    data = load_prepared(plate_run.data)
    stored = np.load(target_input_path(plate_run.data, "background_plate")).astype(np.float32)
    expected, _ = median_plate(target_frames(data).frames, target_frames(data).masks)
    np.testing.assert_allclose(stored, expected, atol=1e-3)  # float16 storage
    # The tiny data's background is gray 0.4 (frames 0.4 + 0.5 * body) away from the figure (x 14-50 px).
    assert np.abs(stored[..., :8] - 0.4).max() < 0.01 and np.abs(stored[..., 56:] - 0.4).max() < 0.01

    generator, _ = load_generator(plate_run.checkpoint)
    assert generator.inputs.names == ("stick_figure", "previous_frame", "background_plate")
    assert generator.spec.composite_over == "background_plate"
    np.testing.assert_array_equal(
        load_checkpoint(plate_run.checkpoint).target_inputs["background_plate"], stored
    )
    log = [
        json.loads(line)
        for line in (plate_run.checkpoint.parent / "global" / "metrics.jsonl").read_text().splitlines()
    ]
    assert any("loss_g_alpha_mask" in entry for entry in log)

    graph = onnx.load(str(plate_run.engine)).graph
    assert [i.name for i in graph.input] == ["stick_figure", "previous_frame", "background_plate"]
    bundle = read_bundle(plate_run.engine)
    assert bundle.generator_inputs.with_role(InputRole.PER_TARGET) == (BACKGROUND_PLATE,)
    assert bundle.target_inputs is not None and bundle.target_inputs.file == "plated.target_inputs.npz"
    np.testing.assert_array_equal(read_target_inputs(plate_run.engine, bundle)["background_plate"], stored)


def test_the_exported_target_runs_and_follows_its_plate(plate_run: PlateRun) -> None:
    confidence = np.ones(NUM_JOINTS, np.float32)
    poses = [PoseFrame(standing_pose(64, 64, 0.4 * t), confidence, 40.0 * t, (64, 64)) for t in range(2)]
    frames = {}
    for engine in (plate_run.engine, plate_run.engine.with_suffix(".pt")):
        target = Target.load(engine)
        assert target.per_target["background_plate"].shape == (1, 3, 64, 64)
        retargeter = Retargeter(target, live=False)
        retargeter.fit_source(np.stack([p.joints_px for p in poses]), np.stack([p.confidence for p in poses]))
        frames[engine.suffix] = [retargeter.generate(pose).generated for pose in poses]
    assert frames[".onnx"][1].shape == (64, 64, 3)
    for onnx_frame, torch_frame in zip(frames[".onnx"], frames[".pt"], strict=True):
        assert np.abs(onnx_frame.astype(int) - torch_frame.astype(int)).max() <= 1
    live = Retargeter(Target.load(plate_run.engine), live=True)  # the live path: poses through track
    try:
        live_frames = [live.generate(live.track(pose)).generated for pose in poses]
    finally:
        live.close()
    assert live_frames[-1].shape == (64, 64, 3) and live_frames[-1].std() > 0
    # The plate is composited: a white plate brightens every pixel the alpha does not fully cover.
    target = Target.load(plate_run.engine)
    stick = torch.zeros(1, 3, 64, 64)
    inputs = {"stick_figure": stick, "previous_frame": torch.zeros_like(stick)}
    dark = target.generate({**inputs, "background_plate": torch.zeros_like(stick)}).clone()
    bright = target.generate({**inputs, "background_plate": torch.ones_like(stick)})
    assert bool((bright > dark).all())


def test_evaluate_scores_the_model_and_the_same_plate(plate_run: PlateRun, tmp_path: Path) -> None:
    from PIL import Image

    from train.cli import evaluate_main
    from train.dataset import load_prepared
    from train.evaluate import BACKGROUND_LABEL, background_plate

    out = tmp_path / "eval"
    assert evaluate_main([str(plate_run.engine), "--data", str(plate_run.data), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_frames"] >= 1 and -1 <= metrics["ssim"] <= 1
    assert BACKGROUND_LABEL in (out / "metrics.md").read_text()
    plate = background_plate(load_prepared(plate_run.data))
    target = Target.load(plate_run.engine)
    fed = (target.per_target["background_plate"][0].permute(1, 2, 0).numpy() * 255).round()
    np.testing.assert_array_equal(plate, fed.astype(np.uint8))  # the row's plate is the model's plate
    np.testing.assert_array_equal(np.asarray(Image.open(out / "background.png")), plate)


def test_global_local_and_face_stages_composite_over_the_plate(plate_run: PlateRun, tmp_path: Path) -> None:
    """The local enhancer (and the global stage at half the canvas before it) composite too, and the face
    stage follows; the export runs."""
    from export.onnx import export_onnx
    from train.checkpoint import load_generator

    checkpoint = train_tiny_stages(plate_run.data, tmp_path / "run", overrides=PLATE_OVERRIDES)
    generator, _ = load_generator(checkpoint)
    assert generator.spec.kind == "local" and generator.spec.composite_over == "background_plate"
    engine = export_onnx(checkpoint, tmp_path / "staged.onnx").onnx_path
    target = Target.load(engine)
    stick = torch.zeros(1, 3, 64, 64)
    inputs = {"stick_figure": stick, "previous_frame": torch.zeros_like(stick)}
    dark = target.generate({**inputs, "background_plate": torch.zeros_like(stick)}).clone()
    bright = target.generate({**inputs, "background_plate": torch.ones_like(stick)})
    assert bool((bright > dark).all())


def test_the_mobile_generator_trains_over_the_plate(plate_run: PlateRun, tmp_path: Path) -> None:
    from train.checkpoint import load_generator
    from train.config import load_config
    from train.fit import fit

    config = load_config(None, [*TINY_MODEL_OVERRIDES, "generator.kind=mobile", "steps=1", *PLATE_OVERRIDES])
    generator, _ = load_generator(fit(plate_run.data, tmp_path / "run", config))
    assert generator.spec.kind == "mobile" and generator.spec.composite_over == "background_plate"
    assert not generator.learned_background and not any(
        p.shape[-2:] == (64, 64) for p in generator.parameters()
    )
    with pytest.raises(ValueError, match="two backgrounds"):
        load_config(None, ["generator.kind=mobile", "generator.background_hw=[64,64]", *PLATE_OVERRIDES])
