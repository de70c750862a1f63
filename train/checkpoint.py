"""Training checkpoints: a plain dict of ``state_dict`` s plus stage, step, resolved config, the prepared
data's metadata and a format version (nanoGPT style), written atomically and loaded strictly.

Each training stage (``global``, ``local``, ``face``; see :mod:`train.fit`) has its own checkpoint, which
holds everything needed to run the model as trained so far. On disk (``torch.save``)::

    format_version   int, CHECKPOINT_FORMAT_VERSION (2; version 1 predates training stages)
    stage            str, "global", "local", "face" or "student"
    step             int, optimizer steps done in this stage
    config           dict, the resolved FitConfig (train.config.config_to_dict)
    data_meta        dict, the prepared dataset's PreparedMeta.to_json() (canvas, rendering, statistics)
    main_generator   str, "global" (the global stage's GlobalGenerator, or MobileGenerator when
                     generator.kind is "mobile") or "local" (LocalEnhancer): the architecture of ``generator``
    main_downscale   int, canvas size / the size ``generator`` was trained at (2 for a global stage that a
                     local stage follows, else 1)
    generator        state_dict of the main generator (trained in the global and local stages, frozen in the
                     face stage)
    face_generator   state_dict of the FaceGenerator (face stage), else None
    discriminator, optimizer_g, optimizer_d   state_dicts of the networks this stage trains (the face
                     generator's and face discriminator's in the face stage)
    elapsed_s        float, this stage's training wall time summed over all invocations, seconds
    target_inputs    dict of float32 (C, H, W) tensors in [0, 1] by name: the main generator's per-target
                     inputs as trained (train.dataset.load_target_inputs); optional (absent: none)
    teacher_stage    str, a student stage's teacher: the stage whose checkpoint in the same run directory it
                     was distilled from (``RUN/TEACHER_STAGE/checkpoint.pt``); None for the other stages;
                     optional (absent: None)

A ``student`` stage's checkpoint is a global stage's in form: its ``config`` is the one the student trained
with (:func:`train.config.student_config`, the student's generator as ``generator``), ``main_generator`` is
"global", so it loads, runs and exports like one; its teacher is :attr:`Checkpoint.teacher_path`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from realtime.model.bundle import TargetBundle, file_sha256, library_versions
from realtime.model.nets import DownscaledGenerator, FaceGenerator, GlobalGenerator
from train.config import STAGES, FitConfig, config_from_dict, config_to_dict
from train.dataset import PreparedMeta
from train.models import MainGenerator, build_face_generator, build_main_generator, generator_inputs

if TYPE_CHECKING:
    from realtime.model.pipeline import Target

CHECKPOINT_FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of this format, or whose weights do not fit the model."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint. State dicts are as saved (tensors on ``map_location``)."""

    path: Path
    format_version: int
    stage: str
    step: int
    config: FitConfig
    data_meta: PreparedMeta
    main_generator: str
    main_downscale: int
    generator: dict[str, Any]
    face_generator: dict[str, Any] | None
    discriminator: dict[str, Any]
    optimizer_g: dict[str, Any]
    optimizer_d: dict[str, Any]
    elapsed_s: float
    target_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    teacher_stage: str | None = None

    @property
    def teacher_path(self) -> Path | None:
        """A student stage's teacher checkpoint, ``RUN/TEACHER_STAGE/checkpoint.pt`` beside this one's stage
        folder (symlinks resolved, so ``RUN/checkpoint.pt`` works too); None for the other stages."""
        if self.teacher_stage is None:
            return None
        return self.path.resolve().parent.parent / self.teacher_stage / self.path.resolve().name


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    stage: str,
    step: int,
    config: FitConfig,
    data_meta: PreparedMeta,
    main_generator: str,
    main_downscale: int,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    elapsed_s: float,
    face_generator: nn.Module | None = None,
    target_inputs: Mapping[str, torch.Tensor] | None = None,
    teacher_stage: str | None = None,
) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same directory, then ``os.replace``, so a
    crash never leaves a half-written ``path``. Creates the parent directory. Returns ``path``.

    ``target_inputs``: the main generator's per-target inputs, float ``(C, H, W)`` in [0, 1] by name (they
    travel with the weights into the exported bundle). ``teacher_stage``: a student stage's teacher stage
    (required for a student stage, None for the others).

    Raises:
        ValueError: for an unknown stage or main generator kind, a face stage without a face generator, or a
            student stage without a teacher stage (or another stage with one).
    """
    if stage not in STAGES or main_generator not in ("global", "local"):
        raise ValueError(f"unknown stage {stage!r} or main generator {main_generator!r}")
    if (stage == "face") != (face_generator is not None):
        raise ValueError("a face-stage checkpoint, and only one, holds a face generator")
    if (stage == "student") != (teacher_stage is not None) or teacher_stage == "student":
        raise ValueError(
            f"a student-stage checkpoint, and only one, names its teacher stage, got {teacher_stage!r}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "stage": stage,
        "step": int(step),
        "config": config_to_dict(config),
        "data_meta": data_meta.to_json(),
        "main_generator": main_generator,
        "main_downscale": int(main_downscale),
        "generator": generator.state_dict(),
        "face_generator": None if face_generator is None else face_generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "optimizer_g": optimizer_g.state_dict(),
        "optimizer_d": optimizer_d.state_dict(),
        "elapsed_s": float(elapsed_s),
        "target_inputs": {
            name: value.detach().to("cpu", torch.float32).contiguous()
            for name, value in (target_inputs or {}).items()
        },
        "teacher_stage": teacher_stage,
    }
    return save_atomic(payload, path)


def save_atomic(data: Any, path: Path) -> Path:
    """``torch.save(data)`` to ``path`` atomically: written to a temporary file beside it, flushed to disk,
    then renamed over it (a crash leaves the old file or the new one, never half of one). Returns ``path``.

    Raises:
        OSError: if the folder cannot be written.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


