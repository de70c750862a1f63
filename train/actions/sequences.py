"""Labelled pose sequences in the project's normalized joint space: the action models' data format.

A pose sequence of any source (the synthetic mannequin, a real clip's pose estimates) is brought onto one
canonical body and canvas by the project's pose normalization
(:class:`realtime.pose.normalize.PoseNormalizer`: Everybody Dance Now's bone-length retargeting and global
normalization, Chan et al., ICCV 2019, Sec. 3.4). The canonical target is the mannequin
(:data:`train.synthetic.body.BODY`) standing at rest in the middle of the floor on a
:data:`CANONICAL_CANVAS_PX` square canvas (:func:`canonical_stats`). Coordinates are then divided by the
canvas side, so the **normalized joint space** is: x to the right and y down, in canvas sides, the canonical
figure's feet at y = ``canonical_stats().far_foot_y_px / CANONICAL_CANVAS_PX`` (about 0.85) and its height
about 0.55. Every sequence's body proportions, size and place on the floor are the canonical figure's; what
remains is its motion. A consumer draws a sequence on a target's canvas with
:func:`realtime.pose.normalize.global_normalize` from :func:`canonical_stats` to the target's statistics.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.pose.normalize import BodyStats, PoseNormalizer, body_stats
from realtime.pose.skeleton import NUM_JOINTS, as_pose_arrays

#: The action labels of issue 22, in class-index order.
ACTION_LABELS: tuple[str, ...] = ("wave", "clap", "point", "arm_pump", "idle_sway", "turn")
#: Side in pixels of the canonical canvas that normalized coordinates are fractions of.
CANONICAL_CANVAS_PX = 256
#: How the ``sources`` of synthetic sequences start (``"synthetic:LABEL:SEED"``); any other source is a real
#: clip's window (``"VIDEO@START-END"``).
SYNTHETIC_SOURCE_PREFIX = "synthetic:"
#: Format version of the sequence files written by :func:`save_sequences`.
SEQUENCES_FORMAT_VERSION = 1


def label_index(label: str) -> int:
    """The class index of ``label`` in :data:`ACTION_LABELS`.

    Raises:
        ValueError: for an unknown label (the message lists the known ones).
    """
    if label not in ACTION_LABELS:
        raise ValueError(f"unknown action label {label!r}; known: {', '.join(ACTION_LABELS)}")
    return ACTION_LABELS.index(label)


@functools.cache
def canonical_stats() -> BodyStats:
    """Statistics of the canonical body (the mannequin at rest, 3.2 m from the camera, centred) on the
    :data:`CANONICAL_CANVAS_PX` square canvas, in its pixels: the target of every sequence's normalization."""
    from train.synthetic.motion import mannequin_pose  # the synthetic package imports torch-free modules only

    joints_px, confidence = mannequin_pose(width=CANONICAL_CANVAS_PX, height=CANONICAL_CANVAS_PX)
    return body_stats(np.repeat(joints_px[None], 2, axis=0), np.ones((2, NUM_JOINTS), np.float32))


