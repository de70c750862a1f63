"""Shared fixtures: tiny generated datasets, and the test videos: the real ones in ``../shared/data`` where
that folder is present, a rendered dancer otherwise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kernels.rasterize import RenderParams
from realtime.pose.normalize import body_stats
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.dataset import Crop, PreparedMeta, write_prepared

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_video(name: str) -> Path:
    """Path of a real video in ``../shared/data``; skips the test, with the reason, where it is absent (for
    the tests that need real footage: a real person's frame, a real camera's picture)."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real test video {path} is absent (../shared/data is not beside this checkout)")
    return path


def shared_video(name: str) -> Path:
    """A video of one person dancing, full body, static camera: the real ``../shared/data/NAME`` where that
    folder is beside this checkout, else the rendered source dancer (:func:`train.synthetic.source.
    cached_source_video`: 12 s, 24 fps, 480x640, rendered once per machine into its cache), so that a fresh
    clone runs every test that drives the pipeline with a video. Tests must not depend on the file's name or
    size (read them from the returned path)."""
    path = SHARED_DATA / name
    if path.is_file():
        return path
    from train.synthetic.source import cached_source_video

    return cached_source_video().path


def standing_pose(width: int, height: int, phase: float = 0.0) -> np.ndarray:
    """A hand-made frontal pose ``(NUM_JOINTS, 2)`` filling a ``width`` x ``height`` canvas; ``phase``
    (radians) swings the arms so a sequence of phases moves."""
    cx, s = width / 2, height / 256
    pts = {
        Joint.NOSE: (0, 40), Joint.RIGHT_EYE: (-5, 35), Joint.LEFT_EYE: (5, 35),
        Joint.RIGHT_EAR: (-11, 38), Joint.LEFT_EAR: (11, 38), Joint.NECK: (0, 62),
        Joint.RIGHT_SHOULDER: (-24, 64), Joint.LEFT_SHOULDER: (24, 64),
        Joint.MID_HIP: (0, 130), Joint.RIGHT_HIP: (-14, 130), Joint.LEFT_HIP: (14, 130),
        Joint.RIGHT_KNEE: (-16, 175), Joint.LEFT_KNEE: (16, 175),
        Joint.RIGHT_ANKLE: (-17, 220), Joint.LEFT_ANKLE: (17, 220),
        Joint.RIGHT_HEEL: (-19, 226), Joint.LEFT_HEEL: (19, 226),
        Joint.RIGHT_BIG_TOE: (-24, 232), Joint.LEFT_BIG_TOE: (24, 232),
    }  # fmt: skip
    joints = np.zeros((NUM_JOINTS, 2), np.float32)
    for joint, (x, y) in pts.items():
        joints[joint] = (cx + x * s, y * s)
    for side, sign in ((("RIGHT"), -1), (("LEFT"), 1)):
        shoulder = joints[Joint[f"{side}_SHOULDER"]]
        angle = math.pi / 2 + sign * (0.4 + 0.6 * math.sin(phase))
        elbow = shoulder + 34 * s * np.array([sign * math.cos(angle - math.pi / 2), math.sin(angle)])
        joints[Joint[f"{side}_ELBOW"]] = elbow
        joints[Joint[f"{side}_WRIST"]] = elbow + 30 * s * np.array([sign * 0.5, 0.85])
    return joints


def make_tiny_prepared(root: Path, *, num_frames: int = 8, width: int = 64, height: int = 64) -> Path:
    """Write a small generated prepared dataset: a stick figure waving its arms, and as "frames" a blurred,
    recolored copy of the stick figure over a gray background (something a generator can learn)."""
    params = RenderParams.for_canvas(width, height)
    joints = np.stack([standing_pose(width, height, 0.6 * i) for i in range(num_frames)])
    confidence = np.ones((num_frames, NUM_JOINTS), np.float32)
    sticks = rasterize_stick_figure(
        torch.from_numpy(joints), torch.from_numpy(confidence), height=height, width=width, params=params
    )
    body = torch.nn.functional.avg_pool2d(sticks, 3, stride=1, padding=1).amax(dim=1, keepdim=True)
    frames = 0.4 + 0.5 * torch.cat([body, 0.6 * body, 0.3 * body], dim=1)
    to_u8 = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # noqa: E731
    face = np.stack([joints[:, Joint.NOSE] - 6, joints[:, Joint.NOSE] + 6], axis=1).reshape(num_frames, 4)
    meta = PreparedMeta(
        source_video="generated",
        fps=24.0,
        num_frames=num_frames,
        canvas_width=width,
        canvas_height=height,
        crop=Crop(x0=0.0, y0=0.0, scale=1.0),
        render=params,
        stats=body_stats(joints, confidence),
        train_end=max(2, int(round(num_frames * 0.85))),
        face_box_size_px=12.0,
    )
    return write_prepared(
        root,
        meta,
        frames=to_u8(frames),
        stick_figures=to_u8(sticks),
        masks=(to_u8(body)[..., 0] > 110).astype(np.uint8) * 255,
        joints_px=joints.astype(np.float32),
        confidence=confidence,
        face_boxes=face.astype(np.float32),
        timestamps_ms=np.arange(num_frames, dtype=np.float64) * 1000 / 24,
    )


