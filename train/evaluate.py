"""Self-reconstruction on held-out target frames: ``python -m train evaluate MODEL [MODEL ...] --data DIR``
(:mod:`train.cli`; :func:`evaluate_models` is its body).

Each model is driven by the held-out frames' own stick figures (the last frames of the target video, never
trained on), in order, each frame conditioned on the previous generated frame (zeros for the first), and its
output is compared with the real frames by :mod:`train.metrics`: SSIM and PSNR over the frame, the body
region (the person's mask box, grown by :data:`train.metrics.BODY_MARGIN_FRAC` each side) and the face crop
(Everybody Dance Now, Chan et al. 2019, Tables 1-2), pose distance and missed joints of the target's pose
estimator (MediaPipe by default) on the generated frames against the driving keypoints (Tables 3-4), and
temporal stability where the pose stood still. An "empty background" row scores a plate without the person
(:func:`background_plate`: the target's background plate, the per-pixel median of the training frames with
the person masked out, :mod:`realtime.model.plate`, the very tensor a compositing generator is fed) against
the same frames, so the background's share of each image measure is visible.

Unseen poses (``--sources VIDEO ...``, issue 18): each model is also driven by the first frames of each source
video through the offline retargeting (:func:`realtime.offline.retarget.retarget_frames`, as
``python -m realtime.offline`` runs it), and the target's pose estimator on each source frame and on the
frame generated from it gives the limb-direction agreement (:class:`train.metrics.LimbAgreement`: median and
p90 angle between the limbs' directions, the rate of the source's elbows and wrists missing on the output),
in columns of the table beside the body-region measures (:func:`drive_with_source`).

``MODEL`` is a run directory, a checkpoint (``.pt``) or an engine (``.onnx``, ``.pt``); see
:func:`resolve_model`. Writes to ``--out``::

    metrics.json          one model: headline numbers (num_frames, ssim, psnr_db, body_ssim, body_psnr_db,
                          face_ssim, face_psnr_db,
                          pose_distance_px, missed_joint_rate, temporal_change_levels, generator_ms_per_frame,
                          ...) and every per-frame value under "details"
    metrics.md            a markdown table, one row per model (and one for the real frames themselves,
                          the floor of each measure, unless --no-reference; one for the empty background,
                          unless --no-background), with its columns' definitions
    reference.json        the measures of that reference row
    background.json       the measures of the empty-background row
    background.png        the plate it used
    samples.png           rows of stick figure | real | generated for a few held-out frames
    samples_SOURCE.png    with --sources: rows of source | stick figure | generated for a few frames of each
                          source video (its file name without extension); metrics.json then lists each
                          source's limb-direction figures under "unseen_poses"
    training_curves.png   losses vs step from the run's metrics.jsonl (skipped, with a message, without one)

With several models, each gets those files (but ``metrics.md``) in ``OUT/LABEL/``, and ``OUT`` holds the
one ``metrics.md`` comparing them and ``comparison.json`` (the headline numbers of each).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from realtime.catalog import ENGINE_SUFFIXES
from realtime.console import progress
from realtime.model.inputs import FrameContext, GeneratorInputs, InputRole, assemble_inputs
from realtime.model.pipeline import Target, to_uint8_hwc
from realtime.model.plate import BACKGROUND_PLATE, MASK_DILATION_PX, PLATE_MAX_FRAMES
from realtime.offline.retarget import fit_height, retarget_frames
from realtime.pose.estimators import PoseEstimator, open_pose_estimator
from train.catalog import DEFAULT_SOURCE_FRAMES
from train.checkpoint import load_target
from train.config import STAGES
from train.dataset import PreparedData, load_prepared, load_target_inputs, to_chw_float
from train.fit import CHECKPOINT_NAME  # a run directory's checkpoint file, and each stage subfolder's
from train.metrics import (
    STILL_THRESHOLD_PX,
    EvaluationResult,
    FrameEvaluator,
    LimbAgreement,
    LimbAgreementEvaluator,
    PoseEstimatorLike,
    find_person_box,
    json_safe,
    markdown_table,
)

log = logging.getLogger(__name__)

#: Training stages in the order they run (:data:`train.config.STAGES`: global -> local -> face); a run
#: directory with per-stage subfolders is evaluated at the last stage that has a checkpoint.
STAGE_ORDER: tuple[str, ...] = STAGES
#: Engine and checkpoint extensions a MODEL file may have (:data:`realtime.catalog.ENGINE_SUFFIXES`).
MODEL_SUFFIXES: tuple[str, ...] = ENGINE_SUFFIXES
#: Label of the table row that scores the real frames themselves (``--reference``).
REFERENCE_LABEL = "real frames (reference)"
#: Label of the table row that scores the plate without the person (``--background``).
BACKGROUND_LABEL = "empty background (the target's plate)"
#: Name of the training log that train.fit writes beside its checkpoint.
TRAINING_LOG_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class SourceDrive:
    """One model driven by one source video's poses (unseen poses, no ground truth): the limb-direction
    agreement between the source frames and the generated ones.

    Attributes:
        name: the source's name in tables and file names (its file name without extension, made unique).
        source: the source video.
        agreement: :class:`train.metrics.LimbAgreement` over the frames driven.
        sheet: the sample sheet written (source | stick figure | generated), or None.
        generate_ms_per_frame: mean wall time of the offline retargeting's per-frame step (normalize, draw,
            generate) in milliseconds.
    """

    name: str
    source: Path
    agreement: LimbAgreement
    sheet: Path | None
    generate_ms_per_frame: float

    def to_json(self, *, details: bool = True) -> dict[str, Any]:
        """``name``, ``source``, the headline figures (:meth:`train.metrics.LimbAgreement.summary`),
        ``sheet``, ``generate_ms_per_frame``, and with ``details`` every field of the agreement under
        ``details``; NaN as ``null``."""
        return json_safe(
            {
                "name": self.name,
                "source": str(self.source),
                **self.agreement.summary(),
                "sheet": None if self.sheet is None else str(self.sheet),
                "generate_ms_per_frame": self.generate_ms_per_frame,
                **({"details": self.agreement.to_json()} if details else {}),
            }
        )


@dataclass(frozen=True)
class ModelEvaluation:
    """One model's evaluation on the held-out frames.

    Attributes:
        label: the model's name in tables and output folders.
        model_path: the engine or checkpoint file that ran.
        result: all measures (:class:`train.metrics.EvaluationResult`).
        generator_ms_per_frame: mean wall time of one generator call in milliseconds, the first (warm-up)
            call excluded when there is more than one frame.
        sources: the model driven by each source video (``--sources``; :func:`drive_with_source`), in order.
    """

    label: str
    model_path: Path
    result: EvaluationResult
    generator_ms_per_frame: float
    sources: tuple[SourceDrive, ...] = ()

    def to_json(self, *, details: bool = True) -> dict[str, Any]:
        """Headline numbers at the top level (``num_frames``, ``ssim``, ``psnr_db``, ... see
        :meth:`EvaluationResult.summary`), each source's limb-direction figures under ``unseen_poses``
        (:meth:`SourceDrive.to_json`), and with ``details`` every measured value under ``details`` (and under
        each source's); NaN as ``null``."""
        return json_safe(
            {
                "label": self.label,
                "model": str(self.model_path),
                **self.result.summary(),
                "generator_ms_per_frame": self.generator_ms_per_frame,
                "unseen_poses": [drive.to_json(details=details) for drive in self.sources],
                **({"details": self.result.to_json()} if details else {}),
            }
        )


def resolve_model(path: str | Path) -> Path:
    """The model file that a command-line ``MODEL`` names.

    - a file ending in ``.onnx``, ``.pt`` or ``.plan``: that file;
    - a run directory holding ``checkpoint.pt`` (``python -m train fit``'s single-stage layout): that;
    - a run directory with per-stage subfolders ``RUN/STAGE/checkpoint.pt``: the checkpoint of the last
      stage in :data:`STAGE_ORDER` that has one, or, for other subfolder names, the only one there is.

    Raises:
        FileNotFoundError: if the path does not exist, or a directory holds no checkpoint where one is looked
            for (the message lists the places).
        ValueError: for a file of another type, or a directory with several checkpoints in unknown stage
            folders (pass one checkpoint instead).
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise ValueError(
                f"{path}: not a model file; expected a run directory or a file ending in "
                f"{', '.join(MODEL_SUFFIXES)}"
            )
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"model not found: {path} (expected a run directory or an engine file)")
    if (path / CHECKPOINT_NAME).is_file():
        return path / CHECKPOINT_NAME
    known = [
        path / stage / CHECKPOINT_NAME for stage in STAGE_ORDER if (path / stage / CHECKPOINT_NAME).is_file()
    ]
    if known:
        return known[-1]
    others = sorted(path.glob(f"*/{CHECKPOINT_NAME}"))
    if len(others) == 1:
        return others[0]
    if others:
        listed = ", ".join(str(p) for p in others)
        raise ValueError(f"{path} holds several checkpoints ({listed}); pass the one to evaluate")
    places = [
        CHECKPOINT_NAME,
        *(f"{stage}/{CHECKPOINT_NAME}" for stage in STAGE_ORDER),
        f"*/{CHECKPOINT_NAME}",
    ]
    raise FileNotFoundError(
        f"{path} holds no checkpoint (looked for {', '.join(places)}); train one with python -m train fit, "
        "or pass an engine file"
    )


def model_label(model: str | Path, resolved: Path) -> str:
    """A short name for a model: the run directory's name (with ``/STAGE`` for a stage's checkpoint), a
    checkpoint's folder name, or an engine's file name without its extension."""
    model = Path(model)
    if model.is_dir():
        inner = resolved.parent.relative_to(model) if resolved.parent != model else None
        name = model.resolve().name
        return f"{name}/{inner.as_posix()}" if inner is not None else name
    if resolved.name == CHECKPOINT_NAME:
        return resolved.resolve().parent.name
    return resolved.stem


def training_logs(model: str | Path, resolved: Path) -> list[Path]:
    """The training logs (``metrics.jsonl``) of a model: beside its file, and for a run directory also in
    the run directory and each stage subfolder (stages in :data:`STAGE_ORDER` first). Empty when none."""
    model = Path(model)
    if model.is_dir():
        candidates = [
            model / TRAINING_LOG_NAME,
            *(model / stage / TRAINING_LOG_NAME for stage in STAGE_ORDER),
        ]
        candidates += sorted(model.glob(f"*/{TRAINING_LOG_NAME}"))
    else:
        candidates = [resolved.parent / TRAINING_LOG_NAME]
    found: list[Path] = []
    for path in candidates:
        if path.is_file() and path.resolve() not in {p.resolve() for p in found}:
            found.append(path)
    return found


def read_training_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (one JSON object per line). A cut-off last line (a run still
    writing) is ignored.

    Raises:
        ValueError: for a line before the last that is not a JSON object.
    """
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                log.warning("%s: ignoring its unfinished last line", path)
                break
            raise ValueError(f"{path}, line {number}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def plot_training_curves(logs: Sequence[Path], out: Path) -> Path:
    """Plot every ``loss*`` scalar of each training log against ``step`` into a PNG: one row per log,
    generator losses on the left, discriminator losses (``loss_d*``) on the right. Records carrying a
    ``stage`` field get one line per stage and loss. Uses matplotlib's Agg canvas (no display needed).

    Raises:
        ValueError: for an unreadable log (see :func:`read_training_log`) or one without any loss.
        ImportError: if matplotlib is not installed.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.6 * len(logs)), layout="constrained")
    axes = figure.subplots(len(logs), 2, squeeze=False)
    for row, path in enumerate(logs):
        records = read_training_log(path)
        series: dict[str, tuple[list[float], list[float]]] = {}
        for record in records:
            if "step" not in record:
                continue
            stage = record.get("stage")
            for key, value in record.items():
                if key.startswith("loss") and isinstance(value, int | float) and math.isfinite(value):
                    name = f"{stage}/{key}" if stage is not None else key
                    steps, values = series.setdefault(name, ([], []))
                    steps.append(float(record["step"]))
                    values.append(float(value))
        if not series:
            raise ValueError(f"{path} has no loss values against 'step' to plot")
        for column, (title, is_d) in enumerate((("generator", False), ("discriminator", True))):
            ax = axes[row][column]
            positive = True
            for name, (steps, values) in sorted(series.items()):
                if name.split("/")[-1].startswith("loss_d") == is_d:
                    ax.plot(steps, values, label=name, linewidth=1)
                    positive = positive and min(values) > 0
            if ax.lines and positive:
                ax.set_yscale("log")  # losses of different sizes stay readable
            ax.set_title(f"{path.parent.name}/{path.name}: {title} losses", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def generate_prepared_frames(
    target: Target,
    data: PreparedData,
    frames: Sequence[int],
    per_target: Mapping[str, torch.Tensor] | None = None,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """Generate frames ``frames`` (indices, in order) of a prepared target from their own prepared keypoints
    and stick figures (no normalization: they are the target's own poses on its canvas), each conditioned on
    the previous output when the model is temporal (zeros for the first), with ``per_target`` in place of
    the target's own per-target inputs when given. Yields ``(t, generated, seconds)``: the frame index, the
    generated frame as uint8 ``(H, W, 3)`` RGB, and the generator's wall time for it in seconds. What
    :func:`evaluate_model` and ``bench.garment_colour --data`` score."""
    spec = target.bundle.generator_inputs
    temporal = bool(list(spec.with_role(InputRole.STATE)))
    width, height = target.canvas_size
    previous = torch.zeros((1, 3, height, width), device=target.device)
    inputs_of_target = target.per_target if per_target is None else per_target
    for t in frames:
        context = FrameContext(
            torch.from_numpy(np.asarray(data.joints_px[t : t + 1], np.float32)).to(target.device),
            torch.from_numpy(np.asarray(data.confidence[t : t + 1], np.float32)).to(target.device),
            to_chw_float(data.stick_figures[t])[None].to(target.device),
            inputs_of_target,
        )
        inputs = assemble_inputs(spec, context, previous)
        start = time.perf_counter()
        out = target.generate(inputs).clone()
        elapsed_s = time.perf_counter() - start
        if temporal:
            previous = out
        yield t, to_uint8_hwc(out[0]), elapsed_s


def evaluate_model(
    target: Target,
    data: PreparedData | str | Path,
    *,
    label: str | None = None,
    estimator: PoseEstimatorLike | None = None,
    still_threshold_px: float = STILL_THRESHOLD_PX,
    sheet: Path | None = None,
    sheet_frames: int = 6,
) -> ModelEvaluation:
    """Generate every held-out frame from its own stick figure, in order (each conditioned on the previous
    output when the model is temporal; fed the target's own per-target inputs, made from the training frames),
    and score it against the real frame (:class:`FrameEvaluator`, with the data's joint confidence threshold).

    Args:
        target: the loaded model.
        data: the prepared target directory (or it opened).
        label: name in tables; default the target's name.
        estimator: pose estimator for the pose measures (default: a new one of the target's kind,
            ``target.bundle.pose_estimator``).
        still_threshold_px: see :class:`train.metrics.TemporalStability`.
        sheet: write a sample sheet PNG here (rows of stick figure | real | generated).
        sheet_frames: rows in the sample sheet, spread evenly over the held-out frames.

    Raises:
        FileNotFoundError: if ``data`` is not a prepared directory.
        ValueError: if the target's canvas differs from the data's, or nothing is held out.
    """
    data = data if isinstance(data, PreparedData) else load_prepared(data)
    meta = data.meta
    if target.canvas_size != (meta.canvas_width, meta.canvas_height):
        raise ValueError(
            f"{target.path}: canvas {target.canvas_size[0]}x{target.canvas_size[1]} differs from the data's "
            f"{meta.canvas_width}x{meta.canvas_height}"
        )
    heldout = list(meta.heldout)
    if not heldout:
        raise ValueError(f"{data.root} holds out no frames (train_end = num_frames = {meta.num_frames})")
    picks = set(np.linspace(0, len(heldout) - 1, num=min(sheet_frames, len(heldout))).round().astype(int))
    seconds: list[float] = []
    rows = []
    with FrameEvaluator(
        confidence_threshold=meta.render.confidence_threshold,
        still_threshold_px=still_threshold_px,
        estimator=estimator,
        pose_estimator=target.bundle.pose_estimator,
    ) as evaluator:
        generated_frames = generate_prepared_frames(target, data, heldout)
        frames = progress(
            generated_frames, desc=f"evaluate {label or target.name}", unit="frame", total=len(heldout)
        )
        for i, (t, generated, frame_s) in enumerate(frames):
            seconds.append(frame_s)
            real = np.asarray(data.frames[t])
            evaluator.add(
                generated, real, data.joints_px[t], data.confidence[t], data.face_boxes[t],
                _person_box(data, t),
            )  # fmt: skip
            if i in picks:
                rows.append(np.concatenate([data.stick_figures[t], real, generated], axis=1))
        result = evaluator.result()
    if sheet is not None:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return ModelEvaluation(
        label=label or target.name,
        model_path=target.path,
        result=result,
        generator_ms_per_frame=1e3 * float(np.mean(timed)),
    )


def drive_with_source(
    target: Target,
    source: str | Path,
    *,
    name: str | None = None,
    max_frames: int | None = DEFAULT_SOURCE_FRAMES,
    median_window: int = 5,
    estimator: PoseEstimatorLike | None = None,
    sheet: Path | None = None,
    sheet_frames: int = 4,
) -> SourceDrive:
    """Drive a model with a source video's poses, as ``python -m realtime.offline`` does
    (:func:`realtime.offline.retarget.retarget_frames`: the source's poses tracked and median-filtered, the
    source's statistics fitted on the frames driven, bone-length retargeting and global normalization, each
    frame conditioned on the previous output), and measure the limb-direction agreement of each generated
    frame with its source frame (:class:`train.metrics.LimbAgreementEvaluator`: the judging estimator on
    both, each frame on its own).

    Args:
        target: the loaded model.
        source: the source (driving) video.
        name: the source's name in tables; default its file name without extension.
        max_frames: drive only the first frames (None: the whole video).
        median_window: the offline temporal median's window (odd; 1 = off).
        estimator: the judging pose estimator (default: a new single-frame one of the target's kind,
            ``target.bundle.pose_estimator``).
        sheet: write a sample sheet PNG here (rows of source scaled to the canvas height | stick figure |
            generated).
        sheet_frames: rows in the sample sheet, spread evenly over the frames driven.

    Raises:
        realtime.video.VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body, or the target's pose estimator is unknown.
    """
    source = Path(source)
    height = target.canvas_size[1]
    rows: list[np.ndarray] = []
    picks: set[int] = set()
    seconds: list[float] = []
    with LimbAgreementEvaluator(
        confidence_threshold=target.bundle.render.confidence_threshold,
        estimator=estimator,
        pose_estimator=target.bundle.pose_estimator,
    ) as evaluator:
        for frame in retarget_frames(target, source, max_frames=max_frames, median_window=median_window):
            if not picks:
                last = frame.source_poses.num_frames - 1
                picks = set(
                    np.linspace(0, last, num=min(sheet_frames, last + 1)).round().astype(int).tolist()
                )
            generated = frame.result.generated
            evaluator.add(frame.source_rgb, generated)
            seconds.append(frame.generate_s)
            if frame.index in picks:
                rows.append(
                    np.concatenate(
                        [fit_height(frame.source_rgb, height), frame.result.stick_figure, generated], 1
                    )
                )
        agreement = evaluator.result()
    if sheet is not None and rows:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    return SourceDrive(
        name=name or source.stem,
        source=source,
        agreement=agreement,
        sheet=sheet if rows else None,
        generate_ms_per_frame=1e3 * float(np.mean(seconds)) if seconds else math.nan,
    )


def _person_box(data: PreparedData, t: int) -> np.ndarray:
    """Frame ``t``'s ground-truth person box: its prepared mask's box, else its keypoints'
    (:func:`train.metrics.find_person_box`)."""
    return find_person_box(
        data.joints_px[t], data.confidence[t], threshold=data.meta.render.confidence_threshold,
        mask=np.asarray(data.masks[t]),
    )  # fmt: skip


def _evaluate_images(
    data: PreparedData,
    image: Callable[[int], np.ndarray],
    description: str,
    estimator: PoseEstimatorLike | None,
    still_threshold_px: float,
) -> EvaluationResult:
    """Score ``image(t)`` (uint8 ``(H, W, 3)``) against each held-out frame ``t`` (the pose measures by
    ``estimator``, default one of the data's kind, ``meta.pose_estimator``)."""
    with FrameEvaluator(
        confidence_threshold=data.meta.render.confidence_threshold,
        still_threshold_px=still_threshold_px,
        estimator=estimator,
        pose_estimator=data.meta.pose_estimator,
    ) as evaluator:
        for t in progress(list(data.meta.heldout), desc=description, unit="frame"):
            evaluator.add(
                image(t), np.asarray(data.frames[t]), data.joints_px[t], data.confidence[t],
                data.face_boxes[t], _person_box(data, t),
            )  # fmt: skip
        return evaluator.result()


def evaluate_reference(
    data: PreparedData,
    *,
    estimator: PoseEstimatorLike | None = None,
    still_threshold_px: float = STILL_THRESHOLD_PX,
) -> EvaluationResult:
    """The measures with the real held-out frames in place of generated ones: the floor of each measure on
    this data. SSIM and PSNR are trivially perfect; pose distance and missed joints show how far the
    estimator on single frames lies from the prepared keypoints (tracked in video mode); temporal change is
    the real video's own change over the still pairs."""
    return _evaluate_images(
        data, lambda t: np.asarray(data.frames[t]), "evaluate real frames (reference)", estimator,
        still_threshold_px,
    )  # fmt: skip


def background_plate(data: PreparedData) -> np.ndarray:
    """The scene without the person: the target's background plate
    (:data:`realtime.model.plate.BACKGROUND_PLATE`), as prepared in ``target_inputs/background_plate.npy``
    or, for data prepared before it was declared, made now by its producer and stored there
    (:func:`train.dataset.load_target_inputs`): the per-pixel median of at most
    :data:`realtime.model.plate.PLATE_MAX_FRAMES` training frames with the dilated person mask left out,
    filled from the nearest seen pixel where the person always stood.

    Returns:
        uint8 ``(H, W, 3)``.
    """
    plate = load_target_inputs(data, GeneratorInputs((BACKGROUND_PLATE,)))[BACKGROUND_PLATE.name]
    return (plate.transpose(1, 2, 0) * 255.0).round().clip(0, 255).astype(np.uint8)


def evaluate_background(
    data: PreparedData,
    plate: np.ndarray,
    *,
    estimator: PoseEstimatorLike | None = None,
    still_threshold_px: float = STILL_THRESHOLD_PX,
) -> EvaluationResult:
    """The measures with an empty plate (e.g. :func:`background_plate`) in place of every generated frame:
    what a model that draws no person at all would score, the background's share of SSIM and PSNR.

    Raises:
        ValueError: if the plate is not uint8 of the frames' shape.
    """
    shape = tuple(data.frames.shape[1:])
    if plate.dtype != np.uint8 or plate.shape != shape:
        raise ValueError(f"the plate must be uint8 {shape} like the frames, got {plate.dtype} {plate.shape}")
    return _evaluate_images(data, lambda t: plate, "evaluate empty background", estimator, still_threshold_px)


def evaluate_models(
    models: Sequence[str | Path],
    data_dir: str | Path,
    out: str | Path | None = None,
    *,
    still_threshold_px: float = STILL_THRESHOLD_PX,
    sheet_frames: int = 6,
    reference: bool = True,
    background: bool = True,
    sources: Sequence[str | Path] = (),
    source_frames: int | None = DEFAULT_SOURCE_FRAMES,
    report: Callable[[str], None] = log.info,
    model: str = "auto",
) -> tuple[Path, str]:
    """Evaluate each model on the held-out frames of ``data_dir`` and write the files of the module's
    docstring (``python -m train evaluate``).

    Args:
        models: what a command-line ``MODEL`` names (:func:`resolve_model`); all are loaded before any is
            evaluated.
        data_dir: the prepared target directory.
        out: the output folder; None with one model: ``eval`` in the model's folder.
        still_threshold_px: see :func:`evaluate_model`; sheet_frames: rows in each sample sheet.
        reference, background: add the real frames' row and the empty background's row.
        sources: source videos that also drive each model (unseen poses; :func:`drive_with_source`): their
            limb-direction figures go into each model's ``metrics.json`` and the table, a sample sheet each
            into the model's folder (``samples_NAME.png``).
        source_frames: drive with the first this many frames of each source (None: all of them).
        report: called with one line per model evaluated (what was written).
        model: which of a bundle's (or a student run's) models to evaluate: one of
            :data:`realtime.catalog.MODEL_CHOICES`, or "both": the teacher and the student as two rows
            (``NAME (teacher)``, ``NAME (student)``); a model without a student is evaluated once.

    Returns:
        ``(out, table)``: the output folder and the markdown table written to ``out/metrics.md``.

    Raises:
        ValueError: for no model, several models without ``out``, a bad model file or prepared directory.
        OSError, RuntimeError: for files that cannot be read or written, a model that cannot run.
    """
    if not models:
        raise ValueError("no model to evaluate: give at least one")
    if len(models) > 1 and out is None:
        raise ValueError("an output folder is required when evaluating several models")
    estimators: dict[str, PoseEstimator] = {}

    def estimator_for(name: str) -> PoseEstimator:
        """One single-frame estimator per name for the whole run (MediaPipe's graph takes a second)."""
        if name not in estimators:
            estimators[name] = open_pose_estimator(name, video_mode=False)
        return estimators[name]

    missing = [str(source) for source in sources if not Path(source).is_file()]
    if missing:
        raise FileNotFoundError(f"source video not found: {', '.join(missing)}")
    if source_frames is not None and source_frames < 1:
        raise ValueError(f"source_frames must be at least 1, got {source_frames}")
    source_names = _unique([Path(source).stem for source in sources])
    try:
        data = load_prepared(data_dir)
        resolved_models: list[tuple[Path, Path]] = []
        labels: list[str] = []
        targets: list[Target] = []
        for given in models:  # all loaded first: fail early, before evaluating
            resolved = resolve_model(given)
            for target in _load_models(resolved, model):
                resolved_models.append((Path(given), resolved))
                role = getattr(target, "role", "only")
                labels.append(model_label(given, resolved) + ("" if role == "only" else f" ({role})"))
                targets.append(target)
        labels = _unique(labels)
        first = resolved_models[0][0]
        out_dir = Path(out) if out is not None else (first if first.is_dir() else first.parent) / "eval"
        if len(resolved_models) == 1:
            folders = [out_dir]
        else:
            folders = [out_dir / label.replace("/", "_").replace(" (", "_").rstrip(")") for label in labels]
        # The pose measures use each target's pose estimator; the reference and background rows the data's.
        evaluations = []
        for (given_model, resolved), label, target, folder in zip(
            resolved_models, labels, targets, folders, strict=True
        ):
            if target.bundle.pose_estimator != data.meta.pose_estimator:
                log.warning(
                    "%s uses pose estimator %r, the data %r: its pose measures and the other rows' are "
                    "judged by different estimators",
                    label,
                    target.bundle.pose_estimator,
                    data.meta.pose_estimator,
                )
            estimator = estimator_for(target.bundle.pose_estimator)
            evaluation = evaluate_model(
                target, data, label=label, estimator=estimator, still_threshold_px=still_threshold_px,
                sheet=folder / "samples.png", sheet_frames=sheet_frames,
            )  # fmt: skip
            drives = tuple(
                drive_with_source(
                    target,
                    source,
                    name=name,
                    max_frames=source_frames,
                    estimator=estimator,
                    sheet=folder / f"samples_{name}.png",
                    sheet_frames=min(sheet_frames, 4),
                )  # fmt: skip
                for source, name in zip(sources, source_names, strict=True)
            )
            evaluation = dataclasses.replace(evaluation, sources=drives)
            evaluations.append(evaluation)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps(evaluation.to_json(), indent=2))
            message = _write_training_curves(given_model, resolved, folder / "training_curves.png")
            report(f"{label}: wrote {folder / 'metrics.json'}, {folder / 'samples.png'}; {message}")
            for drive in drives:
                figures = drive.agreement
                report(
                    f"{label} driven by {drive.name} ({figures.num_frames} frames): limb directions median "
                    f"{figures.median_deg:.1f} deg, p90 {figures.p90_deg:.1f} deg, elbows+wrists missed "
                    f"{figures.missed_arm_joint_rate:.1%}; sheet {drive.sheet}"
                )
        reference_result = None
        if reference:
            reference_result = evaluate_reference(
                data, estimator=estimator_for(data.meta.pose_estimator), still_threshold_px=still_threshold_px
            )
        background_result = None
        if background:
            plate = background_plate(data)
            out_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(plate).save(out_dir / "background.png")
            background_result = evaluate_background(
                data,
                plate,
                estimator=estimator_for(data.meta.pose_estimator),
                still_threshold_px=still_threshold_px,
            )
        table = _write_table(out_dir, Path(data_dir), data, evaluations, reference_result, background_result)
    finally:
        for opened in estimators.values():
            opened.close()
    return out_dir, table


def _load_models(resolved: Path, model: str) -> list[Target]:
    """The target(s) ``model`` asks of one resolved model file (:func:`train.checkpoint.load_target`):
    "both" gives the teacher and the student where there is a student, else the one model."""
    if model != "both":
        return [load_target(resolved, model)]
    teacher = load_target(resolved, "teacher")
    if getattr(teacher, "role", "only") == "only":
        return [teacher]
    return [teacher, load_target(resolved, "student")]


def _write_table(
    out: Path,
    data_dir: Path,
    data: PreparedData,
    evaluations: list[ModelEvaluation],
    reference: EvaluationResult | None,
    background: EvaluationResult | None = None,
) -> str:
    """Write ``metrics.md`` (and ``reference.json``, ``background.json``, and ``comparison.json`` for several
    models) to ``out``; returns the markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    results = {e.label: e.result for e in evaluations}
    if reference is not None:
        results[REFERENCE_LABEL] = reference
        (out / "reference.json").write_text(json.dumps(reference.to_json(), indent=2))
    if background is not None:
        results[BACKGROUND_LABEL] = background
        (out / "background.json").write_text(json.dumps(background.to_json(), indent=2))
    agreements = {e.label: {d.name: d.agreement for d in e.sources} for e in evaluations if e.sources}
    table = markdown_table(results, {e.label: e.generator_ms_per_frame for e in evaluations}, agreements)
    heldout, meta = data.meta.heldout, data.meta
    header = (
        f"# Self-reconstruction on held-out frames\n\nData: `{data_dir}`, frames {heldout.start}-"
        f"{heldout.stop - 1} ({len(heldout)} held out), canvas {meta.canvas_width}x{meta.canvas_height}."
    )
    drives = {d.name: d for e in evaluations for d in e.sources}
    if drives:
        frames = ", ".join(f"`{d.source}` ({d.agreement.num_frames} frames)" for d in drives.values())
        header += (
            f" Unseen poses: each model driven by the first frames of {frames} through the offline "
            "retargeting."
        )
    if background is not None:
        header += (
            f" The empty background is the target's plate (`background.png`): the per-pixel median of "
            f"{min(PLATE_MAX_FRAMES, meta.train_end)} training frames with the person mask, grown by "
            f"{MASK_DILATION_PX} px, left out."
        )
    header += "\n\n"
    (out / "metrics.md").write_text(header + table)
    if len(evaluations) > 1:
        rows = [e.to_json(details=False) for e in evaluations]
        (out / "comparison.json").write_text(json.dumps({"data": str(data_dir), "models": rows}, indent=2))
    return table


def _write_training_curves(model: Path, resolved: Path, out: Path) -> str:
    """Plot the model's training logs, if any; returns what was done, for the CLI to print."""
    logs = training_logs(model, resolved)
    if not logs:
        return f"no training curves ({TRAINING_LOG_NAME} is not beside {resolved})"
    try:
        plot_training_curves(logs, out)
    except ImportError:
        return "no training curves (matplotlib is not installed: pip install matplotlib)"
    return f"training curves {out}"


def _unique(labels: list[str]) -> list[str]:
    """The labels with repeats made distinct by a ``-2``, ``-3``... suffix."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return unique
