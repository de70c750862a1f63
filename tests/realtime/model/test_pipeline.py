import numpy as np
import pytest
import torch

from realtime.model.backends import BackendError
from realtime.model.bundle import BundleError
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.skeleton import NUM_JOINTS


def test_load_errors_are_clear(tiny_engine, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        Target.load(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    broken.with_suffix(".json").write_text(tiny_engine.with_suffix(".json").read_text())
    with pytest.raises(BackendError, match="cannot load"):
        Target.load(broken)
    with pytest.raises(BackendError, match="unknown engine type"):
        Target.load(tiny_engine.with_suffix(".json"))
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(tiny_engine.read_bytes())
    with pytest.raises(BundleError, match="no sidecar"):
        Target.load(lonely)
    plan = tmp_path / "t.plan"
    plan.write_bytes(b"x")
    plan.with_suffix(".json").write_text(tiny_engine.with_suffix(".json").read_text())
    with pytest.raises(BackendError, match="TensorRT"):
        Target.load(plan)


def test_frame_with_nobody_gives_an_empty_stick_figure_and_a_frame(tiny_engine):
    target = Target.load(tiny_engine)
    retargeter = Retargeter(target, live=True)
    try:
        result = retargeter.process(np.full((120, 160, 3), 90, np.uint8), timestamp_ms=0.0)
    finally:
        retargeter.close()
        retargeter.close()  # idempotent
    assert result.pose.is_empty and result.normalized.is_empty
    assert result.stick_figure.shape == (64, 64, 3) and result.stick_figure.max() == 0
    assert result.generated.shape == (64, 64, 3) and result.generated.dtype == np.uint8
    assert not np.shares_memory(result.stick_figure, result.generated)  # two images, never joined on the CPU
    assert set(result.timings_ms) == {"pose", "normalize", "rasterize", "generate"}


def test_temporal_generator_sees_its_previous_output(tiny_engine):
    target = Target.load(tiny_engine)
    retargeter = Retargeter(target, live=False)
    joints = np.random.default_rng(1).uniform(10, 50, (4, NUM_JOINTS, 2)).astype(np.float32)
    conf = np.ones((4, NUM_JOINTS), np.float32)
    retargeter.fit_source(joints, conf)
    from realtime.pose.estimators import PoseFrame

    pose = PoseFrame(joints[0], conf[0], 0.0, (64, 64))
    first = retargeter.generate(pose).generated
    second = retargeter.generate(pose).generated  # same pose, but now conditioned on `first`
    retargeter.reset()
    again = retargeter.generate(pose).generated
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - second.astype(int)).max() > 0
    assert not retargeter.generate(pose).stick_figure.max() == 0


def test_inference_weights_run_like_the_onnx_export(tiny_engine, tmp_path):
    onnx_target = Target.load(tiny_engine)
    weights = tmp_path / "tiny.pt"  # export wrote tiny.pt beside tiny.onnx; serve it with the same sidecar
    weights.write_bytes(tiny_engine.with_suffix(".pt").read_bytes())
    weights.with_suffix(".json").write_text(tiny_engine.with_suffix(".json").read_text())
    torch_target = Target.load(weights)
    assert torch_target.backend.name == "torch" and torch_target.canvas_size == onnx_target.canvas_size
    x = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(2))
    inputs = {"stick_figure": x, "previous_frame": x}
    np.testing.assert_allclose(
        torch_target.generate(inputs).numpy(), onnx_target.generate(inputs).numpy(), atol=1e-4
    )


def test_a_training_checkpoint_is_not_served(tiny_engine):
    checkpoint = tiny_engine.parent / "run" / "checkpoint.pt"
    checkpoint.with_suffix(".json").write_text(tiny_engine.with_suffix(".json").read_text())
    try:
        with pytest.raises(BackendError, match="export it first"):
            Target.load(checkpoint)
    finally:
        checkpoint.with_suffix(".json").unlink()


def test_live_poses_are_smoothed(tiny_engine):
    from conftest import shared_video
    from realtime.video import read_frames

    frames = [f for f, _ in read_frames(shared_video("source_dance.mp4"), max_frames=24)]
    target = Target.load(tiny_engine)
    tracks = {}
    for name, kwargs in (("filtered", {}), ("raw", {"one_euro": None})):
        retargeter = Retargeter(target, live=True, **kwargs)
        try:
            tracks[name] = np.stack(
                [retargeter.estimate(f, 1000.0 * i / 24).joints_px for i, f in enumerate(frames)]
            )
        finally:
            retargeter.close()
    # The filter changes the poses, by less than the dancer's size, and makes them move less per frame.
    change = np.abs(tracks["filtered"] - tracks["raw"]).max()
    assert 0 < change < 100
    step = {name: np.abs(np.diff(t, axis=0)).mean() for name, t in tracks.items()}
    assert step["filtered"] < step["raw"]


def test_live_fit_is_redone_as_the_window_doubles_then_every_30_poses(tiny_engine, monkeypatch):
    """A fit on the stream's first pose alone gave the first 2 s of a browser session a stretched neck (the
    first WebRTC frames are blurry); the fit is redone after 2, 4, 8, 16 and 32 poses, then every 30."""
    from conftest import standing_pose
    from realtime.model.pipeline import LIVE_REFIT_EVERY_FRAMES
    from realtime.pose.estimators import PoseFrame

    target = Target.load(tiny_engine)
    retargeter = Retargeter(target, live=True, one_euro=None)
    try:
        fitted_on: list[int] = []
        fit = retargeter.normalizer.fit

        def counting_fit(joints, confidence):
            fitted_on.append(len(joints))
            return fit(joints, confidence)

        monkeypatch.setattr(retargeter.normalizer, "fit", counting_fit)
        width, height = target.canvas_size
        for i in range(70):
            joints = standing_pose(width, height, phase=0.05 * i)
            pose = PoseFrame(joints, np.ones(len(joints), np.float32), 1000.0 * i / 15, (width, height))
            retargeter.track(pose)
        assert LIVE_REFIT_EVERY_FRAMES == 30
        assert fitted_on == [1, 2, 4, 8, 16, 32, 62], fitted_on
    finally:
        retargeter.close()
