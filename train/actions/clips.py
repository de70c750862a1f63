"""Labelled real clips: a small label file of time ranges in videos, run through the project's pose estimator
into labelled sequences in the normalized joint space.

The label file is CSV with a header row and the columns ``video,start_s,end_s,label`` and an optional
``split`` (``train`` or ``heldout``; default ``train``); a relative video path is relative to the label
file's folder. Lines starting with ``#`` (comments: how the ranges were chosen) and blank lines are
skipped. For example::

    video,start_s,end_s,label,split
    clips/alice.mp4,12.0,16.5,wave,train
    clips/bob.mp4,3.0,7.0,clap,heldout

Each range's frames are estimated in order by one pose estimator in video mode
(:func:`realtime.pose.estimators.open_pose_estimator`, MediaPipe by default), resampled to the training
frame rate (the nearest earlier frame at each time step), normalized as a whole
(:func:`train.actions.sequences.normalize_sequence`) with missing joints filled
(:func:`train.actions.sequences.fill_missing`), and cut into windows of ``num_frames`` frames every
``num_frames // 2``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.catalog import DEFAULT_POSE_ESTIMATOR
from train.actions.sequences import LabelledSequences, fill_missing, label_index, normalize_sequence

log = logging.getLogger(__name__)

_COLUMNS = ("video", "start_s", "end_s", "label")


@dataclass(frozen=True)
class ClipLabel:
    """One row of a label file: ``label`` from ``start_s`` to ``end_s`` (seconds) of ``video``."""

    video: Path
    start_s: float
    end_s: float
    label: str
    heldout: bool = False


def read_label_file(path: str | os.PathLike[str]) -> list[ClipLabel]:
    """Read a label file (module docstring).

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: for missing columns, unknown labels or splits, bad times (the message names the row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no label file at {path}")
    with path.open(newline="") as file:
        numbered = [(n, line) for n, line in enumerate(file, start=1) if line.strip() and line[0] != "#"]
        reader = csv.DictReader(line for _, line in numbered)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: the header lacks {missing}; columns: video,start_s,end_s,label[,split]"
            )
        rows = []
        for (line, _), row in zip(numbered[1:], reader, strict=True):
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
                label_index(row["label"])
            except ValueError as error:
                raise ValueError(f"{path}:{line}: {error}") from None
            split = (row.get("split") or "train").strip()
            if not 0 <= start < end or split not in ("train", "heldout"):
                raise ValueError(f"{path}:{line}: need 0 <= start_s < end_s and split train or heldout")
            video = Path(row["video"])
            video = video if video.is_absolute() else path.parent / video
            rows.append(ClipLabel(video, start, end, row["label"], split == "heldout"))
    return rows


def estimate_clip(
    clip: ClipLabel, fps: float, pose_estimator: str = DEFAULT_POSE_ESTIMATOR
) -> tuple[np.ndarray, np.ndarray]:
    """Pose estimates of one labelled range, resampled to ``fps``.

    Returns:
        ``(joints_px, confidence)``: float32 ``(T, NUM_JOINTS, 2)`` video pixels and ``(T, NUM_JOINTS)``,
        ``T = floor((end_s - start_s) * fps)`` (fewer if the video ends first).

    Raises:
        realtime.video.VideoError: for a missing or unreadable video; ValueError: for a range past its end.
    """
    from realtime.pose.estimators import open_pose_estimator
    from realtime.video import read_frames

    times_ms = 1000.0 * (clip.start_s + np.arange(int((clip.end_s - clip.start_s) * fps)) / fps)
    frame_ms, joints, confidence = [], [], []
    with open_pose_estimator(pose_estimator, video_mode=True) as estimator:
        for rgb, t_ms in read_frames(clip.video):
            if t_ms > 1000.0 * clip.end_s:
                break
            if t_ms >= 1000.0 * clip.start_s - 1000.0 / fps:
                pose = estimator.estimate(rgb, t_ms)
                frame_ms.append(t_ms)
                joints.append(pose.joints_px)
                confidence.append(pose.confidence)
    times_ms = times_ms[times_ms <= (frame_ms[-1] if frame_ms else -1.0)]
    if not len(times_ms):
        raise ValueError(f"{clip.video}: no frames between {clip.start_s} s and {clip.end_s} s")
    pick = np.clip(np.searchsorted(np.array(frame_ms), times_ms + 1e-3, side="right") - 1, 0, None)
    return np.stack(joints)[pick], np.stack(confidence)[pick]


def clip_sequences(
    label_file: str | os.PathLike[str],
    *,
    num_frames: int,
    fps: float,
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
) -> LabelledSequences:
    """Every labelled range of a label file as windows of ``num_frames`` frames at ``fps`` (module docstring).
    Windows of a held-out range are held out. A range shorter than ``num_frames`` gives none (logged).

    Raises:
        FileNotFoundError, ValueError: as :func:`read_label_file`; ValueError also when no range gives a
            window; realtime.video.VideoError: for an unreadable video.
    """
    joints, confidence, labels, heldout, sources = [], [], [], [], []
    for clip in read_label_file(label_file):
        j_px, conf = estimate_clip(clip, fps, pose_estimator)
        if len(j_px) < num_frames:
            log.warning("%s %.1f-%.1f s: %d frames, under %d: skipped", clip.video, clip.start_s, clip.end_s,
                        len(j_px), num_frames)  # fmt: skip
            continue
        normalized = fill_missing(normalize_sequence(j_px, conf), conf)
        for start in range(0, len(j_px) - num_frames + 1, max(1, num_frames // 2)):
            joints.append(normalized[start : start + num_frames])
            confidence.append(conf[start : start + num_frames])
            labels.append(label_index(clip.label))
            heldout.append(clip.heldout)
            t0 = clip.start_s + start / fps
            sources.append(f"{clip.video.name}@{t0:.2f}-{t0 + num_frames / fps:.2f}")
    if not labels:
        raise ValueError(f"{label_file}: no labelled range is at least {num_frames} frames at {fps} fps long")
    return LabelledSequences(
        joints=np.stack(joints).astype(np.float32),
        confidence=np.stack(confidence).astype(np.float32),
        labels=np.array(labels, np.int64),
        heldout=np.array(heldout, bool),
        fps=fps,
        sources=tuple(sources),
    )
