"""The run-time face residual: crops, pasting, the refiner, and the pipeline with an exported face model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import standing_pose
from realtime.model.bundle import read_bundle
from realtime.model.face import (
    FaceRefiner,
    crop_squares,
    face_center_px,
    face_crop_origin,
    face_crop_size_px,
    paste_squares,
)
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.pose.skeleton import FACE_JOINTS, NUM_JOINTS, Joint
from train.stages import crop_faces, paste_faces


class ConstantResidual:
    """A stand-in face model: the same residual everywhere; records its inputs."""

    device = torch.device("cpu")

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def run(self, inputs, out=None):
        stick_crop, frame_crop = inputs["face_stick_figure"], inputs["face_frame"]
        self.calls.append((stick_crop, frame_crop))
        return {"face_residual": torch.full_like(frame_crop, self.value)}


def torch_copy(engine, tmp_path):
    """The exported bundle served by PyTorch: ``NAME.pt`` and ``NAME.face.pt`` (written by export) with a
    sidecar naming the face model's weights."""
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    for suffix in (".pt", ".face.pt"):
        (tmp_path / f"tiny{suffix}").write_bytes(engine.with_name(f"tiny{suffix}").read_bytes())
    sidecar["face_model"] = "tiny.face.pt"
    (tmp_path / "tiny.json").write_text(json.dumps(sidecar))
    return tmp_path / "tiny.pt"


def pose_with_face_at(x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    joints = np.zeros((NUM_JOINTS, 2), np.float32)
    confidence = np.zeros(NUM_JOINTS, np.float32)
    for joint in FACE_JOINTS:
        joints[joint] = (x, y)
        confidence[joint] = 1.0
    joints[Joint.LEFT_EAR] += (2, 0)
    joints[Joint.RIGHT_EAR] -= (2, 0)  # symmetric: the center stays at (x, y)
    return joints, confidence


def test_crop_size_and_origin() -> None:
    assert face_crop_size_px(21.0, 4) == 24 and face_crop_size_px(24.0, 4) == 24
    assert face_crop_size_px(2.0, 8) == 8
    with pytest.raises(ValueError):
        face_crop_size_px(float("nan"), 4)
    assert face_crop_origin(10.0, 20.0, 8) == (6, 16)
    assert face_crop_origin(10.4, 19.6, 8) == (6, 16)
    assert face_crop_origin(-3.0, 2.0, 8) == (-7, -2)


def test_face_center_uses_present_face_joints_only() -> None:
    joints, confidence = pose_with_face_at(30, 12)
    assert face_center_px(joints, confidence, 0.5) == pytest.approx((30, 12))
    confidence[Joint.LEFT_EAR] = 0.0  # the left ear is gone: the mean moves toward the right ear
    center = face_center_px(joints, confidence, 0.5)
    assert center is not None and center[0] < 30
    assert face_center_px(joints, np.zeros(NUM_JOINTS, np.float32), 0.5) is None


@pytest.mark.parametrize("x0, y0", [(5, 7), (-3, 10), (60, 61), (-8, -8), (70, 2)])
def test_crop_and_paste_off_canvas(x0: int, y0: int) -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((2, 3, 64, 64), dtype=np.float32))
    origins = [(x0, y0), (20, 30)]  # one origin per image: the second crop lies inside the canvas
    crop = crop_squares(images, origins, 8)
    assert crop.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(crop[1], images[1, :, 30:38, 20:28])
    for dy in range(8):
        for dx in range(8):
            y, x = y0 + dy, x0 + dx
            expected = images[0, :, y, x] if 0 <= y < 64 and 0 <= x < 64 else 0.0
            np.testing.assert_array_equal(crop[0, :, dy, dx].numpy(), expected)
    pasted = paste_squares(images, crop + 1.0, origins)
    inside = np.zeros((64, 64), bool)
    inside[max(0, y0) : max(0, y0 + 8), max(0, x0) : max(0, x0 + 8)] = True
    np.testing.assert_array_equal(pasted[0, :, ~inside], images[0, :, ~inside])
    np.testing.assert_array_equal(pasted[0, :, inside], images[0, :, inside] + 1.0)
    np.testing.assert_array_equal(pasted[1, :, 30:38, 20:28], images[1, :, 30:38, 20:28] + 1.0)
    with pytest.raises(ValueError, match="one origin per image"):
        crop_squares(images, origins[:1], 8)
    # Training crops and pastes the same pixels, from the face centers.
    centers = torch.tensor([[x0 + 4.0, y0 + 4.0], [24.0, 34.0]])
    np.testing.assert_array_equal(crop_faces(images, centers, 8), crop)
    np.testing.assert_array_equal(paste_faces(images, crop + 1.0, centers), pasted)


def test_training_crop_passes_gradients_to_the_cropped_pixels_only() -> None:
    images = torch.zeros((2, 1, 16, 16), requires_grad=True)
    crop_faces(images, torch.tensor([[4.0, 4.0], [15.0, 15.0]]), 4).sum().backward()
    assert images.grad is not None
    assert images.grad[0].sum() == 16 and images.grad[0, 0, 2:6, 2:6].eq(1).all()
    assert images.grad[1].sum() == 9 and images.grad[1, 0, 13:, 13:].eq(1).all()  # 3x3 on the canvas


