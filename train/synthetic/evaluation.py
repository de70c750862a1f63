"""The unseen-pose evaluation (``python -m train evaluate --synthetic``): a trained mannequin model driven by
the poses of real source videos through the offline retargeting
(:func:`realtime.offline.retarget.retarget_frames`),
compared with the mannequin rendered in the same normalized poses (exact ground truth).

Image similarity is reported over the whole frame and over the body region: the ground-truth mannequin's
silhouette box (its render mask) grown by :data:`train.metrics.BODY_MARGIN_FRAC` of the box's size on each
side. An "empty room" row scores the room rendered without the mannequin
(:func:`train.synthetic.renderer.render_background`) against the same ground truth, so the static
background's share of each figure is visible. Beside the body figures, the limb-direction agreement that
``python -m train evaluate --sources`` reports for real targets (:class:`train.metrics.LimbAgreement`: the
pose estimator on each source frame and on the frame generated from it, median and p90 angle between the
limbs' directions, the source's elbows and wrists missing on the output), with the same figures for the
ground-truth render as their floor (how well the estimator reads the mannequin itself)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from train.synthetic.renderer import render_background, render_mannequin

if TYPE_CHECKING:
    from realtime.pose.estimators import PoseFrame


@dataclass(frozen=True)
class SourceEvaluation:
    """A mannequin model driven by one real source video, against the mannequin rendered in the same poses.

    Attributes:
        source: the source video's path.
        num_frames: frames compared (every frame of the source; frames without a person show the empty room).
        frames_with_person: frames where the pose estimator found the source's dancer.
        ssim, psnr_db: mean over frames, generated vs ground truth (scikit-image; SSIM in [-1, 1]).
        body_ssim, body_psnr_db: the same over the body region (frames where the ground truth shows the
            mannequin: ``body_frames``).
        body_frames: frames with a body region.
        face_ssim: mean SSIM over the face boxes (NaN where no frame has a face).
        pose_distance_px: mean distance (canvas pixels) between the driving joints and the joints that the
            pose estimator finds on the generated frames; ``missed_joint_rate`` the fraction of present
            driving joints it does not find.
        reference_pose_distance_px, reference_missed_joint_rate: the same on the ground-truth renders: how
            well the pose estimator sees the mannequin itself (the floor for the two figures above).
        temporal_change_levels: mean frame-to-frame change (uint8 levels) of the generated frames where the
            driving pose stood still (:class:`train.metrics.TemporalStability`).
        limb_direction_median_deg, limb_direction_p90_deg: median and 90th percentile, over all limbs of all
            frames, of the angle in degrees between each limb's direction found by the pose estimator on the
            source frame and on the generated frame (:class:`train.metrics.LimbAgreement`; NaN when no limb
            was found on both).
        missed_arm_joint_rate: the share of the source's found elbows and wrists that the estimator does not
            find on the generated frames.
        reference_limb_direction_median_deg, reference_limb_direction_p90_deg,
        reference_missed_arm_joint_rate: the same three on the ground-truth renders (their floor).
        background_ssim, background_psnr_db, background_body_ssim, background_body_psnr_db: the same four
            figures for the empty room (the background render without the mannequin) against the same
            ground truth: what a model that draws no mannequin at all would score.
        generate_ms: the generator's mean milliseconds per frame.
        sheet: path of the sample sheet (source | stick figure | ground truth | generated).
        details: the full measures (:class:`train.metrics.EvaluationResult` as JSON where available).
    """

    source: str
    num_frames: int
    frames_with_person: int
    ssim: float
    psnr_db: float
    body_ssim: float
    body_psnr_db: float
    body_frames: int
    face_ssim: float
    pose_distance_px: float
    missed_joint_rate: float
    reference_pose_distance_px: float
    reference_missed_joint_rate: float
    temporal_change_levels: float
    limb_direction_median_deg: float
    limb_direction_p90_deg: float
    missed_arm_joint_rate: float
    reference_limb_direction_median_deg: float
    reference_limb_direction_p90_deg: float
    reference_missed_arm_joint_rate: float
    background_ssim: float
    background_psnr_db: float
    background_body_ssim: float
    background_body_psnr_db: float
    generate_ms: float
    sheet: str
    details: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SyntheticEvaluation:
    """:func:`evaluate_synthetic`'s result: one :class:`SourceEvaluation` per source video, and which of the
    bundle's models drove them (``model``, as asked: "auto", "teacher" or "student")."""

    engine: str
    sources: tuple[SourceEvaluation, ...]
    model: str = "auto"

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "model": self.model,
            "sources": [_json_safe(asdict(s)) for s in self.sources],
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _compare(
    generated: np.ndarray,
    real: np.ndarray,
    joints_px: np.ndarray,
    confidence: np.ndarray,
    boxes: np.ndarray,
    person_boxes: np.ndarray,
    threshold: float,
    pose_estimator: str,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Generated vs ground truth with :func:`train.metrics.evaluate_frames` (SSIM and PSNR over the frame,
    the body region and the face box, pose distance and missed joints of the pose estimator named
    ``pose_estimator``, the target's, temporal stability).

    Returns:
        ``(summary, details)``: :meth:`train.metrics.EvaluationResult.summary` and its full JSON.
    """
    from train.metrics import evaluate_frames

    result = evaluate_frames(
        generated, real, joints_px, confidence, boxes, person_boxes, confidence_threshold=threshold,
        progress=True, pose_estimator=pose_estimator,
    )  # fmt: skip
    return result.summary(), result.to_json()


def _fixed_face_boxes(joints_px: np.ndarray, confidence: np.ndarray, side_px: float) -> np.ndarray:
    """Face boxes centered as :func:`train.prepare.face_boxes` centers them, of the target's fixed side."""
    from train.prepare import face_boxes

    boxes, _ = face_boxes(joints_px, confidence)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.concatenate([center - side_px / 2, center + side_px / 2], axis=1).astype(np.float32)


def _sheet(path: Path, rows: list[list[np.ndarray]]) -> None:
    """A PNG with one row per sample: the images of each row side by side (all the same height)."""
    image = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def evaluate_source(
    engine_path: str | Path,
    source_video: str | Path,
    out_dir: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
    sheet_frames: int = 6,
    model: str = "auto",
) -> SourceEvaluation:
    """Drive a mannequin model with one real source video and compare with the rendered ground truth.

    The model is driven through the offline retargeting that ``python -m realtime.offline`` runs
    (:func:`realtime.offline.retarget.retarget_frames`: MediaPipe poses, a centered temporal median, the
    source's statistics fitted on the whole video, then :class:`realtime.model.pipeline.Retargeter`, each
    frame conditioned on the previous one); the mannequin is rendered in each frame's normalized pose as the
    ground truth. The target's pose estimator, each frame on its own, also reads the source frame, the
    generated frame and the ground-truth render for the limb-direction agreement
    (:class:`train.metrics.LimbAgreementEvaluator`).

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as :meth:`realtime.model.pipeline.Target.load`.
        realtime.video.VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body.
    """
    from realtime.model.pipeline import Target
    from realtime.offline.retarget import SourcePoses, fit_height, retarget_frames
    from realtime.pose.estimators import open_pose_estimator
    from train.metrics import LimbAgreementEvaluator, find_person_box

    target = Target.load(engine_path, model=model)
    width, height = target.canvas_size
    threshold = target.bundle.render.confidence_threshold
    source_video, out_dir = Path(source_video), Path(out_dir)
    generated: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    person_boxes: list[np.ndarray] = []
    sticks: list[np.ndarray] = []
    driving: list[PoseFrame] = []
    thumbs: list[tuple[int, np.ndarray]] = []
    seconds = 0.0
    source_poses: SourcePoses | None = None
    picks: set[int] = set()
    frames = retarget_frames(target, source_video, max_frames=max_frames, median_window=median_window)
    # One single-frame judge reads each source frame once, for the generated frame and for the render.
    single_frame = open_pose_estimator(target.bundle.pose_estimator, video_mode=False)
    limbs = LimbAgreementEvaluator(confidence_threshold=threshold, estimator=single_frame)
    reference_limbs = LimbAgreementEvaluator(confidence_threshold=threshold, estimator=single_frame)
    try:
        for frame in frames:
            if source_poses is None:
                source_poses = frame.source_poses
                last = source_poses.num_frames - 1
                picks = set(np.linspace(0, last, sheet_frames).round().astype(int).tolist())
            result = frame.result
            seconds += frame.generate_s
            normalized = result.normalized
            generated.append(result.generated)
            sticks.append(result.stick_figure)
            driving.append(normalized)
            render = render_mannequin(
                normalized.joints_px, normalized.confidence, width=width, height=height, threshold=threshold
            )
            truth.append(render.image)
            # The mannequin's silhouette box; NaN where the room is empty (zero confidence: no keypoint
            # fallback, the mask is exact).
            person_boxes.append(
                find_person_box(normalized.joints_px, np.zeros_like(normalized.confidence), mask=render.mask)
            )
            if frame.index in picks:
                thumbs.append((frame.index, fit_height(frame.source_rgb, height)))
            seen = limbs.estimate(frame.source_rgb, float(frame.index))
            for accumulator, image in ((limbs, result.generated), (reference_limbs, render.image)):
                output = accumulator.estimate(image, float(frame.index))
                accumulator.add_poses(seen.joints_px, seen.confidence, output.joints_px, output.confidence)
    finally:
        single_frame.close()
    agreement, reference_agreement = limbs.result(), reference_limbs.result()
    if source_poses is None:
        raise ValueError(f"{source_video}: no frame was retargeted (an empty video?)")
    n = len(generated)
    driving_joints = np.stack([p.joints_px for p in driving])
    driving_conf = np.stack([p.confidence for p in driving])
    boxes = _fixed_face_boxes(driving_joints, driving_conf, target.bundle.face_box_size_px)
    gen_arr, truth_arr, person_arr = np.stack(generated), np.stack(truth), np.stack(person_boxes)
    room = np.broadcast_to(render_background(width, height), truth_arr.shape)
    judge = target.bundle.pose_estimator
    compared = [
        _compare(images, truth_arr, driving_joints, driving_conf, boxes, person_arr, threshold, judge)
        for images in (gen_arr, truth_arr, room)
    ]
    (measured, measured_details), (reference, reference_details), (empty, empty_details) = compared
    sheet = out_dir / f"{source_video.stem}_sheet.png"
    _sheet(sheet, [[thumb, sticks[i], truth[i], generated[i]] for i, thumb in thumbs])
    return SourceEvaluation(
        source=str(source_video),
        num_frames=n,
        frames_with_person=source_poses.frames_with_person,
        ssim=float(measured["ssim"]),
        psnr_db=float(measured["psnr_db"]),
        body_ssim=float(measured["body_ssim"]),
        body_psnr_db=float(measured["body_psnr_db"]),
        body_frames=int(measured["body_num_frames"]),
        face_ssim=float(measured["face_ssim"]),
        pose_distance_px=float(measured["pose_distance_px"]),
        missed_joint_rate=float(measured["missed_joint_rate"]),
        reference_pose_distance_px=float(reference["pose_distance_px"]),
        reference_missed_joint_rate=float(reference["missed_joint_rate"]),
        generate_ms=1e3 * seconds / max(n, 1),
        sheet=str(sheet),
        temporal_change_levels=float(measured["temporal_change_levels"]),
        limb_direction_median_deg=agreement.median_deg,
        limb_direction_p90_deg=agreement.p90_deg,
        missed_arm_joint_rate=agreement.missed_arm_joint_rate,
        reference_limb_direction_median_deg=reference_agreement.median_deg,
        reference_limb_direction_p90_deg=reference_agreement.p90_deg,
        reference_missed_arm_joint_rate=reference_agreement.missed_arm_joint_rate,
        background_ssim=float(empty["ssim"]),
        background_psnr_db=float(empty["psnr_db"]),
        background_body_ssim=float(empty["body_ssim"]),
        background_body_psnr_db=float(empty["body_psnr_db"]),
        details={
            "generated": measured_details,
            "ground_truth_render": reference_details,
            "empty_room": empty_details,
            "limb_agreement": {
                "generated": agreement.to_json(),
                "ground_truth_render": reference_agreement.to_json(),
            },
        },
    )


def evaluate_synthetic(
    engine_path: str | Path,
    source_videos: Sequence[str | Path],
    out_dir: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
    model: str = "auto",
) -> SyntheticEvaluation:
    """Generalization of a mannequin model to the unseen poses of real source videos, with exact ground truth.

    For each source video, :func:`evaluate_source`; writes ``OUT/metrics.json`` and one sample sheet per
    source (``OUT/<source stem>_sheet.png``: source | stick figure | ground-truth mannequin | generated).

    Args:
        engine_path: a mannequin target (``.onnx`` or ``.pt`` with its sidecar), e.g.
            :data:`realtime.targets.DEFAULT_TARGET`.
        source_videos: real driving videos.
        out_dir: output directory (created).
        max_frames: use only the first frames of each video.
        median_window: the offline temporal median's window (as ``python -m realtime.offline``).
        model: which of a bundle's models to drive (:data:`realtime.catalog.MODEL_CHOICES`; "auto": the
            student on a CPU).

    Returns:
        :class:`SyntheticEvaluation`.

    Raises:
        as :func:`evaluate_source`; ValueError if no source video is given.
    """
    if not source_videos:
        raise ValueError("evaluate_synthetic needs at least one source video")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = tuple(
        evaluate_source(
            engine_path, video, out_dir, max_frames=max_frames, median_window=median_window, model=model
        )
        for video in source_videos
    )
    evaluation = SyntheticEvaluation(engine=str(engine_path), sources=results, model=model)
    (out_dir / "metrics.json").write_text(json.dumps(evaluation.to_json(), indent=2))
    return evaluation
