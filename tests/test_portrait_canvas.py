"""A portrait (non-square) canvas end to end, as ``python -m train prepare`` now chooses for a portrait
recording: the rendered mannequin written at 64x96 -> two steps of every stage (global, pix2pixHD's local
enhancer, the face GAN) -> ONNX export -> the evaluation, the live pipeline (its canvas clamp and face crop)
and the browser's composed frame, and the offline tool."""

import json

import numpy as np
import pytest

from conftest import shared_video, train_tiny_stages
from export.onnx import export_onnx
from realtime.model.pipeline import Retargeter, Target
from realtime.offline.cli import main as retarget_main
from realtime.pose.estimators import PoseFrame
from realtime.serving.webrtc_track import compose_side_by_side
from realtime.video import read_frames, video_info
from train.cli import evaluate_main
from train.dataset import load_prepared
from train.synthetic.dataset import write_synthetic_dataset

WIDTH, HEIGHT = 64, 96


#: The per-target appearance inputs of issue 18: the warped reference appearance blended in, the background
#: plate composited under the person.
APPEARANCE = (
    "generator.extra_inputs=[appearance_prior,background_plate]",
    "generator.blend_prior=appearance_prior",
    "generator.composite_over=background_plate",
)


@pytest.mark.parametrize(
    ("stages", "overrides"),
    [(("global", "local", "face"), ()), (("global", "face"), APPEARANCE)],
    ids=["stages", "prior_and_plate"],
)
def test_a_portrait_canvas_trains_exports_evaluates_and_runs_live_and_offline(
    tmp_path, capsys, stages, overrides
):
    data_dir = tmp_path / "data"
    write_synthetic_dataset(data_dir, num_frames=10, width=WIDTH, height=HEIGHT, seed=3, progress=False)
    data = load_prepared(data_dir)
    assert data.frames.shape == (10, HEIGHT, WIDTH, 3)

    checkpoint = train_tiny_stages(data_dir, tmp_path / "run", stages=stages, steps=2, overrides=overrides)
    engine = export_onnx(checkpoint, tmp_path / "portrait.onnx").onnx_path
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    assert (sidecar["canvas_width"], sidecar["canvas_height"]) == (WIDTH, HEIGHT)
    target = Target.load(engine)
    assert target.canvas_size == (WIDTH, HEIGHT) and target.face is not None
    if overrides:  # the plate (and the reference appearance) at the canvas's size
        shapes = {name: tuple(value.shape) for name, value in target.per_target.items()}
        assert shapes["background_plate"][-2:] == shapes["reference_images"][-2:] == (HEIGHT, WIDTH), shapes
    else:
        assert not target.per_target

    assert evaluate_main([str(engine), "--data", str(data_dir), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_frames"] == len(data.meta.heldout) and -1 <= metrics["ssim"] <= 1

    # The live pipeline on the target's own poses, one of them far to the right of the narrow canvas: the
    # frame is the canvas's shape, the clamp keeps the body on it, the face residual runs on its crop.
    retargeter = Retargeter(target, live=False)
    retargeter.fit_source(data.joints_px, data.confidence)
    for i, shift_px in enumerate((0.0, 3.0 * WIDTH)):
        joints = data.joints_px[i] + np.array([shift_px, 0.0], np.float32)
        result = retargeter.generate(PoseFrame(joints, data.confidence[i], 40.0 * i, (WIDTH, HEIGHT)))
        assert result.generated.shape == result.stick_figure.shape == (HEIGHT, WIDTH, 3)
        shown = result.normalized.joints_px[result.normalized.confidence >= 0.5]
        assert len(shown) > 10
        assert shown[:, 0].min() >= 0 and shown[:, 0].max() <= WIDTH, shown
        assert shown[:, 1].min() >= 0 and shown[:, 1].max() <= HEIGHT, shown
        assert result.stick_figure.max() > 100  # a figure was drawn
        frame = compose_side_by_side(result.stick_figure, result.generated)
        assert (frame.width, frame.height) == (2 * WIDTH, HEIGHT)
        composed = frame.to_ndarray(format="rgb24")
        np.testing.assert_array_equal(composed[:, WIDTH:], result.generated)

    source_video = shared_video("source_dance.mp4")
    out = tmp_path / "dance.mp4"
    code = retarget_main(
        ["--engine", str(engine), "--source", str(source_video), "--out", str(out), "--max-frames", "4"]
    )
    assert code == 0, capsys.readouterr().err
    info, source = video_info(out), video_info(source_video)
    source_width = round(source.width * HEIGHT / source.height / 2) * 2
    assert (info.width, info.height) == (source_width + 2 * WIDTH, HEIGHT)
    frames = np.stack([f for f, _ in read_frames(out)])
    assert len(frames) == 4 and frames[:, :, source_width : source_width + WIDTH].max() > 100
