"""The whole chain: prepare -> train -> export -> retarget, on the real videos in ../shared/data where
present, else on the rendered source dancer (as target and as source)."""

import json

import numpy as np

from conftest import shared_video, train_tiny
from export.onnx import export_onnx
from realtime.model.pipeline import Target
from realtime.offline.cli import main as retarget_main
from realtime.video import read_frames, video_info
from train.cli import prepare_main
from train.dataset import load_prepared


def test_target_video_to_dance_video(tmp_path, capsys):
    target_video = shared_video("target_taiji.mp4")
    source_video = shared_video("source_dance.mp4")

    assert (
        prepare_main(
            [str(target_video), "--out", str(tmp_path / "prep"), "--size", "64x64", "--max-frames", "14"]
        )
        == 0
    )
    data = load_prepared(tmp_path / "prep")
    assert data.meta.num_frames == 14 and data.meta.train_end == 12 and list(data.meta.heldout) == [12, 13]
    assert data.confidence.max(axis=1).min() > 0.5  # the person is found in every frame
    assert data.frames.shape == (14, 64, 64, 3) and data.frames.std() > 10  # real picture content
    assert (tmp_path / "prep" / "preview.png").is_file()
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["stats"]["near_height_px"] > 20  # the person fills a good part of the canvas

    checkpoint = train_tiny(tmp_path / "prep", tmp_path / "run", steps=2)
    engine = export_onnx(checkpoint, tmp_path / "taiji.onnx").onnx_path
    assert Target.load(engine).canvas_size == (64, 64)

    out = tmp_path / "dance.mp4"
    code = retarget_main(
        ["--engine", str(engine), "--source", str(source_video), "--out", str(out), "--max-frames", "10"]
    )
    assert code == 0, capsys.readouterr().err
    assert "10 frames (10 with a person)" in capsys.readouterr().out
    frames = [f for f, _ in read_frames(out)]
    info = video_info(out)
    assert len(frames) == 10 and info.height == 64
    # source (scaled to 64 rows) | stick figure | generated
    source = video_info(source_video)
    source_width = round(source.width * 64 / source.height / 2) * 2
    assert info.width == source_width + 64 + 64
    sticks = np.stack(frames)[:, :, source_width : source_width + 64]
    assert sticks.max() > 100  # a stick figure was drawn in every run


def test_self_reconstruction_metrics_on_generated_data(tiny_engine, tiny_prepared, tmp_path):
    from train.cli import evaluate_main

    assert evaluate_main([str(tiny_engine), "--data", str(tiny_prepared), "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_frames"] == 1  # the 8-frame dataset holds out its last frame
    assert -1 <= metrics["ssim"] <= 1 and metrics["psnr_db"] > 0
    assert (tmp_path / "samples.png").is_file()
