"""The face residual at run time (Everybody Dance Now, Chan et al., ICCV 2019, Sec. 3.3).

After the main generator, a small face generator sees the face crop of the stick figure and of the generated
frame and returns a residual; the corrected crop ``clamp(crop + residual, 0, 1)`` is pasted back. Only the
pixels of the crop change. The crop is a square of the sidecar's ``face_box_size_px`` pixels around the face
center of the normalized pose (the mean of its present face joints, as ``train.prepare`` centers the
training face boxes); a crop partly off the canvas is padded with black and only its on-canvas part is
pasted back. Training (``train/stages.py``) crops with the same :func:`face_crop_origin`.

The face model is ``NAME.face.onnx`` (ONNX Runtime) or the training checkpoint itself (``.pt``, PyTorch),
named by the sidecar's ``face_model`` relative to the engine's folder.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from realtime.skeleton import FACE_JOINTS

log = logging.getLogger(__name__)

#: Tensor names of an exported face model: the stick figure's and the generated frame's face crops in, each
#: float32 ``(B, 3, S, S)`` in [0, 1], and the residual out, float32 ``(B, 3, S, S)`` in [-1, 1].
FACE_INPUT_STICK = "face_stick_figure"
FACE_INPUT_FRAME = "face_frame"
FACE_OUTPUT_RESIDUAL = "face_residual"


def face_crop_size_px(face_box_size_px: float, multiple: int) -> int:
    """The face crop's side: ``face_box_size_px`` rounded up to a multiple of ``multiple`` (the face
    generator's ``2**n_downsample``), at least ``multiple``.

    Raises:
        ValueError: if ``multiple`` < 1 or the box size is not a positive finite number.
    """
    if multiple < 1 or not (math.isfinite(face_box_size_px) and face_box_size_px > 0):
        raise ValueError(f"need face_box_size_px > 0 and multiple >= 1, got {face_box_size_px}, {multiple}")
    return max(multiple, math.ceil(face_box_size_px / multiple) * multiple)


def face_crop_origin(center_x_px: float, center_y_px: float, size_px: int) -> tuple[int, int]:
    """Top-left pixel ``(x0, y0)`` of the ``size_px`` square crop centered at the face center (rounded to
    the nearest pixel grid position). May be negative or run past the canvas."""
    return math.floor(center_x_px - size_px / 2 + 0.5), math.floor(center_y_px - size_px / 2 + 0.5)


def face_center_px(
    joints_px: np.ndarray, confidence: np.ndarray, threshold: float
) -> tuple[float, float] | None:
    """Mean x, y (canvas pixels) of the face joints (:data:`realtime.skeleton.FACE_JOINTS`) with confidence
    ``>= threshold``; None if there is none. ``joints_px`` ``(NUM_JOINTS, 2)``, ``confidence``
    ``(NUM_JOINTS,)``."""
    face = [int(joint) for joint in FACE_JOINTS]
    present = (np.asarray(confidence)[face] >= threshold) & np.isfinite(np.asarray(joints_px)[face]).all(-1)
    if not present.any():
        return None
    center = np.asarray(joints_px, dtype=np.float64)[face][present].mean(axis=0)
    return float(center[0]), float(center[1])


def crop_square(images: np.ndarray, x0: int, y0: int, size_px: int) -> np.ndarray:
    """The ``size_px`` square at ``(x0, y0)`` of ``(B, C, H, W)`` images, zeros where it leaves the canvas.

    Returns:
        a new ``(B, C, size_px, size_px)`` array of the images' dtype.
    """
    batch, channels, height, width = images.shape
    out = np.zeros((batch, channels, size_px, size_px), dtype=images.dtype)
    ys, ye = max(0, y0), min(height, y0 + size_px)
    xs, xe = max(0, x0), min(width, x0 + size_px)
    if ys < ye and xs < xe:
        out[:, :, ys - y0 : ye - y0, xs - x0 : xe - x0] = images[:, :, ys:ye, xs:xe]
    return out


def paste_square(images: np.ndarray, crop: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """A copy of ``(B, C, H, W)`` ``images`` with the on-canvas part of the ``(B, C, S, S)`` ``crop`` placed
    at ``(x0, y0)``; every other pixel is unchanged (bit for bit)."""
    out = images.copy()
    size_px = crop.shape[-1]
    height, width = images.shape[-2:]
    ys, ye = max(0, y0), min(height, y0 + size_px)
    xs, xe = max(0, x0), min(width, x0 + size_px)
    if ys < ye and xs < xe:
        out[:, :, ys:ye, xs:xe] = crop[:, :, ys - y0 : ye - y0, xs - x0 : xe - x0]
    return out


class FaceModel(Protocol):
    """A loaded face generator: crops in, residual out (see the tensor names above)."""

    def residual(self, stick_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray: ...


class OnnxFaceModel:
    """An exported ``NAME.face.onnx`` run by ONNX Runtime (CUDA where available, else CPU).

    Raises:
        realtime.backends.BackendError: if the file cannot be loaded or lacks the face tensor names.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from realtime.backends import BackendError, OnnxRuntimeBackend

        self._backend = OnnxRuntimeBackend(path)
        if set(self._backend.input_names) != {FACE_INPUT_STICK, FACE_INPUT_FRAME}:
            raise BackendError(
                f"{path} is not a face model: inputs {list(self._backend.input_names)}, expected "
                f"{[FACE_INPUT_STICK, FACE_INPUT_FRAME]}; export the checkpoint again (python -m export.onnx)"
            )

    def residual(self, stick_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        outputs = self._backend.run({FACE_INPUT_STICK: stick_crop, FACE_INPUT_FRAME: frame_crop})
        return outputs[FACE_OUTPUT_RESIDUAL]


class TorchFaceModel:
    """The face generator of a training checkpoint (``RUN/checkpoint.pt`` of a face stage), run by PyTorch.

    Raises:
        realtime.backends.BackendError: if the checkpoint cannot be loaded or has no face generator.
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        import torch

        from realtime.backends import BackendError
        from train.checkpoint import load_face_generator

        try:
            face, _ = load_face_generator(path, map_location=device)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise BackendError(f"cannot load the face generator of {path}: {exc}") from exc
        if face is None:
            raise BackendError(f"{path} holds no face generator (its run had no face stage)")
        self._torch, self._face, self._device = torch, face, torch.device(device)
        self._lock = threading.Lock()

    def residual(self, stick_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        torch = self._torch
        stick = torch.from_numpy(np.ascontiguousarray(stick_crop, dtype=np.float32)).to(self._device)
        frame = torch.from_numpy(np.ascontiguousarray(frame_crop, dtype=np.float32)).to(self._device)
        with self._lock, torch.inference_mode():
            return self._face(stick, frame).float().cpu().numpy()


def open_face_model(path: str | os.PathLike[str]) -> FaceModel:
    """``.onnx`` -> :class:`OnnxFaceModel`, ``.pt`` -> :class:`TorchFaceModel`.

    Raises:
        FileNotFoundError: if the file is missing.
        realtime.backends.BackendError: for another extension or a file that cannot be loaded.
    """
    from realtime.backends import BackendError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face model not found: {path} (named by the sidecar's face_model)")
    if path.suffix == ".onnx":
        return OnnxFaceModel(path)
    if path.suffix == ".pt":
        return TorchFaceModel(path)
    raise BackendError(f"{path}: unknown face model type {path.suffix!r}; expected .onnx or .pt")


class FaceRefiner:
    """Applies a face model to generated frames.

    Args:
        model: the face generator.
        size_px: the crop side in canvas pixels (the sidecar's ``face_box_size_px``).
        confidence_threshold: face joints below this confidence are missing.
    """

    def __init__(self, model: FaceModel, size_px: int, confidence_threshold: float) -> None:
        if size_px < 1:
            raise ValueError(f"face crop size must be >= 1 pixel, got {size_px}")
        self.model = model
        self.size_px = int(size_px)
        self.confidence_threshold = confidence_threshold

    @classmethod
    def load(
        cls, engine: str | os.PathLike[str], face_model: str, face_box_size_px: float, threshold: float
    ) -> FaceRefiner:
        """The refiner of an engine whose sidecar names ``face_model`` (a file in the engine's folder).

        Raises:
            FileNotFoundError, realtime.backends.BackendError: as :func:`open_face_model`.
            ValueError: if ``face_box_size_px`` is not a whole number of pixels.
        """
        size = float(face_box_size_px)
        if not size.is_integer():
            raise ValueError(
                f"the sidecar's face_box_size_px {face_box_size_px} must be whole pixels with a face model; "
                "export the checkpoint again"
            )
        model = open_face_model(Path(engine).parent / face_model)
        log.info("face residual model: %s, %d px crops", face_model, int(size))
        return cls(model, int(size), threshold)

    def apply(
        self, stick: np.ndarray, generated: np.ndarray, joints_px: np.ndarray, confidence: np.ndarray
    ) -> np.ndarray:
        """The generated frame with the face residual applied in the face crop.

        Args:
            stick: float32 ``(1, 3, H, W)`` in [0, 1], the stick figure the generator saw.
            generated: float32 ``(1, 3, H, W)`` in [0, 1], the generator's output.
            joints_px, confidence: the normalized (canvas) pose, ``(NUM_JOINTS, 2)`` and ``(NUM_JOINTS,)``.

        Returns:
            a new float32 ``(1, 3, H, W)`` array in [0, 1], equal to ``generated`` outside the crop; or
            ``generated`` itself when the pose shows no face joint.

        Raises:
            ValueError: if ``stick`` and ``generated`` differ in shape or are not ``(1, 3, H, W)``.
        """
        if stick.shape != generated.shape or generated.ndim != 4 or generated.shape[:2] != (1, 3):
            raise ValueError(
                f"stick and generated must both be (1, 3, H, W), got {stick.shape} and {generated.shape}"
            )
        center = face_center_px(joints_px, confidence, self.confidence_threshold)
        if center is None:
            return generated
        x0, y0 = face_crop_origin(*center, self.size_px)
        stick_crop = crop_square(stick.astype(np.float32, copy=False), x0, y0, self.size_px)
        frame_crop = crop_square(generated.astype(np.float32, copy=False), x0, y0, self.size_px)
        residual = self.model.residual(stick_crop, frame_crop)
        refined = np.clip(frame_crop + residual, 0.0, 1.0).astype(np.float32)
        return paste_square(generated, refined, x0, y0)