@pytest.fixture
def tiny_prepared(tmp_path: Path) -> Path:
    """A generated 8-frame, 64x64 prepared dataset (see :func:`make_tiny_prepared`)."""
    return make_tiny_prepared(tmp_path / "prepared")


#: Overrides that make a model small enough to train a step in about a second on a CPU.
TINY_MODEL_OVERRIDES = (
    "generator.ngf=4",
    "generator.n_downsample=2",
    "generator.n_blocks=1",
    "discriminator.ndf=4",
    "discriminator.n_scales=1",
    "discriminator.n_layers=2",
    "sample_every=1000",
)


def train_tiny(data_dir: Path, run_dir: Path, steps: int = 1) -> Path:
    """Train a tiny model on ``data_dir`` for ``steps`` steps; returns its checkpoint."""
    from train.config import load_config
    from train.fit import fit

    config = load_config(None, [*TINY_MODEL_OVERRIDES, f"steps={steps}"])
    return fit(data_dir, run_dir, config)


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported ``.onnx`` target (with its ``.json`` sidecar) of a tiny model trained one step on the
    generated 64x64 dataset."""
    from export.onnx import export_onnx

    root = tmp_path_factory.mktemp("tiny_engine")
    data = make_tiny_prepared(root / "prepared")
    checkpoint = train_tiny(data, root / "run")
    return export_onnx(checkpoint, root / "tiny.onnx").onnx_path


#: Overrides for the tiny local-enhancer and face stages (with :data:`TINY_MODEL_OVERRIDES`).
TINY_STAGE_OVERRIDES = (
    "local.n_blocks=1",
    "face.ngf=4",
    "face.n_downsample=2",
    "face.n_blocks=1",
    "face.ndf=4",
    "face.n_layers=1",
    "threads=1",
)


def train_tiny_stages(
    data_dir: Path,
    run_dir: Path,
    stages: tuple[str, ...] = ("global", "local", "face"),
    steps: int = 1,
    overrides: tuple[str, ...] = (),
) -> Path:
    """Train a tiny model through ``stages``, ``steps`` steps each; returns ``run_dir/checkpoint.pt`` (the
    last stage's checkpoint)."""
    from train.config import load_config
    from train.fit import fit

    config = load_config(
        None,
        [
            *TINY_MODEL_OVERRIDES, *TINY_STAGE_OVERRIDES, f"stages=[{','.join(stages)}]", f"steps={steps}",
            f"local.steps={steps}", f"face.steps={steps}", *overrides,
        ],
    )  # fmt: skip
    return fit(data_dir, run_dir, config)


@pytest.fixture(scope="session")
def tiny_face_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported ``.onnx`` target with a face model (``.face.onnx``) and sidecar: a tiny model trained two
    steps per stage through global, local and face on the generated 64x64 dataset. Its run directory is
    ``ENGINE.parent / "run"``."""
    from export.onnx import export_onnx

    root = tmp_path_factory.mktemp("tiny_face_engine")
    data = make_tiny_prepared(root / "prepared")
    checkpoint = train_tiny_stages(data, root / "run", steps=2)
    return export_onnx(checkpoint, root / "tiny.onnx").onnx_path


def offer_with_extmap(sdp: str, extension_id: int, uri: str) -> str:
    """``sdp`` with one more header extension (``a=extmap:ID URI``) after its last one: a browser-like offer
    from aiortc's (Chromium offers extensions aiortc does not, such as the playout delay)."""
    lines = sdp.split("\r\n")
    at = max(i for i, line in enumerate(lines) if line.startswith("a=extmap:"))
    lines.insert(at + 1, f"a=extmap:{extension_id} {uri}")
    return "\r\n".join(lines)


DANCE_POSE_FRAMES = 96
"""Frames of ``source_dance.mp4`` in the :func:`dance_poses` fixture."""


@pytest.fixture(scope="session")
def dance_poses() -> list:
    """MediaPipe's poses (video mode) of the first :data:`DANCE_POSE_FRAMES` frames of ``source_dance.mp4``,
    estimated once per test session (the robustness and the action-handover acceptance tests drive the
    bundled mannequin with them)."""
    from realtime.pose.estimators import MediaPipePose
    from realtime.video import read_frames

    video = shared_video("source_dance.mp4")
    with MediaPipePose(video_mode=True) as estimator:
        return [estimator.estimate(rgb, ts) for rgb, ts in read_frames(video, DANCE_POSE_FRAMES)]
