"""The face residual at run time (Everybody Dance Now, Chan et al., ICCV 2019, Sec. 3.3).

After the main generator, a small face generator sees the face crop of the stick figure and of the generated
frame and returns a residual; the corrected crop ``clamp(crop + residual, 0, 1)`` is pasted back. Only the
pixels of the crop change. The crop is a square of the sidecar's ``face_box_size_px`` pixels around the face
center of the normalized pose (the mean of its present face joints, as ``train.prepare`` centers the
training face boxes); a crop partly off the canvas is padded with black and only its on-canvas part is
pasted back. Training (``train/stages.py``) crops and pastes with the same :func:`face_crop_origin`,
:func:`crop_squares` and :func:`paste_squares`.

The face model is ``NAME.face.onnx`` (ONNX Runtime) or ``NAME.face.pt`` (PyTorch inference weights), named by
the sidecar's ``face_model`` relative to the engine's folder and opened by the same backend factory as the
main generator (:func:`realtime.model.backends.open_backend`). Crops and paste work on ``torch.Tensor`` s on
the backend's device.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from realtime.model.backends import open_backend
from realtime.model.inputs import FACE_FRAME, FACE_INPUTS, FACE_RESIDUAL, FACE_STICK_FIGURE
from realtime.pose.skeleton import FACE_JOINTS

log = logging.getLogger(__name__)


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
    """Mean x, y (canvas pixels) of the face joints (:data:`realtime.pose.skeleton.FACE_JOINTS`) with
    confidence ``>= threshold``; None if there is none. ``joints_px`` ``(NUM_JOINTS, 2)``, ``confidence``
    ``(NUM_JOINTS,)``."""
    face = [int(joint) for joint in FACE_JOINTS]
    present = (np.asarray(confidence)[face] >= threshold) & np.isfinite(np.asarray(joints_px)[face]).all(-1)
    if not present.any():
        return None
    center = np.asarray(joints_px, dtype=np.float64)[face][present].mean(axis=0)
    return float(center[0]), float(center[1])


def crop_squares(images: torch.Tensor, origins: Sequence[tuple[int, int]], size_px: int) -> torch.Tensor:
    """Square crops of a batch, one per image, zeros where a crop leaves the canvas: the one crop of the face
    residual, at run time (:class:`FaceRefiner`) and in training (:func:`train.stages.crop_faces`).

    Args:
        images: ``(B, C, H, W)`` of any dtype and device (differentiable: gradients flow to the cropped
            pixels).
        origins: ``B`` top-left corners ``(x0, y0)`` in pixels, one per image (:func:`face_crop_origin`); each
            may be negative or run past the canvas.
        size_px: the crops' side in pixels (>= 1).

    Returns:
        a new ``(B, C, size_px, size_px)`` tensor of the images' dtype and device.

    Raises:
        ValueError: if ``origins`` does not hold one corner per image, or ``size_px`` < 1.
    """
    batch, channels, height, width = images.shape
    if len(origins) != batch or size_px < 1:
        raise ValueError(
            f"need one origin per image ({batch}) and size_px >= 1, got {len(origins)}, {size_px}"
        )
    out = images.new_zeros((batch, channels, size_px, size_px))
    for b, (x0, y0) in enumerate(origins):
        ys, ye = max(0, y0), min(height, y0 + size_px)
        xs, xe = max(0, x0), min(width, x0 + size_px)
        if ys < ye and xs < xe:
            out[b, :, ys - y0 : ye - y0, xs - x0 : xe - x0] = images[b, :, ys:ye, xs:xe]
    return out


def paste_squares(
    images: torch.Tensor, crops: torch.Tensor, origins: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """A copy of ``(B, C, H, W)`` ``images`` with the on-canvas part of each ``(B, C, S, S)`` crop put back
    at its ``(x0, y0)`` origin (where :func:`crop_squares` took it); every other pixel is unchanged (bit for
    bit).

    Raises:
        ValueError: if ``origins`` does not hold one corner per image.
    """
    if len(origins) != images.shape[0]:
        raise ValueError(f"need one origin per image ({images.shape[0]}), got {len(origins)}")
    out = images.clone()
    size_px = crops.shape[-1]
    height, width = images.shape[-2:]
    for b, (x0, y0) in enumerate(origins):
        ys, ye = max(0, y0), min(height, y0 + size_px)
        xs, xe = max(0, x0), min(width, x0 + size_px)
        if ys < ye and xs < xe:
            out[b, :, ys:ye, xs:xe] = crops[b, :, ys - y0 : ye - y0, xs - x0 : xe - x0]
    return out


class FaceModel(Protocol):
    """A loaded face generator: the crops in, the residual out, float32 ``(B, 3, S, S)`` tensors (crops in
    [0, 1], residual in [-1, 1]) on :attr:`device`. An :class:`realtime.model.backends.InferenceBackend` whose
    inputs are :data:`realtime.model.inputs.FACE_INPUTS` is one."""

    device: torch.device

    def run(
        self, inputs: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]: ...


def open_face_model(path: str | os.PathLike[str], **backend_options: Any) -> FaceModel:
    """Open a face model through the backend factory (by extension: ``.onnx`` ONNX Runtime, ``.pt`` PyTorch
    inference weights, ``.plan`` TensorRT; ``backend_options`` such as ``device`` go to its constructor) and
    check that it takes the face crops.

    Raises:
        FileNotFoundError: if the file is missing.
        realtime.model.backends.BackendError: for an unknown extension, a file that cannot be loaded, or a
            model that is not a face model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face model not found: {path} (named by the sidecar's face_model)")
    return open_backend(path, expected=FACE_INPUTS.names, **backend_options)


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
        cls,
        engine: str | os.PathLike[str],
        face_model: str,
        face_box_size_px: float,
        threshold: float,
        **backend_options: Any,
    ) -> FaceRefiner:
        """The refiner of an engine whose sidecar names ``face_model`` (a file in the engine's folder).

        Raises:
            FileNotFoundError, realtime.model.backends.BackendError: as :func:`open_face_model`.
            ValueError: if ``face_box_size_px`` is not a whole number of pixels.
        """
        size = float(face_box_size_px)
        if not size.is_integer():
            raise ValueError(
                f"the sidecar's face_box_size_px {face_box_size_px} must be whole pixels with a face model; "
                "export the checkpoint again"
            )
        model = open_face_model(Path(engine).parent / face_model, **backend_options)
        log.info("face residual model: %s, %d px crops", face_model, int(size))
        return cls(model, int(size), threshold)

    def apply(
        self, stick: torch.Tensor, generated: torch.Tensor, joints_px: np.ndarray, confidence: np.ndarray
    ) -> torch.Tensor:
        """The generated frame with the face residual applied in the face crop.

        Args:
            stick: float32 ``(1, 3, H, W)`` in [0, 1], the stick figure the generator saw.
            generated: float32 ``(1, 3, H, W)`` in [0, 1], the generator's output.
            joints_px, confidence: the normalized (canvas) pose, ``(NUM_JOINTS, 2)`` and ``(NUM_JOINTS,)``.

        Returns:
            a new float32 ``(1, 3, H, W)`` tensor in [0, 1] on ``generated``'s device, equal to
            ``generated`` outside the crop; or ``generated`` itself when the pose shows no face joint.

        Raises:
            ValueError: if ``stick`` and ``generated`` differ in shape or are not ``(1, 3, H, W)``.
        """
        if stick.shape != generated.shape or generated.ndim != 4 or tuple(generated.shape[:2]) != (1, 3):
            raise ValueError(
                f"stick and generated must both be (1, 3, H, W), got {tuple(stick.shape)} and "
                f"{tuple(generated.shape)}"
            )
        center = face_center_px(joints_px, confidence, self.confidence_threshold)
        if center is None:
            return generated
        origins = [face_crop_origin(*center, self.size_px)]
        device = self.model.device
        stick_crop = crop_squares(stick.to(device, torch.float32), origins, self.size_px)
        frame_crop = crop_squares(generated.to(device, torch.float32), origins, self.size_px)
        outputs = self.model.run({FACE_STICK_FIGURE.name: stick_crop, FACE_FRAME.name: frame_crop})
        refined = (frame_crop + outputs[FACE_RESIDUAL.name]).clamp_(0.0, 1.0)
        return paste_squares(generated, refined.to(generated.device), origins)
