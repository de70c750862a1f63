"""Export a training checkpoint's generators to ONNX, verified: ``python -m export onnx CHECKPOINT OUT.onnx``
(:mod:`export.cli`).

Writes ``OUT.onnx`` (the main generator as trained so far: the global generator, or global + local enhancer,
at the canvas size), ``OUT.pt`` (the same generator as inference weights: architecture spec + state dict, for
the PyTorch backend; :func:`realtime.model.nets.save_weights`), for a face-stage checkpoint also
``OUT.face.onnx`` and ``OUT.face.pt`` (the face residual generator; the sidecar's ``face_model`` names the
``.onnx``), for a generator with ``per_target`` inputs ``OUT.target_inputs.npz`` (the checkpoint's, named and
hashed in the sidecar: graph inputs like the others), and the sidecar ``OUT.json`` (docs/architecture.md,
"Target bundle"). A ``student`` stage's checkpoint (``train fit``'s default last stage) exports both models
of the run into one bundle: its teacher (the checkpoint it was distilled from, ``Checkpoint.teacher_path``)
as ``OUT.onnx`` etc. as above, and the student as ``OUT.student.onnx`` and ``OUT.student.pt``, named in the
one sidecar's ``student`` entry. Graph inputs and output are named by the generator-input declaration
(:mod:`realtime.model.inputs`). Each graph is run by ONNX Runtime and PyTorch on the same random inputs; the
export fails, writing nothing, if they differ by more than :data:`realtime.catalog.ONNX_VS_TORCH_ATOL`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from realtime.catalog import ONNX_VS_TORCH_ATOL
from realtime.model.bundle import StudentModel, TargetBundle, file_sha256, write_bundle, write_target_inputs
from realtime.model.inputs import GeneratorInputs
from realtime.model.nets import save_weights

if TYPE_CHECKING:
    from export.tune import TuneReport
    from train.checkpoint import Checkpoint

log = logging.getLogger(__name__)

ONNX_OPSET = 17
#: Batch sizes of the random inputs compared during verification (the batch axis is dynamic).
VERIFY_BATCH_SIZES = (1, 2)


class ExportError(RuntimeError):
    """An export that failed or did not verify."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured (``max_abs_error``: ONNX Runtime vs PyTorch, main
    generator; ``face_*``: the face model's, None without a face stage)."""

    onnx_path: Path
    sidecar_path: Path
    max_abs_error: float
    bundle: TargetBundle
    face_onnx_path: Path | None = None
    face_max_abs_error: float | None = None
    student_onnx_path: Path | None = None
    student_max_abs_error: float | None = None
    tuning: TuneReport | None = None


