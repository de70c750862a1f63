"""The evaluation of PSGAN's pose sequences after Yang et al. ("Pose Guided Human Video Generation", ECCV
2018: an action classifier trained on real sequences scores the generated ones) for an action run, and its
outputs: sampled sequences and a sheet of rendered frames.

- **Accuracy**: the run's action classifier (trained on the real training sequences only) classifies the
  held-out real sequences and as many generated ones per label; per label, the fraction classified as that
  label. Generated accuracy near the held-out one means the generator's motion is recognisable as its label.
  The held-out sequences are scored apart by source (:attr:`train.actions.sequences.LabelledSequences.
  synthetic`): windows of labelled real clips (:mod:`train.actions.clips`) and synthetic choreography.
- **Diversity**: the mean distance between two sequences of one label (per joint and frame, in canvas
  sides of the normalized joint space, over all pairs), generated beside real: a collapsed generator gives
  much less than the real data.
- **Smoothness**: joint speed (canvas sides per second) and acceleration (canvas sides per second squared)
  over all joints and frames, median and 95th percentile, generated beside real; jitter shows as a higher
  acceleration p95.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from train.actions.checkpoint import ActionsCheckpoint, load_actions_checkpoint
from train.actions.fit import load_training_data
from train.actions.models import ActionClassifier, PoseSequenceGenerator
from train.actions.sequences import (
    ACTION_LABELS,
    CANONICAL_CANVAS_PX,
    LabelledSequences,
    canonical_stats,
    label_index,
)


@dataclass(frozen=True)
class LabelScores:
    """One row of the evaluation (one label, or all of them for ``label`` "all").

    Attributes:
        label: the action label or "all".
        num_real, num_generated: sequences scored (``num_real``: every held-out sequence, real clips' windows
            and synthetic ones).
        num_clips, num_synthetic: of ``num_real``, the real clips' windows and the synthetic sequences.
        accuracy_real, accuracy_generated: classifier accuracy in [0, 1] (NaN without sequences).
        accuracy_clips, accuracy_synthetic: ``accuracy_real`` on the real clips' windows and on the synthetic
            sequences alone (NaN where there are none).
        diversity_real, diversity_generated: mean pairwise distance, canvas sides (NaN under 2 sequences).
        speed_real, speed_generated: (median, p95) joint speed, canvas sides per second.
        accel_real, accel_generated: (median, p95) joint acceleration, canvas sides per second squared.
    """

    label: str
    num_real: int
    num_generated: int
    accuracy_real: float
    accuracy_generated: float
    num_clips: int
    num_synthetic: int
    accuracy_clips: float
    accuracy_synthetic: float
    diversity_real: float
    diversity_generated: float
    speed_real: tuple[float, float]
    speed_generated: tuple[float, float]
    accel_real: tuple[float, float]
    accel_generated: tuple[float, float]


def classifier_accuracy(classifier: ActionClassifier, joints: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``joints`` float ``(N, T, NUM_JOINTS, 2)`` classified as their int ``(N,)`` ``labels``
    (NaN for N = 0)."""
    if len(labels) == 0:
        return float("nan")
    with torch.no_grad():
        predicted = classifier(torch.from_numpy(np.ascontiguousarray(joints, np.float32))).argmax(-1).numpy()
    return float((predicted == labels).mean())


def diversity(joints: np.ndarray) -> float:
    """Mean over pairs ``a != b`` of the mean over frames and joints of ``|joints[a] - joints[b]|`` for
    ``(N, T, NUM_JOINTS, 2)`` sequences (NaN for N < 2)."""
    n = len(joints)
    if n < 2:
        return float("nan")
    flat = joints.reshape(n, -1, 2).astype(np.float64)
    total = 0.0
    for a in range(n - 1):
        total += float(np.linalg.norm(flat[a + 1 :] - flat[a], axis=-1).mean(axis=1).sum())
    return total / (n * (n - 1) / 2)


