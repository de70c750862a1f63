"""The prepared target dataset: its on-disk format, a writer, a reader and the training pairs.

A prepared directory (written by ``python -m train prepare``) holds::

    meta.json          format version, source video, fps, canvas, crop, rendering, statistics, split
    frames.npy         uint8 (N, H, W, 3) RGB frames on the fixed canvas
    stick_figures.npy  uint8 (N, H, W, 3) stick figures drawn from keypoints.npz with meta's rendering
    masks.npy          uint8 (N, H, W) person segmentation, 0-255
    keypoints.npz      joints_px float32 (N, J, 2) canvas pixels; confidence float32 (N, J) in [0, 1];
                       face_boxes float32 (N, 4) x0, y0, x1, y1 canvas pixels (NaN where no face);
                       timestamps_ms float64 (N,)
    target_inputs/NAME.npy  float16 (C, H, W) in [0, 1]: each declared ``per_target`` generator input
                       (:mod:`realtime.model.inputs`), made by its target producer from the training frames;
                       written with the rest, or on first use for one declared later
                       (:func:`load_target_inputs`)

The split holds out the *last* frames (``heldout``) for evaluation; training never reads them (the target
producers included).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kernels.rasterize import RenderParams
from realtime.catalog import DEFAULT_POSE_ESTIMATOR
from realtime.model.appearance import (
    REFERENCE_IMAGES,
    REFERENCE_KEYPOINTS,
    AppearancePrior,
    has_reference_appearance,
    recolor_garment,
)
from realtime.model.inputs import (
    STICK_FIGURE,
    TEMPORAL_INPUTS,
    FrameContext,
    GeneratorInputs,
    InputRole,
    TargetFrames,
    TensorSpec,
    check_target_tensor,
    declared_inputs,
    produce_frame_inputs,
    produce_target_input,
    target_value_shape,
)
from realtime.model.plate import BACKGROUND_PLATE
from realtime.pose.normalize import BodyStats
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.skeleton import NUM_JOINTS, SKELETON_NAME
from train.augment import corrupt_pose
from train.config import AugmentConfig
from train.novel_poses import random_garment_colour, recolour_frames, sample_novel_pose, warp_to_novel_pose

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: The prepared directory's folder of per-target inputs (``NAME.npy``).
TARGET_INPUTS_DIR = "target_inputs"


@dataclass(frozen=True)
class Crop:
    """How a source video frame maps onto the canvas: ``canvas = (source - (x0, y0)) * scale``."""

    x0: float
    y0: float
    scale: float


@dataclass(frozen=True)
class PreparedMeta:
    """Everything in ``meta.json``. Sizes in pixels; ``train_end`` splits frames into [0, train_end) for
    training and [train_end, num_frames) held out.

    ``pose_estimator`` is the name (in :data:`realtime.catalog.POSE_ESTIMATORS`) of the estimator whose
    poses the keypoints are, or that the runtime should use (rendered data's poses are exact); the target's
    sidecar carries it. ``mask_source`` says where ``masks.npy`` came from: a pose estimator's name (its
    segmentation), ``"none"`` (all zeros) or ``"renderer"`` (rendered data's exact silhouettes). Data
    prepared before these fields read as ``"mediapipe"`` for both."""

    source_video: str
    fps: float
    num_frames: int
    canvas_width: int
    canvas_height: int
    crop: Crop
    render: RenderParams
    stats: BodyStats
    train_end: int
    face_box_size_px: float
    skeleton: str = SKELETON_NAME
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR
    mask_source: str = DEFAULT_POSE_ESTIMATOR
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = self.stats.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedMeta:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"prepared data has format version {version}, this code reads {FORMAT_VERSION}; "
                "run python -m train prepare again"
            )
        if data.get("skeleton") != SKELETON_NAME:
            raise ValueError(
                f"prepared data uses skeleton {data.get('skeleton')!r}, expected {SKELETON_NAME!r}"
            )
        fields = dict(data)
        fields["crop"] = Crop(**data["crop"])
        fields["render"] = RenderParams(**data["render"])
        fields["stats"] = BodyStats.from_json(data["stats"])
        return cls(**fields)

    @property
    def heldout(self) -> range:
        return range(self.train_end, self.num_frames)


@dataclass
class PreparedData:
    """A prepared directory opened for reading; the large arrays are memory-mapped."""

    root: Path
    meta: PreparedMeta
    frames: np.ndarray
    stick_figures: np.ndarray
    masks: np.ndarray
    joints_px: np.ndarray
    confidence: np.ndarray
    face_boxes: np.ndarray
    timestamps_ms: np.ndarray


class PreparedWriter:
    """Write a prepared directory incrementally: fill the memory-mapped ``frames``, ``stick_figures`` and
    ``masks`` arrays frame by frame, then :meth:`finish` with the keypoints and the metadata.

    ``meta.json`` is written last, so a directory with it is complete.

    Args:
        root: output directory (created).
        num_frames, height, width: array sizes (frames, canvas pixels).
    """

    def __init__(self, root: str | os.PathLike[str], num_frames: int, height: int, width: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "meta.json").unlink(missing_ok=True)
        if (self.root / TARGET_INPUTS_DIR).is_dir():  # made from another preparation's frames
            shutil.rmtree(self.root / TARGET_INPUTS_DIR)
        shape = (num_frames, height, width)

        def memmap(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return np.lib.format.open_memmap(self.root / name, mode="w+", dtype=np.uint8, shape=shape)

        self.frames = memmap("frames.npy", (*shape, 3))
        self.stick_figures = memmap("stick_figures.npy", (*shape, 3))
        self.masks = memmap("masks.npy", shape)

    def finish(
        self,
        meta: PreparedMeta,
        *,
        joints_px: np.ndarray,
        confidence: np.ndarray,
        face_boxes: np.ndarray,
        timestamps_ms: np.ndarray,
    ) -> Path:
        """Write the keypoints, every declared ``per_target`` input (``target_inputs/NAME.npy``, from the
        training frames) and ``meta.json``.

        Raises:
            ValueError: if an array's shape or dtype does not match ``meta``, or a target producer fails.
        """
        n, h, w = meta.num_frames, meta.canvas_height, meta.canvas_width
        expected = {
            "frames": (self.frames, (n, h, w, 3), np.uint8),
            "stick_figures": (self.stick_figures, (n, h, w, 3), np.uint8),
            "masks": (self.masks, (n, h, w), np.uint8),
            "joints_px": (joints_px, (n, NUM_JOINTS, 2), np.float32),
            "confidence": (confidence, (n, NUM_JOINTS), np.float32),
            "face_boxes": (face_boxes, (n, 4), np.float32),
            "timestamps_ms": (timestamps_ms, (n,), np.float64),
        }
        for name, (array, shape, dtype) in expected.items():
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(
                    f"{name}: expected {np.dtype(dtype).name} {shape}, got {array.dtype} {array.shape}"
                )
        if not 0 < meta.train_end <= n:
            raise ValueError(f"train_end must be in (0, {n}], got {meta.train_end}")
        for array in (self.frames, self.stick_figures, self.masks):
            array.flush()  # type: ignore[attr-defined]  # np.memmap
        np.savez(
            self.root / "keypoints.npz",
            joints_px=joints_px,
            confidence=confidence,
            face_boxes=face_boxes,
            timestamps_ms=timestamps_ms,
        )
        frames = TargetFrames(
            self.frames[: meta.train_end], self.masks[: meta.train_end], joints_px[: meta.train_end],
            confidence[: meta.train_end], range(0, meta.train_end),
        )  # fmt: skip
        for spec in (*declared_inputs(InputRole.PER_TARGET), *declared_inputs(InputRole.TARGET_DATA)):
            _write_target_input(self.root, spec, produce_target_input(spec, frames))
        tmp = self.root / "meta.json.tmp"
        tmp.write_text(json.dumps(meta.to_json(), indent=2))
        os.replace(tmp, self.root / "meta.json")
        return self.root


def write_prepared(
    root: str | os.PathLike[str],
    meta: PreparedMeta,
    *,
    frames: np.ndarray,
    stick_figures: np.ndarray,
    masks: np.ndarray,
    joints_px: np.ndarray,
    confidence: np.ndarray,
    face_boxes: np.ndarray,
    timestamps_ms: np.ndarray,
) -> Path:
    """Write a whole prepared directory from in-memory arrays (see :class:`PreparedWriter`).

    Raises:
        ValueError: if an array's shape or dtype does not match ``meta``.
    """
    if frames.shape[0] != meta.num_frames:
        raise ValueError(f"frames has {frames.shape[0]} frames, meta says {meta.num_frames}")
    writer = PreparedWriter(root, meta.num_frames, meta.canvas_height, meta.canvas_width)
    for name, array in (("frames", frames), ("stick_figures", stick_figures), ("masks", masks)):
        target = getattr(writer, name)
        if array.shape != target.shape or array.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 {target.shape}, got {array.dtype} {array.shape}")
        target[...] = array
    return writer.finish(
        meta, joints_px=joints_px, confidence=confidence, face_boxes=face_boxes, timestamps_ms=timestamps_ms
    )


def load_prepared(root: str | os.PathLike[str]) -> PreparedData:
    """Open a prepared directory.

    Raises:
        FileNotFoundError: if ``root`` is not a complete prepared directory.
        ValueError: if its format version or skeleton differs from this code's.
    """
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise FileNotFoundError(
            f"{root} is not a prepared target directory (no meta.json); "
            "make one with: python -m train prepare TARGET.mp4 --out DIR"
        )
    meta = PreparedMeta.from_json(json.loads((root / "meta.json").read_text()))
    keypoints = np.load(root / "keypoints.npz")
    return PreparedData(
        root=root,
        meta=meta,
        frames=np.load(root / "frames.npy", mmap_mode="r"),
        stick_figures=np.load(root / "stick_figures.npy", mmap_mode="r"),
        masks=np.load(root / "masks.npy", mmap_mode="r"),
        joints_px=keypoints["joints_px"],
        confidence=keypoints["confidence"],
        face_boxes=keypoints["face_boxes"],
        timestamps_ms=keypoints["timestamps_ms"],
    )


def target_frames(data: PreparedData) -> TargetFrames:
    """The training frames ``[0, train_end)`` of a prepared directory, as the target producers see them
    (memory-mapped, not copied)."""
    end = data.meta.train_end
    return TargetFrames(
        data.frames[:end], data.masks[:end], data.joints_px[:end], data.confidence[:end], range(0, end)
    )


def target_input_path(root: str | os.PathLike[str], name: str) -> Path:
    """``ROOT/target_inputs/NAME.npy``."""
    return Path(root) / TARGET_INPUTS_DIR / f"{name}.npy"


def _write_target_input(root: Path, spec: TensorSpec, value: np.ndarray) -> Path:
    """Store a per-target input as float16 ``(C, H, W)``, target data as float32 (atomically)."""
    path = target_input_path(root, spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, value.astype(np.float16 if spec.role is InputRole.PER_TARGET else np.float32))
    os.replace(tmp, path)
    return path


def load_target_inputs(data: PreparedData, inputs: GeneratorInputs) -> dict[str, np.ndarray]:
    """The ``per_target`` inputs of ``inputs`` for a prepared target: read from ``target_inputs/NAME.npy``,
    or, for one not stored yet (declared after the data was prepared) or stored with another shape (its
    declaration changed), made by its target producer from the training frames and stored there (logged).

    Returns:
        ``{name: float32 (C, H, W) in [0, 1]}``, and ``{name: float32 (C, ...)}`` for the model's target data
        (empty for a model without either).

    Raises:
        KeyError, ValueError: as :func:`realtime.model.inputs.produce_target_input`.
    """
    return {spec.name: load_target_value(data, spec) for spec in inputs.target_values}


def load_target_value(data: PreparedData, spec: TensorSpec) -> np.ndarray:
    """One per-target input or target datum of a prepared target, as :func:`load_target_inputs` loads it
    (read from ``target_inputs/NAME.npy``, else made from the training frames and stored there).

    Returns:
        float32 ``(C, H, W)`` in [0, 1] for a per-target input, ``(C, ...)`` for target data.
    """
    canvas_hw = (data.meta.canvas_height, data.meta.canvas_width)
    path = target_input_path(data.root, spec.name)
    value = np.load(path).astype(np.float32) if path.is_file() else None
    if value is not None:
        try:
            check_target_tensor(spec, value, canvas_hw)
        except ValueError as error:
            log.warning("%s: %s; making it again from the training frames", path, error)
            value = None
    if value is None:
        log.info("per-target input %s: made from %d training frames into %s", spec.name,
                 data.meta.train_end, path)  # fmt: skip
        _write_target_input(data.root, spec, produce_target_input(spec, target_frames(data)))
        value = np.load(path).astype(np.float32)  # as stored (float16), as every later run reads it
    return value.reshape(target_value_shape(spec, value.shape, canvas_hw))


def to_chw_float(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W, C)`` -> float32 ``(..., C, H, W)`` in [0, 1]."""
    tensor = torch.from_numpy(np.array(images, copy=True)).to(torch.float32) / 255.0
    return tensor.movedim(-1, -3)


class FramePairs(Dataset):
    """Consecutive frame pairs ``(t-1, t)`` from one part of a prepared dataset, for the two-step unroll of
    Everybody Dance Now (Chan et al. 2019, Sec. 3.2).

    Each item is a dict of float32 tensors keyed by the generator-input declaration
    (:mod:`realtime.model.inputs`):
    for every ``per_frame`` input ``NAME`` of ``inputs``, ``NAME_prev`` and ``NAME`` ``(C, H, W)`` in [0, 1]
    made by its producer (``stick_figure_prev`` and ``stick_figure`` are always there: the discriminator
    judges them); ``frame_prev``, ``frame`` ``(3, H, W)`` in [0, 1], the real frames; ``mask_prev``, ``mask``
    ``(1, H, W)`` in [0, 1] (the person's segmentation);
    ``face_center_prev``, ``face_center`` ``(2,)`` the face box centers x, y in canvas pixels (NaN where the
    frame has no face box); for every ``per_target`` input ``NAME`` of ``inputs``, ``NAME`` ``(C, H, W)`` in
    [0, 1], the same tensor in every item (:func:`load_target_inputs`: made from the training frames only,
    whatever the split), so that a collated batch holds it once per item.

    Args:
        data: an opened prepared directory.
        split: ``"train"`` (frames ``[0, train_end)``) or ``"heldout"``.
        augment: pose corruption (:class:`train.config.AugmentConfig`). When given and ``enabled``, the
            stick figures are drawn on the fly from ``keypoints.npz`` with ``meta.render`` after
            :func:`train.augment.corrupt_pose` (each frame of a pair independently, from torch's global RNG);
            otherwise the stored stick figures are used. Its ``novel_pose_p`` moves a share of the pairs into
            poses the recording never showed and its ``garment_colour_p`` recolours a garment in a share of
            them (:mod:`train.novel_poses`); ``frame``, ``mask`` and the stick figures then show the new pose
            or colour, and the appearance prior is made from the recoloured references.
        require_face: keep only pairs whose two frames both have a face box (the face stage).
        inputs: the generator's inputs (default: Everybody Dance Now's stick figure and previous frame).

    Raises:
        ValueError: if the split has fewer than two frames, or no pair is left, or a garment colour is asked
            of a model without the appearance prior.
    """

    def __init__(
        self,
        data: PreparedData,
        split: str = "train",
        *,
        augment: AugmentConfig | None = None,
        require_face: bool = False,
        inputs: GeneratorInputs = TEMPORAL_INPUTS,
    ) -> None:
        if split == "train":
            frames = range(0, data.meta.train_end)
        elif split == "heldout":
            frames = data.meta.heldout
        else:
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        if len(frames) < 2:
            raise ValueError(
                f"split {split!r} has {len(frames)} frames; the two-step unroll needs at least 2"
            )
        self.data = data
        self.inputs = inputs
        self.per_target = {
            name: torch.from_numpy(value) for name, value in load_target_inputs(data, inputs).items()
        }
        fed = {spec.name for spec in inputs.with_role(InputRole.PER_TARGET)}
        self._fed_per_target = {name: value for name, value in self.per_target.items() if name in fed}
        self.augment = augment if augment is not None and augment.enabled else None
        self._plate: torch.Tensor | None = None
        if self.augment is not None and self.augment.novel_pose_p > 0:
            self._plate = torch.from_numpy(load_target_value(data, BACKGROUND_PLATE)).reshape(
                3, data.meta.canvas_height, data.meta.canvas_width
            )
        if self.augment is not None and self.augment.garment_colour_p > 0:
            if not has_reference_appearance(self.per_target):
                raise ValueError(
                    "augment.garment_colour_p needs the appearance prior among the generator's inputs "
                    "(generator.extra_inputs: [appearance_prior, ...]); set it to 0 for this model"
                )
        self._frame_labels = AppearancePrior()  # part labels of the frames recoloured (a cache of its own)
        self.indices = list(frames)[1:]
        if require_face:
            has_face = np.isfinite(data.face_boxes).all(axis=1)
            self.indices = [t for t in self.indices if has_face[t - 1] and has_face[t]]
            if not self.indices:
                raise ValueError(
                    f"no consecutive frames of split {split!r} both have a face box; the face stage needs "
                    "visible faces (drop 'face' from stages)"
                )

    def __len__(self) -> int:
        return len(self.indices)

    def _frame_context(
        self,
        t: int,
        joints: np.ndarray,
        confidence: np.ndarray,
        per_target: dict[str, torch.Tensor],
        stored_sticks: bool,
    ) -> FrameContext:
        """Poses and stick figures of frames ``t - 1`` and ``t`` (batch of 2): the stored stick figures for
        the recording's own poses without augmentation, else drawn from the (corrupted) poses."""
        d = self.data
        frame_indices = torch.tensor([t - 1, t], dtype=torch.int64)
        if self.augment is None and stored_sticks:
            sticks = to_chw_float(d.stick_figures[t - 1 : t + 1])
            return FrameContext(
                torch.from_numpy(joints), torch.from_numpy(confidence), sticks, per_target, frame_indices
            )
        if self.augment is not None:
            poses = [corrupt_pose(joints[i], confidence[i], self.augment) for i in range(2)]
            joints = np.stack([p[0] for p in poses]).astype(np.float32)
            confidence = np.stack([p[1] for p in poses]).astype(np.float32)
        joints_t, confidence_t = torch.from_numpy(joints), torch.from_numpy(confidence)
        sticks = rasterize_stick_figure(
            joints_t,
            confidence_t,
            height=d.meta.canvas_height,
            width=d.meta.canvas_width,
            params=d.meta.render,
        )
        return FrameContext(joints_t, confidence_t, sticks, per_target, frame_indices)

    def _per_target_batch(self) -> dict[str, torch.Tensor]:
        return {name: value[None] for name, value in self.per_target.items()}

    def _chance(self, p: float) -> bool:
        return p > 0 and float(torch.rand(())) < p

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        t = self.indices[item]
        d = self.data
        joints = np.asarray(d.joints_px[t - 1 : t + 1], np.float32)
        confidence = np.asarray(d.confidence[t - 1 : t + 1], np.float32)
        frames = to_chw_float(d.frames[t - 1 : t + 1])
        masks = torch.from_numpy(np.array(d.masks[t - 1 : t + 1], dtype=np.float32) / 255.0)[:, None]
        per_target = self._per_target_batch()
        stored_sticks = True
        if self.augment is not None and self._chance(self.augment.garment_colour_p):
            garment, rgb = random_garment_colour()
            frames = recolour_frames(
                frames, masks, torch.from_numpy(joints), torch.from_numpy(confidence), garment, rgb,
                self._frame_labels,
            )  # fmt: skip
            references = per_target[REFERENCE_IMAGES.name][0]
            keypoints = per_target[REFERENCE_KEYPOINTS.name][0]
            recoloured = recolor_garment(references, keypoints, garment, rgb)
            per_target = {**per_target, REFERENCE_IMAGES.name: recoloured[None]}
        if self._plate is not None and self.augment is not None and self._chance(self.augment.novel_pose_p):
            novel, moved = sample_novel_pose(joints, confidence, self.augment.novel_leg_deg)
            if moved:
                frames, masks = warp_to_novel_pose(
                    frames, masks, torch.from_numpy(joints), torch.from_numpy(confidence),
                    torch.from_numpy(novel), moved, self._plate,
                )  # fmt: skip
                joints, stored_sticks = novel, False
        context = self._frame_context(t, joints, confidence, per_target, stored_sticks)
        produced = produce_frame_inputs(self.inputs, context)
        boxes = torch.from_numpy(np.array(d.face_boxes[t - 1 : t + 1], dtype=np.float32))
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        batch = {}
        for name, pair in produced.items():
            batch[f"{name}_prev"], batch[name] = pair[0], pair[1]
        if STICK_FIGURE.name not in produced:  # the discriminator judges the stick figure in any case
            sticks = context.stick_figure  # the same (possibly corrupted) poses the inputs were made from
            batch[f"{STICK_FIGURE.name}_prev"], batch[STICK_FIGURE.name] = sticks[0], sticks[1]
        batch.update(
            frame_prev=frames[0],
            frame=frames[1],
            mask_prev=masks[0],
            mask=masks[1],
            face_center_prev=centers[0],
            face_center=centers[1],
        )
        batch.update(self._fed_per_target)  # target data stays with the producers
        return batch