def face_model_path(out: str | os.PathLike[str]) -> Path:
    """``NAME.face.onnx`` beside ``NAME.onnx``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.face.onnx")


def export_onnx(
    checkpoint_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    atol: float = ONNX_VS_TORCH_ATOL,
    seed: int = 0,
    tune: bool = True,
) -> ExportReport:
    """Export, write the sidecar, and verify against PyTorch. A student checkpoint exports its teacher too
    (see the module's docstring), and with ``tune`` the student's ONNX Runtime threads and precision are
    chosen by timing it on this CPU (:mod:`export.tune`) and recorded in the sidecar.

    The main graph takes the declared generator inputs (Everybody Dance Now's: ``stick_figure`` and
    ``previous_frame``) and returns ``frame``, each float32 ``(batch, C, H, W)`` in [0, 1]. The face graph
    (face-stage checkpoints) takes ``face_stick_figure`` and ``face_frame``, float32 ``(batch, 3, S, S)`` in
    [0, 1] (S = the sidecar's ``face_box_size_px``), and returns ``face_residual`` in [-1, 1] (see
    :mod:`realtime.model.face`). Batch axes are dynamic. Inference weights ``OUT.pt`` (and ``OUT.face.pt``)
    are written beside them.

    Raises:
        train.checkpoint.CheckpointError: for an unreadable checkpoint.
        ExportError: if an export fails or ONNX Runtime differs from PyTorch by more than ``atol``.
    """
    from train.checkpoint import (
        bundle_for_checkpoint,
        face_generator_of,
        load_checkpoint,
        runnable_generator,
        target_inputs_of,
    )

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output must end in .onnx, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint.stage == "student":
        return _export_with_student(checkpoint, out, name=name, atol=atol, seed=seed, tune=tune)
    generator = runnable_generator(checkpoint).eval()
    face = face_generator_of(checkpoint)
    face_out = face_model_path(out) if face is not None else None
    bundle = bundle_for_checkpoint(checkpoint, name or out.stem, None if face_out is None else face_out.name)
    canvas = (bundle.canvas_height, bundle.canvas_width)
    main_tmp, main_error = _export_verified(
        generator, generator.inputs, canvas, out, f"ONNX export of {checkpoint_path}", atol, seed
    )
    face_error = None
    if face is not None and face_out is not None:
        size = int(bundle.face_box_size_px)
        try:
            face_tmp, face_error = _export_verified(
                face.eval(), face.inputs, (size, size), face_out,
                f"ONNX export of the face generator of {checkpoint_path}", atol, seed,
            )  # fmt: skip
        except ExportError:
            main_tmp.unlink(missing_ok=True)
            raise
        os.replace(face_tmp, face_out)
        save_weights(face_out.with_suffix(".pt"), face)
        log.info("exported %s (max |onnxruntime - torch| = %.3g)", face_out, face_error)
    os.replace(main_tmp, out)
    save_weights(out.with_suffix(".pt"), generator)
    per_target = target_inputs_of(checkpoint)
    if per_target:
        entry = write_target_inputs(
            out, {name: value.numpy() for name, value in per_target.items()}, bundle.generator_inputs
        )
        bundle = dataclasses.replace(bundle, target_inputs=entry)
    sidecar = write_bundle(out, bundle)
    log.info("exported %s and %s (max |onnxruntime - torch| = %.3g)", out, out.with_suffix(".pt"), main_error)
    return ExportReport(out, sidecar, main_error, bundle, face_out, face_error)


def student_model_path(out: str | os.PathLike[str]) -> Path:
    """``NAME.student.onnx`` beside ``NAME.onnx``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.student.onnx")


def _export_with_student(
    checkpoint: Checkpoint, out: Path, *, name: str | None, atol: float, seed: int, tune: bool
) -> ExportReport:
    """A student checkpoint's bundle: the student verified first (nothing is written if it fails), then its
    teacher exported as :func:`export_onnx` does, then the student moved into place and named in the sidecar.

    Raises:
        ExportError: if the teacher's checkpoint is missing, the student takes a per-target value its teacher
            does not, or either export fails to verify.
    """
    from train.checkpoint import runnable_generator

    teacher_path = checkpoint.teacher_path
    if teacher_path is None or not teacher_path.is_file():
        raise ExportError(
            f"{checkpoint.path} is a student distilled from {teacher_path}, which is missing; export needs "
            "both (keep the run directory whole)"
        )
    student = runnable_generator(checkpoint).eval()
    student_out = student_model_path(out)
    canvas = (checkpoint.data_meta.canvas_height, checkpoint.data_meta.canvas_width)
    student_tmp, student_error = _export_verified(
        student,
        student.inputs,
        canvas,
        student_out,
        f"ONNX export of the student {checkpoint.path}",
        atol,
        seed,
    )
    try:
        report = export_onnx(teacher_path, out, name=name, atol=atol, seed=seed, tune=False)
    except BaseException:
        student_tmp.unlink(missing_ok=True)
        raise
    os.replace(student_tmp, student_out)
    save_weights(student_out.with_suffix(".pt"), student)
    entry = StudentModel(student_out.name, student.inputs, file_sha256(checkpoint.path), checkpoint.step)
    bundle = dataclasses.replace(report.bundle, student=entry)
    try:
        bundle.for_student()
    except ValueError as error:
        raise ExportError(str(error)) from error
    write_bundle(out, bundle)
    log.info("exported the student %s (max |onnxruntime - torch| = %.3g)", student_out, student_error)
    tuning = None
    if tune:
        bundle, tuning = _tune_student(out, bundle)
    return dataclasses.replace(
        report,
        bundle=bundle,
        student_onnx_path=student_out,
        student_max_abs_error=student_error,
        tuning=tuning,
    )


def _tune_student(out: Path, bundle: TargetBundle) -> tuple[TargetBundle, TuneReport]:
    """Time the exported student on this CPU (:func:`export.tune.tune_cpu_engine`) and record the chosen
    threads and precision in the sidecar."""
    from export.tune import tune_cpu_engine
    from realtime.model.pipeline import Target

    assert bundle.student is not None
    target = Target.load(out, device="cpu", model="student", threads=1)
    tuning = tune_cpu_engine(target, student_model_path(out))
    chosen = tuning.chosen
    file = tuning.int8_path.name if tuning.int8_path is not None else bundle.student.file
    student = dataclasses.replace(
        bundle.student, file=file, cpu_threads=chosen.threads, precision=chosen.precision
    )
    bundle = dataclasses.replace(bundle, student=student)
    write_bundle(out, bundle)
    log.info("the student on this CPU: %d thread(s), %s (measured)", chosen.threads, chosen.precision)
    return bundle, tuning


def _export_verified(
    model: torch.nn.Module,
    spec: GeneratorInputs,
    size_hw: tuple[int, int],
    out: Path,
    what: str,
    atol: float,
    seed: int,
) -> tuple[Path, float]:
    """Export ``model`` (the inputs of ``spec``, ``(batch, C_i, *size_hw)``, named as declared) to ``out`` +
    ``.tmp``, check the graph, and compare ONNX Runtime with PyTorch on random inputs of
    :data:`VERIFY_BATCH_SIZES`.

    Returns:
        the temporary file (the caller moves it into place) and the maximum absolute difference.

    Raises:
        ExportError: if the export fails or the difference exceeds ``atol`` (the temporary file is removed).
    """
    import onnx
    import onnxruntime as ort

    model.eval()
    input_names, output_name = list(spec.names), spec.output.name
    shapes = [(item.channels, *size_hw) for item in spec.inputs]
    example = tuple(torch.rand((1, *shape)) for shape in shapes)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with warnings.catch_warnings():
            # The TorchScript-based exporter (dynamo=False) is deprecated but present in the pinned torch and
            # needs no onnxscript; its constant-folding and tracer notes are expected. The export is verified
            # against PyTorch below either way.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                example,
                str(tmp),
                input_names=input_names,
                output_names=[output_name],
                dynamic_axes={n: {0: "batch"} for n in (*input_names, output_name)},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # the exporter raises many unrelated types; report them all the same way
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{what} failed: {exc}") from exc

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    rng = torch.Generator().manual_seed(seed)
    max_error = 0.0
    for batch in VERIFY_BATCH_SIZES:
        inputs = [torch.rand((batch, *shape), generator=rng) for shape in shapes]
        with torch.inference_mode():
            expected = model(*inputs).numpy()
        (got,) = session.run([output_name], {n: x.numpy() for n, x in zip(input_names, inputs, strict=True)})
        max_error = max(max_error, float(np.abs(got - expected).max()))
    if not max_error <= atol:
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"{what}: ONNX Runtime differs from PyTorch by {max_error:.3g} > {atol:.3g}; nothing written"
        )
    return tmp, max_error
