"""Adding a generator input end to end: declare it, produce it, train, export, run.

The only code this takes is the declaration below (and the config key that selects it): no file of the project
changes. That is the acceptance of the generator-input declaration (docs/architecture.md, "Generator inputs"),
for a per-frame input (the silhouette) and a per-target one (the mean training frame) alike.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared, standing_pose
from realtime.model.bundle import (
    BundleError,
    file_sha256,
    read_bundle,
    read_target_inputs,
    write_bundle,
    write_target_inputs,
)
from realtime.model.inputs import (
    STICK_FIGURE,
    TEMPORAL_INPUTS,
    FrameContext,
    GeneratorInputs,
    InputRole,
    TargetFrames,
    TensorSpec,
    assemble_inputs,
    declare_input,
    forget_input,
)
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.pose.skeleton import NUM_JOINTS

#: A dummy one-channel input: the stick figure's silhouette (where any limb is drawn).
SILHOUETTE = TensorSpec("silhouette", 1, InputRole.PER_FRAME, "test input: the stick figure's coverage")


def produce_silhouette(context: FrameContext) -> torch.Tensor:
    return context.stick_figure.amax(dim=1, keepdim=True)


@pytest.fixture
def silhouette_declared():
    declare_input(SILHOUETTE, produce_silhouette)
    yield SILHOUETTE
    forget_input(SILHOUETTE.name)


def test_a_declared_input_trains_exports_and_runs(silhouette_declared, tmp_path: Path) -> None:
    from export.onnx import export_onnx
    from train.checkpoint import load_generator
    from train.config import load_config
    from train.fit import fit

    data = make_tiny_prepared(tmp_path / "prepared")
    config = load_config(None, [*TINY_MODEL_OVERRIDES, "steps=2", "generator.extra_inputs=[silhouette]"])
    checkpoint = fit(data, tmp_path / "run", config)

    generator, _ = load_generator(checkpoint)
    assert generator.inputs.names == ("stick_figure", "previous_frame", "silhouette")
    assert generator.model[1].in_channels == 7  # sized from the declaration: 3 + 3 + 1

    report = export_onnx(checkpoint, tmp_path / "dummy.onnx")
    graph = onnx.load(str(report.onnx_path)).graph
    assert [i.name for i in graph.input] == ["stick_figure", "previous_frame", "silhouette"]
    bundle = read_bundle(report.onnx_path)
    assert bundle.generator_inputs == GeneratorInputs((*generator.inputs.inputs[:2], SILHOUETTE))

    joints = standing_pose(64, 64)
    confidence = np.ones(NUM_JOINTS, np.float32)
    frames = {}
    for engine in (report.onnx_path, report.onnx_path.with_suffix(".pt")):
        retargeter = Retargeter(Target.load(engine), live=False)
        retargeter.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
        frames[engine.suffix] = [
            retargeter.generate(PoseFrame(joints, confidence, t, (64, 64))) for t in (0, 1)
        ]
    assert frames[".onnx"][1].generated.shape == (64, 64, 3)
    for onnx_result, torch_result in zip(frames[".onnx"], frames[".pt"], strict=True):
        assert np.abs(onnx_result.generated.astype(int) - torch_result.generated.astype(int)).max() <= 1

    # The input is fed and used: a different silhouette changes the generated frame.
    target = Target.load(report.onnx_path)
    stick = torch.zeros(1, 3, 64, 64)
    stick[..., 20:40, 28:36] = 1.0
    inputs = {"stick_figure": stick, "previous_frame": torch.zeros_like(stick)}
    with_silhouette = target.generate({**inputs, "silhouette": stick[:, :1]}).clone()
    without = target.generate({**inputs, "silhouette": torch.zeros(1, 1, 64, 64)})
    assert not torch.equal(with_silhouette, without)


def test_an_undeclared_input_fails_with_the_declared_names() -> None:
    from train.config import load_config
    from train.models import generator_inputs

    config = load_config(None, ["generator.extra_inputs=[nothing_like_this]"])
    with pytest.raises(KeyError, match="declared: .*stick_figure"):
        generator_inputs(config.generator)


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a producer"):
        declare_input(TensorSpec("orphan", 1, InputRole.PER_FRAME))
    with pytest.raises(ValueError, match="declared already"):
        declare_input(TensorSpec("stick_figure", 1, InputRole.PER_FRAME), produce_silhouette)
    with pytest.raises(ValueError, match="state input"):
        GeneratorInputs((TensorSpec("state", 1, InputRole.STATE),))
    spec = GeneratorInputs.of(["stick_figure", "previous_frame"])
    assert GeneratorInputs.from_json(spec.to_json()) == spec and spec.in_channels == 6 and spec.temporal


# -- a per-target input ------------------------------------------------------------------------------------

#: A dummy three-channel per-target input: the per-pixel mean of the target's training frames.
MEAN_FRAME = TensorSpec("mean_frame", 3, InputRole.PER_TARGET, "test input: the mean training frame")


def produce_mean_frame(frames: TargetFrames) -> np.ndarray:
    mean = np.asarray(frames.frames, np.float32).mean(axis=0) / 255.0
    return np.ascontiguousarray(mean.transpose(2, 0, 1), np.float32)


@dataclass(frozen=True)
class MeanFrameRun:
    data: Path
    checkpoint: Path
    engine: Path


@pytest.fixture(scope="module")
def mean_frame_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeanFrameRun]:
    """The mean frame declared, a tiny dataset prepared with it, a model trained 2 steps on it, exported."""
    from export.onnx import export_onnx
    from train.config import load_config
    from train.fit import fit

    declare_input(MEAN_FRAME, produce_mean_frame)
    try:
        root = tmp_path_factory.mktemp("mean_frame")
        data = make_tiny_prepared(root / "prepared")
        config = load_config(None, [*TINY_MODEL_OVERRIDES, "steps=2", "generator.extra_inputs=[mean_frame]"])
        checkpoint = fit(data, root / "run", config)
        engine = export_onnx(checkpoint, root / "dummy.onnx").onnx_path
        yield MeanFrameRun(data, checkpoint, engine)
    finally:
        forget_input(MEAN_FRAME.name)


def _training_mean(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The mean frame of all the prepared frames, and of the training frames."""
    from train.dataset import load_prepared

    data = load_prepared(data_dir)
    return produce_mean_frame(
        TargetFrames(data.frames, data.masks, data.joints_px, data.confidence, range(data.meta.num_frames))
    ), produce_mean_frame(
        TargetFrames(
            data.frames[: data.meta.train_end], data.masks[: data.meta.train_end],
            data.joints_px[: data.meta.train_end], data.confidence[: data.meta.train_end],
            range(data.meta.train_end),
        )
    )  # fmt: skip