def speed_and_acceleration(joints: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per joint and frame speed ``|x[t+1] - x[t]| * fps`` and acceleration ``|x[t+1] - 2x[t] + x[t-1]| *
    fps^2`` of ``(N, T, NUM_JOINTS, 2)`` sequences, flattened (float64)."""
    velocity = np.diff(joints.astype(np.float64), axis=1) * fps
    accel = np.diff(velocity, axis=1) * fps
    return np.linalg.norm(velocity, axis=-1).ravel(), np.linalg.norm(accel, axis=-1).ravel()


def _median_p95(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.median(values)), float(np.percentile(values, 95))


def generate(
    generator: PoseSequenceGenerator, label: str, count: int, num_frames: int, seed: int = 0
) -> np.ndarray:
    """``count`` sequences of ``label`` from ``generator``: float32 ``(count, num_frames, NUM_JOINTS, 2)`` in
    the normalized joint space, seeded.

    Raises:
        ValueError: for an unknown label or ``num_frames < 2``.
    """
    labels = torch.full((count,), label_index(label), dtype=torch.int64)
    with torch.no_grad():
        out = generator(
            labels, num_frames, generator=torch.Generator().manual_seed(seed + label_index(label))
        )
    return out.numpy().astype(np.float32)


def score_run(
    checkpoint: ActionsCheckpoint,
    *,
    generated_per_label: int = 60,
    seed: int = 0,
    artifact: str | os.PathLike[str] | None = None,
) -> tuple[list[LabelScores], dict[str, np.ndarray]]:
    """Score a run's generator against its held-out real sequences (module docstring).

    Args:
        checkpoint: the run's checkpoint (its data is loaded again: ``synthetic`` is made from its config).
        generated_per_label: generated sequences per label (>= 2).
        seed: the generation seed.
        artifact: score the generator of this exported ``.onnx`` (+ sidecar) instead of the run's, with the
            run's classifier and held-out data (to compare an artifact with a run); it runs in
            :class:`realtime.model.actions.ActionModel`, sequence ``i`` of a label from noise
            seed ``seed + i``.

    Returns:
        ``(rows, generated)``: one :class:`LabelScores` per label then one for "all"; the generated
        sequences by label.

    Raises:
        FileNotFoundError, ValueError: if the run's data or the artifact cannot be loaded, or the artifact's
            labels or frame rate are not the run's.
    """
    heldout = load_training_data(checkpoint.data, checkpoint.config).held_out()
    generator, classifier = checkpoint.build_generator(), checkpoint.build_classifier()
    fps, t_frames = checkpoint.fps, checkpoint.num_frames
    model = None
    if artifact is not None:
        from realtime.model.actions import ActionModel

        model = ActionModel.load(artifact)
        if model.labels != ACTION_LABELS or model.fps != checkpoint.fps:
            raise ValueError(
                f"{artifact}: labels {model.labels} at {model.fps:g} fps; the run has {ACTION_LABELS} at "
                f"{checkpoint.fps:g} fps, so its classifier cannot score it"
            )
    rows: list[LabelScores] = []
    generated: dict[str, np.ndarray] = {}
    gen_all: list[np.ndarray] = []
    for k, label in enumerate(ACTION_LABELS):
        if model is None:
            gen = generate(generator, label, generated_per_label, t_frames, seed)
        else:
            gen = np.stack([model.generate(label, t_frames, seed + i) for i in range(generated_per_label)])
        generated[label] = gen
        gen_all.append(gen)
        real = heldout.subset(heldout.labels == k)
        rows.append(_row(label, classifier, real, gen, np.full(len(gen), k), fps))
    gen_labels = np.repeat(np.arange(len(ACTION_LABELS)), generated_per_label)
    rows.append(_row("all", classifier, heldout, np.concatenate(gen_all), gen_labels, fps))
    # Diversity is a within-label figure: "all" takes the mean of the labels' values (NaN where none has one).
    rows[-1] = dataclasses.replace(
        rows[-1],
        diversity_real=_mean_of_finite([r.diversity_real for r in rows[:-1]]),
        diversity_generated=_mean_of_finite([r.diversity_generated for r in rows[:-1]]),
    )
    return rows, generated


def _mean_of_finite(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _row(
    label: str,
    classifier: ActionClassifier,
    real: LabelledSequences,
    gen: np.ndarray,
    gen_labels: np.ndarray,
    fps: float,
) -> LabelScores:
    speed_r, accel_r = speed_and_acceleration(real.joints, fps)
    speed_g, accel_g = speed_and_acceleration(gen, fps)
    clips = real.subset(~real.synthetic)
    synthetic = real.subset(real.synthetic)
    return LabelScores(
        label=label,
        num_real=len(real.labels),
        num_generated=len(gen),
        accuracy_real=classifier_accuracy(classifier, real.joints, real.labels),
        accuracy_generated=classifier_accuracy(classifier, gen, gen_labels),
        num_clips=len(clips.labels),
        num_synthetic=len(synthetic.labels),
        accuracy_clips=classifier_accuracy(classifier, clips.joints, clips.labels),
        accuracy_synthetic=classifier_accuracy(classifier, synthetic.joints, synthetic.labels),
        diversity_real=diversity(real.joints),
        diversity_generated=diversity(gen),
        speed_real=_median_p95(speed_r),
        speed_generated=_median_p95(speed_g),
        accel_real=_median_p95(accel_r),
        accel_generated=_median_p95(accel_g),
    )


#: The printed table's columns: counts and accuracies of held-out real clips' windows / held-out synthetic
#: sequences / generated ones, then ``real/generated`` pairs (real: every held-out sequence).
TABLE_COLUMNS: tuple[str, ...] = (
    "label", "n clip/synth/gen", "acc clip/synth/gen", "diversity real/gen", "speed p50 real/gen",
    "speed p95 real/gen", "accel p50 real/gen", "accel p95 real/gen",
)  # fmt: skip


def format_table(rows: list[LabelScores]) -> str:
    """The rows as a Markdown table with :data:`TABLE_COLUMNS`; speeds in canvas sides per second,
    accelerations per second squared, diversity in canvas sides; "-" for a figure without sequences."""

    def number(value: float, fmt: str) -> str:
        return f"{value:{fmt}}" if np.isfinite(value) else "-"

    def pair(a: float, b: float, fmt: str) -> str:
        return f"{number(a, fmt)} / {number(b, fmt)}"

    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for r in rows:
        cells = [
            r.label,
            f"{r.num_clips} / {r.num_synthetic} / {r.num_generated}",
            " / ".join(
                number(a, ".2f") for a in (r.accuracy_clips, r.accuracy_synthetic, r.accuracy_generated)
            ),
            pair(r.diversity_real, r.diversity_generated, ".3f"),
            pair(r.speed_real[0], r.speed_generated[0], ".3f"),
            pair(r.speed_real[1], r.speed_generated[1], ".3f"),
            pair(r.accel_real[0], r.accel_generated[0], ".2f"),
            pair(r.accel_real[1], r.accel_generated[1], ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The part of the normalized joint space each figure of a sheet shows: ``(x0, y0, x1, y1)`` in canvas sides
#: (the canonical figure with raised hands, its feet near the bottom).
SHEET_VIEW = (0.1, 0.1, 0.9, 0.9)


def render_sheet(
    generated: dict[str, np.ndarray], path: str | os.PathLike[str], *, frames: int = 6, size_px: int = 128
) -> Path:
    """A PNG sheet: per label a row of stick figures (:func:`realtime.pose.render.rasterize_stick_figure`,
    the reference implementation) of the first generated sequence at ``frames`` evenly spaced times, each
    showing :data:`SHEET_VIEW`, the label written at the row's start.

    Args:
        generated: label -> float ``(N, T, NUM_JOINTS, 2)`` normalized joint space (N >= 1).
        path: the PNG to write (its folder is created).
        frames: figures per row (>= 1); size_px: each figure's square side.

    Returns:
        ``path``.
    """
    from PIL import Image, ImageDraw

    from kernels.rasterize import RenderParams
    from realtime.pose.render import rasterize_stick_figure

    label_w = 80
    sheet = np.zeros((len(generated) * size_px, label_w + frames * size_px, 3), np.uint8)
    params = RenderParams(limb_thickness_px=max(1.0, size_px / 64), joint_radius_px=max(1.0, size_px / 80))
    for row, seq in enumerate(generated.values()):
        times = np.linspace(0, seq.shape[1] - 1, frames).round().astype(int)
        x0, y0, x1, _ = SHEET_VIEW
        poses = torch.from_numpy(
            np.ascontiguousarray((seq[0, times] - (x0, y0)) * size_px / (x1 - x0), np.float32)
        )
        images = rasterize_stick_figure(
            poses, torch.ones(poses.shape[:2]), height=size_px, width=size_px, params=params, impl="ref"
        )
        strip = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        for i in range(frames):
            sheet[
                row * size_px : (row + 1) * size_px, label_w + i * size_px : label_w + (i + 1) * size_px
            ] = strip[i]
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for row, label in enumerate(generated):
        draw.text((6, row * size_px + size_px // 2 - 6), label, fill=(255, 255, 255))
    for i in range(1, frames):
        draw.line([(label_w + i * size_px, 0), (label_w + i * size_px, sheet.shape[0])], fill=(60, 60, 60))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def evaluate_run(
    run: str | os.PathLike[str],
    *,
    generated_per_label: int = 60,
    seed: int = 0,
    sheet: str | os.PathLike[str] | None = None,
    sheet_frames: int = 6,
    artifact: str | os.PathLike[str] | None = None,
) -> tuple[str, list[LabelScores]]:
    """Score a run (:func:`score_run`) and optionally write its sheet (:func:`render_sheet`).

    Args:
        run: the run folder or its ``checkpoint.pt``.
        artifact: an exported ``.onnx`` whose generator is scored instead of the run's (:func:`score_run`).

    Returns:
        ``(table, rows)``: :func:`format_table`'s text and the rows.

    Raises:
        FileNotFoundError, train.checkpoint.CheckpointError, ValueError: for a missing or bad checkpoint or
            data.
    """
    checkpoint = load_actions_checkpoint(run)
    rows, generated = score_run(
        checkpoint, generated_per_label=generated_per_label, seed=seed, artifact=artifact
    )
    if sheet is not None:
        render_sheet(generated, sheet, frames=sheet_frames)
    return format_table(rows), rows


def sample_sequence(
    run: str | os.PathLike[str], label: str, seconds: float, out: str | os.PathLike[str], seed: int = 0
) -> tuple[Path, Path]:
    """Generate one sequence of ``label`` lasting ``seconds`` at the run's frame rate and write it: the poses
    as ``out`` (a ``.npy`` of float32 ``(T, NUM_JOINTS, 2)`` in the normalized joint space) and, beside it,
    ``out`` with the suffix ``.json``: frame rate, label, run, step, the space's canvas side and the
    canonical body's statistics (to draw it on a target with
    :func:`realtime.pose.normalize.global_normalize`).

    Returns:
        the two paths.

    Raises:
        ValueError: for an unknown label or a duration under two frames; FileNotFoundError,
            train.checkpoint.CheckpointError: for a missing or bad checkpoint.
    """
    checkpoint = load_actions_checkpoint(run)
    num_frames = int(round(seconds * checkpoint.fps))
    if num_frames < 2:
        raise ValueError(f"{seconds} s at {checkpoint.fps} fps is under two frames; ask for more seconds")
    joints = generate(checkpoint.build_generator(), label, 1, num_frames, seed)[0]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, joints)
    meta = out.with_suffix(".json")
    meta.write_text(
        json.dumps(
            {
                "fps": checkpoint.fps,
                "label": label,
                "num_frames": num_frames,
                "space": "normalized joint space (train.actions.sequences): canvas sides of a square canvas",
                "canvas_side_px": CANONICAL_CANVAS_PX,
                "canonical_stats": canonical_stats().to_json(),
                "run": str(checkpoint.path),
                "step": checkpoint.step,
                "seed": seed,
            },
            indent=2,
        )
    )
    return out, meta