def normalize_sequence(joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """One pose sequence in some camera's pixels to the normalized joint space (see the module docstring).

    The normalizer is fitted on the sequence itself (its limb lengths and floor positions), then each frame
    is normalized in turn (:meth:`PoseNormalizer.normalize`).

    Args:
        joints_px: float ``(T, NUM_JOINTS, 2)`` pixels of the source.
        confidence: float ``(T, NUM_JOINTS)`` in [0, 1]; joints below ``threshold`` are missing.

    Returns:
        float32 ``(T, NUM_JOINTS, 2)`` in canvas sides of the canonical canvas.

    Raises:
        ValueError: on wrong shapes, or a sequence that shows no body (no torso, arm or leg).
    """
    joints_px, confidence = as_pose_arrays(joints_px, confidence, sequence=True)
    normalizer = PoseNormalizer(canonical_stats(), threshold)
    normalizer.fit(joints_px, confidence)
    out = np.stack([normalizer.normalize(j, c) for j, c in zip(joints_px, confidence, strict=True)])
    return (out / CANONICAL_CANVAS_PX).astype(np.float32)


def fill_missing(joints: np.ndarray, confidence: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Joints below ``threshold`` replaced by linear interpolation in time between the frames that have
    them (held at the ends); a joint never seen in the sequence sits at the mean of its frame's seen joints
    (the middle of the body; (0.5, 0.5) in a frame without any), so every value is finite.

    Args:
        joints: float ``(T, NUM_JOINTS, 2)``; confidence: float ``(T, NUM_JOINTS)``.

    Returns:
        float32 ``(T, NUM_JOINTS, 2)``, finite.
    """
    joints, confidence = as_pose_arrays(joints, confidence, sequence=True)
    out = joints.copy()
    frames = np.arange(len(joints))
    seen = (confidence >= threshold) & np.isfinite(joints).all(axis=-1)
    for j in range(NUM_JOINTS):
        have = seen[:, j]
        if have.all():
            continue
        if have.any():
            for axis in range(2):
                out[:, j, axis] = np.interp(frames, frames[have], joints[have, j, axis])
        else:
            any_seen = seen.any(axis=1)
            centre = np.array(
                [joints[t, seen[t]].mean(axis=0) if any_seen[t] else (0.5, 0.5) for t in frames], np.float32
            )
            out[:, j] = centre
    return out.astype(np.float32)


@dataclass(frozen=True)
class LabelledSequences:
    """Labelled pose sequences of one length.

    Attributes:
        joints: float32 ``(N, T, NUM_JOINTS, 2)`` in the normalized joint space (module docstring), every
            joint finite (missing ones filled: :func:`fill_missing`).
        confidence: float32 ``(N, T, NUM_JOINTS)`` in [0, 1]: the source's (0 where a joint was missing
            and filled in).
        labels: int64 ``(N,)`` indices into :data:`ACTION_LABELS`.
        heldout: bool ``(N,)``: True for the held-out sequences (never trained on).
        fps: frames per second of every sequence.
        sources: ``(N,)`` where each sequence came from: ``"synthetic:LABEL:SEED"`` for the synthetic
            choreography (:data:`SYNTHETIC_SOURCE_PREFIX`), ``"VIDEO@START-END"`` (seconds) for a real clip.
    """

    joints: np.ndarray
    confidence: np.ndarray
    labels: np.ndarray
    heldout: np.ndarray
    fps: float
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.labels)
        if (
            self.joints.ndim != 4
            or self.joints.shape[0] != n
            or self.joints.shape[2:] != (NUM_JOINTS, 2)
            or self.confidence.shape != self.joints.shape[:3]
            or self.heldout.shape != (n,)
            or len(self.sources) != n
        ):
            raise ValueError(
                f"inconsistent sequences: joints {self.joints.shape}, confidence {self.confidence.shape}, "
                f"labels {self.labels.shape}, heldout {self.heldout.shape}, {len(self.sources)} sources; "
                f"expected (N, T, {NUM_JOINTS}, 2), (N, T, {NUM_JOINTS}), (N,), (N,), N"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(ACTION_LABELS)):
            raise ValueError(f"labels must index ACTION_LABELS (0..{len(ACTION_LABELS) - 1})")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")

    @property
    def num_frames(self) -> int:
        """Frames per sequence (T)."""
        return int(self.joints.shape[1])

    @property
    def synthetic(self) -> np.ndarray:
        """bool ``(N,)``: True for synthetic sequences, False for real clips' windows (by ``sources``)."""
        return np.array([s.startswith(SYNTHETIC_SOURCE_PREFIX) for s in self.sources], bool).reshape(-1)

    def subset(self, mask: np.ndarray) -> LabelledSequences:
        """The sequences where the bool ``(N,)`` ``mask`` is True."""
        idx = np.flatnonzero(mask)
        return LabelledSequences(
            joints=self.joints[idx],
            confidence=self.confidence[idx],
            labels=self.labels[idx],
            heldout=self.heldout[idx],
            fps=self.fps,
            sources=tuple(self.sources[i] for i in idx),
        )

    def train(self) -> LabelledSequences:
        """The training part."""
        return self.subset(~self.heldout)

    def held_out(self) -> LabelledSequences:
        """The held-out part."""
        return self.subset(self.heldout)


def concatenate(parts: list[LabelledSequences]) -> LabelledSequences:
    """Sequences of one length and frame rate, gathered.

    Raises:
        ValueError: for no parts, or parts of different lengths or frame rates.
    """
    if not parts:
        raise ValueError("nothing to concatenate")
    if len({p.num_frames for p in parts}) != 1 or len({p.fps for p in parts}) != 1:
        raise ValueError(
            f"sequences differ in length {sorted({p.num_frames for p in parts})} or frame rate "
            f"{sorted({p.fps for p in parts})}; make them with one num_frames and fps"
        )
    return LabelledSequences(
        joints=np.concatenate([p.joints for p in parts]),
        confidence=np.concatenate([p.confidence for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        heldout=np.concatenate([p.heldout for p in parts]),
        fps=parts[0].fps,
        sources=tuple(s for p in parts for s in p.sources),
    )


def save_sequences(path: str | os.PathLike[str], data: LabelledSequences) -> Path:
    """Write sequences as an ``.npz`` (arrays, the label names, the frame rate, a format version)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        format_version=np.int64(SEQUENCES_FORMAT_VERSION),
        joints=data.joints,
        confidence=data.confidence,
        labels=data.labels,
        heldout=data.heldout,
        fps=np.float64(data.fps),
        sources=np.array(data.sources, dtype=str),
        label_names=np.array(ACTION_LABELS, dtype=str),
    )
    return path


def load_sequences(path: str | os.PathLike[str]) -> LabelledSequences:
    """Read sequences written by :func:`save_sequences`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for another format version, other label names, or inconsistent arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no sequence file at {path}; make one with: python -m train.actions data --out {path}"
        )
    with np.load(path) as f:
        if int(f["format_version"]) != SEQUENCES_FORMAT_VERSION:
            raise ValueError(f"{path}: sequence format {int(f['format_version'])}, this code reads 1")
        if tuple(str(s) for s in f["label_names"]) != ACTION_LABELS:
            raise ValueError(f"{path}: labels {list(f['label_names'])} are not {list(ACTION_LABELS)}")
        return LabelledSequences(
            joints=f["joints"].astype(np.float32),
            confidence=f["confidence"].astype(np.float32),
            labels=f["labels"].astype(np.int64),
            heldout=f["heldout"].astype(bool),
            fps=float(f["fps"]),
            sources=tuple(str(s) for s in f["sources"]),
        )