@pytest.mark.parametrize("center", [(32.0, 20.0), (2.0, 3.0), (63.0, 40.0)])
def test_refiner_changes_only_the_face_crop(center: tuple[float, float]) -> None:
    rng = np.random.default_rng(1)
    stick = torch.from_numpy(rng.random((1, 3, 64, 64), dtype=np.float32))
    generated = torch.from_numpy(rng.random((1, 3, 64, 64), dtype=np.float32) * 0.5)
    model = ConstantResidual(0.25)
    refiner = FaceRefiner(model, size_px=12, confidence_threshold=0.5)
    joints, confidence = pose_with_face_at(*center)
    before = generated.clone()
    out = refiner.apply(stick, generated, joints, confidence)
    np.testing.assert_array_equal(generated, before)  # the input is not modified
    x0, y0 = face_crop_origin(*center, 12)
    box = np.zeros((64, 64), bool)
    box[max(0, y0) : y0 + 12, max(0, x0) : x0 + 12] = True
    box = torch.from_numpy(box)
    assert out.dtype == torch.float32 and out.shape == generated.shape
    np.testing.assert_array_equal(out[..., ~box], generated[..., ~box])  # bit-identical outside the box
    np.testing.assert_allclose(out[..., box], generated[..., box] + 0.25, atol=1e-6)
    (stick_crop, frame_crop) = model.calls[0]
    np.testing.assert_array_equal(stick_crop, crop_squares(stick, [(x0, y0)], 12))
    np.testing.assert_array_equal(frame_crop, crop_squares(generated, [(x0, y0)], 12))


def test_refiner_clamps_and_skips_a_pose_without_a_face() -> None:
    generated = torch.full((1, 3, 32, 32), 0.9)
    refiner = FaceRefiner(ConstantResidual(0.5), size_px=8, confidence_threshold=0.5)
    joints, confidence = pose_with_face_at(16, 16)
    assert refiner.apply(generated, generated, joints, confidence).max() == 1.0
    assert refiner.apply(generated, generated, joints, np.zeros_like(confidence)) is generated
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        refiner.apply(generated[0], generated[0], joints, confidence)


def test_engine_with_face_model_loads_it_and_refines_only_the_face(tiny_face_engine) -> None:
    bundle = read_bundle(tiny_face_engine)
    assert bundle.face_model == "tiny.face.onnx" and (tiny_face_engine.parent / bundle.face_model).is_file()
    assert bundle.face_box_size_px == 12.0  # the tiny data's 12 px boxes (a multiple of 2**2)
    target = Target.load(tiny_face_engine)
    assert target.face is not None and target.face.size_px == 12
    retargeter = Retargeter(target, live=False)
    plain = Retargeter(target, live=False)
    plain_target_face, target.face = target.face, None
    joints = standing_pose(64, 64)
    confidence = np.ones(NUM_JOINTS, np.float32)
    retargeter.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
    plain.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
    pose = PoseFrame(joints, confidence, 0.0, (64, 64))
    without_face = plain.generate(pose)
    target.face = plain_target_face
    with_face = retargeter.generate(pose)
    assert "face" in with_face.timings_ms and "face" not in without_face.timings_ms
    center = face_center_px(with_face.normalized.joints_px, with_face.normalized.confidence, 0.5)
    assert center is not None
    x0, y0 = face_crop_origin(*center, 12)
    box = np.zeros((64, 64), bool)
    box[max(0, y0) : y0 + 12, max(0, x0) : x0 + 12] = True
    np.testing.assert_array_equal(with_face.generated[~box], without_face.generated[~box])
    assert np.abs(with_face.generated[box].astype(int) - without_face.generated[box].astype(int)).max() > 0


def test_onnx_and_torch_face_models_agree(tiny_face_engine, tmp_path) -> None:
    onnx_target = Target.load(tiny_face_engine)
    torch_target = Target.load(torch_copy(tiny_face_engine, tmp_path))
    assert torch_target.face is not None and onnx_target.face is not None
    assert torch_target.backend.name == "torch" and torch_target.face.model.name == "torch"  # type: ignore[attr-defined]
    assert torch_target.face.size_px == onnx_target.face.size_px
    stick, frame = torch.rand((2, 2, 3, 12, 12), generator=torch.Generator().manual_seed(3))
    inputs = {"face_stick_figure": stick, "face_frame": frame}
    np.testing.assert_allclose(
        torch_target.face.model.run(inputs)["face_residual"],
        onnx_target.face.model.run(inputs)["face_residual"],
        atol=1e-4,
    )


def test_sidecar_with_missing_face_model_fails_clearly(tiny_face_engine, tmp_path) -> None:
    engine = tmp_path / "copy.onnx"
    engine.write_bytes(tiny_face_engine.read_bytes())
    sidecar = json.loads(tiny_face_engine.with_suffix(".json").read_text())
    engine.with_suffix(".json").write_text(json.dumps(sidecar))  # names tiny.face.onnx, absent here
    with pytest.raises(FileNotFoundError, match="face model not found"):
        Target.load(engine)
    sidecar["face_model"] = None  # without a face model the engine runs as before
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    assert Target.load(engine).face is None


def test_retargeter_with_face_runs_alike_on_onnx_runtime_and_pytorch(tiny_face_engine, tmp_path) -> None:
    joints = standing_pose(64, 64)
    confidence = np.ones(NUM_JOINTS, np.float32)
    outputs = []
    for engine in (tiny_face_engine, torch_copy(tiny_face_engine, tmp_path)):
        retargeter = Retargeter(Target.load(engine), live=False)
        retargeter.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
        frames = [retargeter.generate(PoseFrame(joints, confidence, float(t), (64, 64))) for t in range(2)]
        assert all("face" in f.timings_ms for f in frames)
        outputs.append(np.stack([f.generated for f in frames]).astype(int))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1  # uint8 rounding of fp32 differences below 1e-4