_KEYS = (
    "format_version",
    "stage",
    "step",
    "config",
    "data_meta",
    "main_generator",
    "main_downscale",
    "generator",
    "face_generator",
    "discriminator",
    "optimizer_g",
    "optimizer_d",
    "elapsed_s",
)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: (a ValueError) if the file is not a checkpoint (corrupt, truncated, another kind of
            file), has another format version, or holds an invalid config or data metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with: python -m train fit DIR --out RUN")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes can raise almost any exception type
        raise CheckpointError(
            f"not a checkpoint: {path} could not be read ({type(error).__name__}: {error}); "
            "it is corrupt or another kind of file: delete it to start over"
        ) from error
    if isinstance(data, dict) and data.get("format_version") == 1:
        raise CheckpointError(
            f"{path} has checkpoint format version 1 (written before training stages existed), this code "
            f"reads {CHECKPOINT_FORMAT_VERSION}; train it again (python -m train fit DATA --out RUN) or use "
            "the code version that wrote it"
        )
    if not isinstance(data, dict) or not all(key in data for key in _KEYS):
        raise CheckpointError(f"not a checkpoint: {path} does not hold the keys {', '.join(_KEYS)}")
    if data["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {data['format_version']}, this code reads "
            f"{CHECKPOINT_FORMAT_VERSION}; use the code version that wrote it"
        )
    try:
        config = config_from_dict(data["config"])
        data_meta = PreparedMeta.from_json(data["data_meta"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: stored config or data metadata is invalid: {error}") from None
    if (
        data["stage"] not in STAGES
        or data["main_generator"] not in ("global", "local")
        or data["main_downscale"] not in (1, 2)
        or (data["stage"] == "face") != (data["face_generator"] is not None)
        or (data["stage"] == "student") != (data.get("teacher_stage") is not None)
    ):
        raise CheckpointError(
            f"{path}: inconsistent stage {data['stage']!r}, main generator {data['main_generator']!r}, "
            f"downscale {data['main_downscale']!r} or face generator; it is damaged: delete it to start over"
        )
    return Checkpoint(
        path=path,
        format_version=data["format_version"],
        stage=data["stage"],
        step=int(data["step"]),
        config=config,
        data_meta=data_meta,
        main_generator=data["main_generator"],
        main_downscale=int(data["main_downscale"]),
        generator=data["generator"],
        face_generator=data["face_generator"],
        discriminator=data["discriminator"],
        optimizer_g=data["optimizer_g"],
        optimizer_d=data["optimizer_d"],
        elapsed_s=float(data["elapsed_s"]),
        target_inputs=dict(data.get("target_inputs") or {}),
        teacher_stage=data.get("teacher_stage"),
    )


def load_weights_strict(model: nn.Module, state_dict: dict[str, Any], *, what: str, expected: object) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with an error that names the config the weights
    were expected to fit.

    Raises:
        CheckpointError: on missing, unexpected or mis-shaped weights.
    """
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"the checkpoint's {what} weights do not fit a model built from {expected}: {error}"
        ) from None


def main_generator_of(checkpoint: Checkpoint) -> MainGenerator:
    """The checkpoint's main generator (as trained: a :class:`GlobalGenerator` or :class:`LocalEnhancer`),
    weights loaded strictly, in train mode on the CPU.

    Raises:
        CheckpointError: if the weights do not fit the architecture the checkpoint's config describes.
    """
    generator = build_main_generator(checkpoint.config, checkpoint.main_generator)
    expected = (
        checkpoint.config.generator if checkpoint.main_generator == "global" else checkpoint.config.local
    )
    load_weights_strict(generator, checkpoint.generator, what="generator", expected=expected)
    return generator


def load_generator(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[MainGenerator | DownscaledGenerator, Checkpoint]:
    """The trained main generator of a checkpoint, ready to run at the canvas size, in eval mode on
    ``map_location``, and the checkpoint itself (for its config and ``data_meta``: canvas, rendering,
    statistics). For the exporter and the PyTorch inference backend.

    A global stage trained at half the canvas (a local stage follows it) comes wrapped in a
    :class:`train.models.DownscaledGenerator`. The face generator, if any, is :func:`load_face_generator`'s.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint` and :func:`load_weights_strict`.
    """
    checkpoint = load_checkpoint(path, map_location)
    return runnable_generator(checkpoint).to(map_location).eval(), checkpoint


def runnable_generator(checkpoint: Checkpoint) -> MainGenerator | DownscaledGenerator:
    """:func:`main_generator_of`, wrapped in :class:`realtime.model.nets.DownscaledGenerator` for a global
    stage trained at half the canvas, so that it runs at the canvas size.

    Raises:
        CheckpointError: as :func:`main_generator_of`, or if the checkpoint lacks one of the generator's
            per-target inputs.
    """
    generator: MainGenerator | DownscaledGenerator = main_generator_of(checkpoint)
    missing = [
        spec.name for spec in generator.inputs.target_values if spec.name not in checkpoint.target_inputs
    ]
    if missing:
        raise CheckpointError(
            f"{checkpoint.path}: the generator takes the per-target inputs {missing} but the checkpoint "
            f"holds {sorted(checkpoint.target_inputs)}; train it again with this code (python -m train.fit)"
        )
    if checkpoint.main_downscale == 2:
        assert isinstance(generator, GlobalGenerator)
        generator = DownscaledGenerator(generator)
    return generator


def load_face_generator(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[FaceGenerator | None, Checkpoint]:
    """The face generator of a face-stage checkpoint (None for other stages), in eval mode on
    ``map_location``, and the checkpoint.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint` and :func:`load_weights_strict`.
    """
    checkpoint = load_checkpoint(path, map_location)
    face = face_generator_of(checkpoint)
    return (None if face is None else face.to(map_location).eval()), checkpoint


def face_generator_of(checkpoint: Checkpoint) -> FaceGenerator | None:
    """The checkpoint's face generator, weights loaded strictly (None before the face stage).

    Raises:
        CheckpointError: if the weights do not fit the face config.
    """
    if checkpoint.face_generator is None:
        return None
    face = build_face_generator(checkpoint.config.face)
    load_weights_strict(
        face, checkpoint.face_generator, what="face generator", expected=checkpoint.config.face
    )
    return face


def face_crop_px(checkpoint: Checkpoint) -> int:
    """Side in canvas pixels of the face crops a checkpoint's face generator was trained on."""
    from realtime.model.face import face_crop_size_px

    return face_crop_size_px(checkpoint.data_meta.face_box_size_px, 2**checkpoint.config.face.n_downsample)


def bundle_for_checkpoint(checkpoint: Checkpoint, name: str, face_model: str | None = None) -> TargetBundle:
    """The sidecar of a checkpoint's generator: canvas, rendering, statistics and pose estimator from its
    prepared data, the generator-input declaration from its config.

    Args:
        checkpoint: the loaded checkpoint.
        name: the target's name.
        face_model: the face model's file name beside the engine (face-stage checkpoints), or None. Its
            ``face_box_size_px`` is then the side of the face crops the face generator was trained on.
    """
    meta = checkpoint.data_meta
    generator = runnable_generator(checkpoint)
    return TargetBundle(
        name=name,
        canvas_width=meta.canvas_width,
        canvas_height=meta.canvas_height,
        render=meta.render,
        stats=meta.stats,
        face_box_size_px=float(face_crop_px(checkpoint)) if face_model is not None else meta.face_box_size_px,
        face_model=face_model,
        generator_inputs=generator.inputs,
        pose_estimator=meta.pose_estimator,
        checkpoint_sha256=file_sha256(checkpoint.path),
        checkpoint_step=checkpoint.step,
        versions=library_versions(),
    )


def target_from_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Target:
    """A training checkpoint run in memory as a :class:`realtime.model.pipeline.Target` (PyTorch backend),
    with its face generator when it has one: for evaluating runs without exporting them first.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint`.
    """
    from realtime.model.backends import TorchBackend
    from realtime.model.face import FaceRefiner
    from realtime.model.pipeline import Target

    checkpoint = load_checkpoint(path)
    face = face_generator_of(checkpoint)
    bundle = bundle_for_checkpoint(
        checkpoint, Path(path).parent.name or Path(path).stem, Path(path).name if face is not None else None
    )
    refiner = None
    if face is not None:
        refiner = FaceRefiner(
            TorchBackend.from_module(face, device),
            int(bundle.face_box_size_px),
            bundle.render.confidence_threshold,
        )
    backend = TorchBackend.from_module(runnable_generator(checkpoint), device)
    return Target(backend, bundle, Path(path), refiner, target_inputs_of(checkpoint))


def target_inputs_of(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """The per-target values of a checkpoint's main generator by name (only those its generator takes): its
    ``per_target`` inputs, float32 ``(C, H, W)`` in [0, 1], and its target data, float32 ``(C, ...)``."""
    spec = generator_inputs(checkpoint.config.generator)
    return {item.name: checkpoint.target_inputs[item.name] for item in spec.target_values}


def load_target(path: str | os.PathLike[str], model: str = "auto") -> Target:
    """An engine with its sidecar (:meth:`realtime.model.pipeline.Target.load`, which chooses between a
    bundle's teacher and student by ``model``), or a training checkpoint without one
    (:func:`target_from_checkpoint`): a student stage's checkpoint is the student, its teacher's
    (:attr:`Checkpoint.teacher_path`) the teacher; ``model`` "auto" takes the checkpoint itself. The
    target's ``role`` says which ("only" for a checkpoint of another stage).

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as those two; ValueError also for "student" asked of a
            checkpoint that is not a student's, or an unknown ``model``.
    """
    from realtime.catalog import MODEL_CHOICES
    from realtime.model.bundle import sidecar_path
    from realtime.model.pipeline import Target

    path = Path(path)
    if not (path.suffix == ".pt" and not sidecar_path(path).is_file()):
        return Target.load(path, model=model)
    if model not in MODEL_CHOICES:
        raise ValueError(f"model must be one of {MODEL_CHOICES}, got {model!r}")
    checkpoint = load_checkpoint(path)
    if checkpoint.stage != "student":
        if model == "student":
            raise ValueError(f"{path} is a {checkpoint.stage} stage's checkpoint, not a real-time student's")
        return target_from_checkpoint(path)
    teacher = checkpoint.teacher_path
    if model == "teacher" and teacher is not None:
        target = target_from_checkpoint(teacher)
        target.role = "teacher"
        return target
    target = target_from_checkpoint(path)
    target.role = "student"
    return target