def test_a_per_target_input_is_prepared_trained_exported_and_run(mean_frame_run: MeanFrameRun) -> None:
    from train.checkpoint import load_checkpoint, load_generator
    from train.dataset import load_prepared, target_input_path

    # Prepared: target_inputs/mean_frame.npy, from the training frames only (never the held-out ones).
    stored = np.load(target_input_path(mean_frame_run.data, "mean_frame"))
    assert stored.dtype == np.float16 and stored.shape == (3, 64, 64)
    all_frames, training = _training_mean(mean_frame_run.data)
    assert load_prepared(mean_frame_run.data).meta.train_end < 8
    assert np.abs(all_frames - training).max() > 0.01  # the held-out frames would show (far above 1e-3)
    np.testing.assert_allclose(stored.astype(np.float32), training, atol=1e-3)

    # Trained: the generator is sized from it, and the checkpoint carries the values it was trained with.
    generator, checkpoint = load_generator(mean_frame_run.checkpoint)
    assert generator.inputs.names == ("stick_figure", "previous_frame", "mean_frame")
    first_conv = next(m for m in generator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 9  # sized from the declaration: 3 + 3 + 3
    trained = load_checkpoint(mean_frame_run.checkpoint).target_inputs["mean_frame"]
    assert trained.dtype == torch.float32 and tuple(trained.shape) == (3, 64, 64)
    np.testing.assert_array_equal(trained.numpy(), stored.astype(np.float32))

    # Exported: a graph input named as declared, and the bundle file named and hashed in the sidecar.
    engine = mean_frame_run.engine
    graph = onnx.load(str(engine)).graph
    assert [i.name for i in graph.input] == ["stick_figure", "previous_frame", "mean_frame"]
    bundle = read_bundle(engine)
    assert bundle.generator_inputs.with_role(InputRole.PER_TARGET) == (MEAN_FRAME,)
    assert bundle.target_inputs is not None and bundle.target_inputs.file == "dummy.target_inputs.npz"
    assert bundle.target_inputs.sha256 == file_sha256(engine.parent / "dummy.target_inputs.npz")
    np.testing.assert_array_equal(read_target_inputs(engine, bundle)["mean_frame"], trained.numpy())


def _poses(count: int) -> list[PoseFrame]:
    confidence = np.ones(NUM_JOINTS, np.float32)
    return [PoseFrame(standing_pose(64, 64, 0.3 * t), confidence, 40.0 * t, (64, 64)) for t in range(count)]


def test_the_pipeline_feeds_per_target_inputs(mean_frame_run: MeanFrameRun) -> None:
    engine = mean_frame_run.engine
    poses = _poses(3)
    frames = {}
    for path in (engine, engine.with_suffix(".pt")):
        target = Target.load(path)
        # Loaded once per target, on its device; every frame is fed that very tensor (no copy).
        loaded = target.per_target["mean_frame"]
        assert loaded.shape == (1, 3, 64, 64) and loaded.device == target.device
        fed: list[torch.Tensor] = []
        generate = target.generate

        def recording(inputs, out=None, generate=generate, fed=fed):
            fed.append(inputs["mean_frame"])
            return generate(inputs, out)

        target.generate = recording  # type: ignore[method-assign]
        retargeter = Retargeter(target, live=False)
        retargeter.fit_source(np.stack([p.joints_px for p in poses]), np.stack([p.confidence for p in poses]))
        frames[path.suffix] = [retargeter.generate(pose).generated for pose in poses]
        assert len(fed) == 3 and all(value is loaded for value in fed)
    for onnx_frame, torch_frame in zip(frames[".onnx"], frames[".pt"], strict=True):
        assert np.abs(onnx_frame.astype(int) - torch_frame.astype(int)).max() <= 1

    # Live: poses through track (the live fit of the source's statistics), then generate.
    live = Retargeter(Target.load(engine), live=True)
    try:
        live_frames = [live.generate(live.track(pose)).generated for pose in poses]
    finally:
        live.close()
    assert live_frames[-1].shape == (64, 64, 3) and live_frames[-1].std() > 0

    # The input is used: another per-target tensor changes the generated frame.
    target = Target.load(engine)
    other = Target(target.backend, target.bundle, engine, per_target={"mean_frame": np.zeros((3, 64, 64))})
    results = []
    for each in (target, other):
        retargeter = Retargeter(each, live=False)
        retargeter.fit_source(np.stack([p.joints_px for p in poses]), np.stack([p.confidence for p in poses]))
        results.append(retargeter.generate(poses[0]).generated)
    assert np.abs(results[0].astype(int) - results[1].astype(int)).max() > 0


class _NoPoses:
    """A pose estimator that sees nobody (the evaluation's pose measures are not under test here)."""

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        return PoseFrame.empty(timestamp_ms, (rgb.shape[1], rgb.shape[0]))


def test_evaluation_and_teacher_feed_per_target_inputs(mean_frame_run: MeanFrameRun) -> None:
    from torch.utils.data import default_collate

    from train.checkpoint import target_from_checkpoint
    from train.dataset import FramePairs, load_prepared
    from train.evaluate import evaluate_model
    from train.stages import Teacher

    data = load_prepared(mean_frame_run.data)
    target = Target.load(mean_frame_run.engine)
    zeros = Target(
        target.backend, target.bundle, target.path, per_target={"mean_frame": np.zeros((3, 64, 64))}
    )
    in_memory = target_from_checkpoint(mean_frame_run.checkpoint)
    torch.testing.assert_close(in_memory.per_target["mean_frame"], target.per_target["mean_frame"])
    scores = [
        evaluate_model(each, data, estimator=_NoPoses()).result.frame for each in (target, in_memory, zeros)
    ]
    assert scores[0].num_frames == len(data.meta.heldout)
    assert scores[0].ssim == pytest.approx(scores[1].ssim, abs=1e-3)  # engine and checkpoint alike
    assert scores[0].ssim != pytest.approx(scores[2].ssim, abs=1e-6)  # the per-target input is fed

    # A teacher feeds its own per-target inputs: a student without them learns from it all the same.
    teacher = Teacher.load(mean_frame_run.engine, TEMPORAL_INPUTS, (64, 64))
    batch = default_collate([FramePairs(data, inputs=TEMPORAL_INPUTS)[i] for i in (0, 1)])
    assert "mean_frame" not in batch
    teacher_prev, teacher_frame = teacher.unroll(batch)
    assert teacher_prev is not None
    inputs = {
        "stick_figure": batch["stick_figure_prev"],
        "previous_frame": torch.zeros_like(batch["frame"]),
        "mean_frame": teacher.target.per_target["mean_frame"].expand(2, -1, -1, -1).contiguous(),
    }
    torch.testing.assert_close(teacher_prev, target.generate(inputs).clone(), atol=1e-4, rtol=0)


def test_a_per_target_input_declared_later_is_made_on_first_use(
    mean_frame_run: MeanFrameRun, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from train.dataset import FramePairs, load_prepared, load_target_inputs, target_input_path

    data_dir = tmp_path / "prepared"
    shutil.copytree(mean_frame_run.data, data_dir)
    target_input_path(data_dir, "mean_frame").unlink()  # as if prepared before mean_frame was declared
    inputs = GeneratorInputs.of(["stick_figure", "previous_frame", "mean_frame"])
    with caplog.at_level(logging.INFO, logger="train.dataset"):
        pairs = FramePairs(load_prepared(data_dir), inputs=inputs)
    assert "per-target input mean_frame: made from" in caplog.text
    stored = np.load(target_input_path(data_dir, "mean_frame"))
    np.testing.assert_allclose(stored.astype(np.float32), _training_mean(data_dir)[1], atol=1e-3)
    item = pairs[0]
    assert torch.equal(item["mean_frame"], torch.from_numpy(stored.astype(np.float32)))
    # Cached: a second reader takes the stored file as it is.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train.dataset"):
        again = load_target_inputs(load_prepared(data_dir), inputs)
    assert "made from" not in caplog.text
    np.testing.assert_array_equal(again["mean_frame"], stored.astype(np.float32))
    # Preparing again into the directory drops what the earlier frames made (here, while undeclared).
    forget_input(MEAN_FRAME.name)
    try:
        make_tiny_prepared(data_dir)
        assert not target_input_path(data_dir, "mean_frame").exists()
    finally:
        declare_input(MEAN_FRAME, produce_mean_frame)


def test_missing_or_mismatched_per_target_files_are_clear_errors(
    mean_frame_run: MeanFrameRun, tmp_path: Path
) -> None:
    for name in ("dummy.onnx", "dummy.json", "dummy.target_inputs.npz"):
        shutil.copy(mean_frame_run.engine.parent / name, tmp_path / name)
    engine = tmp_path / "dummy.onnx"
    assert Target.load(engine).per_target["mean_frame"].shape == (1, 3, 64, 64)

    bundle = read_bundle(engine)
    (tmp_path / "dummy.target_inputs.npz").rename(tmp_path / "elsewhere.npz")
    with pytest.raises(BundleError, match=r"dummy\.target_inputs\.npz is missing .*python -m export\.onnx"):
        Target.load(engine)

    # Another file in its place: the hash tells.
    write_target_inputs(engine, {"mean_frame": np.zeros((3, 64, 64), np.float32)})
    with pytest.raises(BundleError, match="SHA-256"):
        Target.load(engine)

    # A file of the wrong shape, even with its hash in the sidecar.
    entry = write_target_inputs(engine, {"mean_frame": np.zeros((1, 64, 64), np.float32)})
    write_bundle(engine, dataclasses.replace(bundle, target_inputs=entry))
    with pytest.raises(BundleError, match=r"mean_frame has shape \(1, 64, 64\), expected \(3, 64, 64\)"):
        Target.load(engine)

    # Without its entry in the sidecar.
    write_bundle(engine, dataclasses.replace(bundle, target_inputs=None))
    with pytest.raises(BundleError, match="names no per-target inputs file"):
        Target.load(engine)

    # Given in memory with the wrong shape.
    good = Target.load(mean_frame_run.engine)
    with pytest.raises(BundleError, match="mean_frame has shape"):
        Target(good.backend, good.bundle, engine, per_target={"mean_frame": np.zeros((3, 32, 32))})


def test_assemble_inputs_broadcasts_per_target_inputs_and_names_what_is_missing() -> None:
    spec = GeneratorInputs((STICK_FIGURE, TEMPORAL_INPUTS.inputs[1], MEAN_FRAME))
    stick = torch.rand(2, 3, 8, 8)
    previous = torch.rand(2, 3, 8, 8)
    plate = torch.rand(1, 3, 8, 8)
    context = FrameContext(
        torch.zeros(2, NUM_JOINTS, 2), torch.ones(2, NUM_JOINTS), stick, {"mean_frame": plate}
    )
    inputs = assemble_inputs(spec, context, previous)
    assert list(inputs) == ["stick_figure", "previous_frame", "mean_frame"]
    assert inputs["stick_figure"] is stick and inputs["previous_frame"] is previous
    assert inputs["mean_frame"].shape == (2, 3, 8, 8) and torch.equal(inputs["mean_frame"][1], plate[0])
    assert inputs["mean_frame"].data_ptr() == plate.data_ptr()  # a view: nothing copied
    assert (
        assemble_inputs(spec, {"stick_figure": stick}, previous, {"mean_frame": plate}).keys()
        == inputs.keys()
    )
    with pytest.raises(KeyError, match="no per-target input 'mean_frame'"):
        assemble_inputs(spec, {"stick_figure": stick}, previous)
    with pytest.raises(ValueError, match=r"expected \(1 or 2, 3, 8, 8\)"):
        assemble_inputs(spec, {"stick_figure": stick}, previous, {"mean_frame": torch.rand(1, 3, 4, 4)})
    with pytest.raises(ValueError, match="needs a producer"):
        declare_input(TensorSpec("plate", 3, InputRole.PER_TARGET))


def test_version_2_sidecars_are_still_read() -> None:
    import json

    from realtime.model.bundle import BUNDLE_FORMAT_VERSION, TargetBundle, sidecar_path
    from realtime.targets import DEFAULT_TARGET

    data = json.loads(sidecar_path(DEFAULT_TARGET).read_text())
    data["format_version"] = 2
    data.pop("target_inputs", None)
    bundle = TargetBundle.from_json(data)
    assert bundle.format_version == BUNDLE_FORMAT_VERSION == 4 and bundle.target_inputs is None
    assert TargetBundle.from_json(bundle.to_json()) == bundle
    assert read_target_inputs(DEFAULT_TARGET, bundle) == {}


def test_tensorrt_export_profiles_and_keeps_per_target_inputs(
    mean_frame_run: MeanFrameRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TensorRT engine takes the per-target input like the others (profile batch 1..max), and the
    sidecar it rewrites keeps naming the per-target file, which a ``.plan`` reads as ``.onnx`` does."""
    from fake_tensorrt import FakeTensorRT

    import export.tensorrt as et
    import realtime.model.tensorrt_backend as rt

    for name in ("dummy.onnx", "dummy.json", "dummy.target_inputs.npz"):
        shutil.copy(mean_frame_run.engine.parent / name, tmp_path / name)
    monkeypatch.setattr(rt, "cuda_device_info", lambda device: ("Fake GPU", (9, 0)))
    monkeypatch.setattr(et, "verify_plan", lambda plan, src, record, atol, trt=None: 0.01)
    trt = FakeTensorRT()
    et.export_tensorrt(tmp_path / "dummy.onnx", tmp_path / "dummy.plan", trt=trt)
    shapes = {args[0]: args[1:] for name, args in trt.calls if name == "set_shape"}
    assert shapes["mean_frame"] == ((1, 3, 64, 64), (1, 3, 64, 64), (et.DEFAULT_MAX_BATCH, 3, 64, 64))
    plan = tmp_path / "dummy.plan"
    bundle = read_bundle(plan)
    assert bundle.target_inputs is not None and bundle.target_inputs.file == "dummy.target_inputs.npz"
    expected = read_target_inputs(mean_frame_run.engine, read_bundle(mean_frame_run.engine))
    np.testing.assert_array_equal(read_target_inputs(plan, bundle)["mean_frame"], expected["mean_frame"])
