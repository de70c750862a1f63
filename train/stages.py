"""The three training stages: their networks, how each starts from the previous one, and one step's losses.

- ``global``: pix2pixHD's global generator G1 with Everybody Dance Now's temporal conditioning (Chan et al.,
  ICCV 2019, Sec. 3.2), at the canvas size, or at half of it when a ``local`` stage follows.
- ``local``: pix2pixHD's local enhancer G2 around G1 (Wang et al., CVPR 2018, Sec. 3.2) at the full canvas;
  G1 and the discriminator start from the finished global stage, G2 from scratch.
- ``face``: Everybody Dance Now's face GAN (Sec. 3.3): the main generator is frozen; a face generator turns
  the face crops of the stick figure and of the generated frame into a residual added to the crop, judged by
  its own discriminator on (stick crop, face crop) pairs.

Every stage keeps the two-step temporal unroll: ``gen_prev = G(stick_prev, 0)``, ``gen = G(stick, gen_prev)``
(the face stage runs it with the frozen main generator and refines both frames' faces).

With ``distill.teacher`` set, the global and local stages add an L1 between the trained generator's frames
and those of a trained target model (the :class:`Teacher`, any engine the backends open), run on the same
declared inputs in the same unroll (GAN Compression's output distillation, Li et al., CVPR 2020, Sec. 3.1).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from realtime.catalog import ONNX_SUFFIX
from realtime.model.face import crop_squares, face_crop_origin, face_crop_size_px, paste_squares
from realtime.model.inputs import GeneratorInputs, InputRole, assemble_inputs
from realtime.model.pipeline import Target
from train.checkpoint import Checkpoint, load_weights_strict
from train.config import FitConfig
from train.losses import feature_matching_loss, l1_loss, lsgan_loss, pose_mask_l1_loss
from train.models import (
    FaceGenerator,
    MainGenerator,
    MultiscaleDiscriminator,
    build_discriminator,
    build_face_discriminator,
    build_face_generator,
    build_generator,
    build_local_enhancer,
    build_main_generator,
    downsample_half,
    generator_inputs,
)
from train.vgg import VGGPerceptualLoss


@dataclass
class StageModels:
    """The networks of one stage.

    Attributes:
        stage: "global", "local" or "face".
        main: the main generator (trained in the global and local stages, frozen in the face stage).
        main_kind: "global" or "local", ``main``'s architecture.
        main_downscale: canvas size / ``main``'s working size (2 for a global stage before a local one).
        discriminator: the discriminator this stage trains (the face discriminator in the face stage).
        face: the face generator (face stage only).
        face_crop_px: side of the face crops (face stage only, else 0).
    """

    stage: str
    main: MainGenerator
    main_kind: str
    main_downscale: int
    discriminator: MultiscaleDiscriminator
    face: FaceGenerator | None = None
    face_crop_px: int = 0

    @property
    def trained_generator(self) -> nn.Module:
        """The generator this stage optimizes."""
        return self.face if self.face is not None else self.main

    def to(self, device: torch.device) -> StageModels:
        self.main.to(device)
        self.discriminator.to(device)
        if self.face is not None:
            self.face.to(device)
        return self


class StageError(ValueError):
    """A run directory whose stages do not fit together (e.g. stages changed between invocations)."""


def build_stage_models(
    stage: str,
    config: FitConfig,
    *,
    previous: Checkpoint | None,
    existing: Checkpoint | None,
    face_box_px: float,
) -> StageModels:
    """The networks of ``stage``: resumed from ``existing`` (this stage's checkpoint) if given, else started
    from ``previous`` (the finished previous stage's checkpoint; None for the global stage). The ``student``
    stage's networks are new (``config`` is then the student's, :func:`train.config.student_config`).

    Args:
        face_box_px: the prepared data's ``face_box_size_px`` (face crops are this rounded up to a multiple of
            ``2**face.n_downsample``).

    Raises:
        StageError: if the stages of the run directory do not fit the config (see the message).
        train.checkpoint.CheckpointError: if stored weights do not fit the configured networks.
    """
    temporal = config.generator.temporal
    if stage in ("global", "student"):  # the student: a new global-stage model (train.config.student_config)
        main: MainGenerator = build_generator(config.generator)
        discriminator = build_discriminator(config.discriminator, temporal=temporal)
        downscale = config.global_downscale
        if existing is not None:
            if existing.main_downscale != downscale:
                raise StageError(_downscale_message(existing, downscale))
            _load_main(main, discriminator, existing, config)
        return StageModels(stage, main, "global", downscale, discriminator)
    if stage == "local":
        main = build_local_enhancer(config)
        discriminator = build_discriminator(config.discriminator, temporal=temporal)
        if existing is not None:
            _load_main(main, discriminator, existing, config)
        else:
            assert previous is not None and previous.stage == "global"
            if previous.main_downscale != 2:
                raise StageError(
                    f"{previous.path} was trained at the full canvas (no local stage was planned then), but "
                    "the local stage runs the global generator at half the canvas; train into a new --out "
                    "with stages=[global,local,...]"
                )
            try:
                main.load_global(previous.generator)
            except ValueError as error:
                raise StageError(f"{previous.path}: {error}") from None
            load_weights_strict(
                discriminator, previous.discriminator, what="discriminator", expected=config.discriminator
            )
        return StageModels("local", main, "local", 1, discriminator)
    if stage == "face":
        source = existing if existing is not None else previous
        assert source is not None
        if source.main_downscale != 1:
            raise StageError(
                f"{source.path} holds a generator trained at half the canvas; the face stage needs a "
                "full-canvas main generator (add the local stage, or train into a new --out)"
            )
        main = build_main_generator(config, source.main_generator)
        expected = config.generator if source.main_generator == "global" else config.local
        load_weights_strict(main, source.generator, what="generator", expected=expected)
        main.requires_grad_(False).eval()
        face = build_face_generator(config.face)
        discriminator = build_face_discriminator(config.face)
        if existing is not None:
            assert existing.face_generator is not None
            load_weights_strict(face, existing.face_generator, what="face generator", expected=config.face)
            load_weights_strict(
                discriminator, existing.discriminator, what="face discriminator", expected=config.face
            )
        crop = face_crop_size_px(face_box_px, face.size_multiple_px)
        return StageModels("face", main, source.main_generator, 1, discriminator, face, crop)
    raise ValueError(f"unknown stage {stage!r}")


def check_stage_fits(stage: str, config: FitConfig, checkpoint: Checkpoint) -> None:
    """Check that a finished stage's checkpoint fits ``config``'s stages: a global stage trained at the size
    these stages train it at (half the canvas exactly when a local stage follows).

    Raises:
        StageError: if it does not.
    """
    if stage == "global" and checkpoint.main_downscale != config.global_downscale:
        raise StageError(_downscale_message(checkpoint, config.global_downscale))


def _load_main(main: nn.Module, discriminator: nn.Module, checkpoint: Checkpoint, config: FitConfig) -> None:
    expected = config.generator if checkpoint.main_generator == "global" else config.local
    load_weights_strict(main, checkpoint.generator, what="generator", expected=expected)
    load_weights_strict(
        discriminator, checkpoint.discriminator, what="discriminator", expected=config.discriminator
    )


def _downscale_message(checkpoint: Checkpoint, downscale: int) -> str:
    sizes = {1: "the full canvas", 2: "half the canvas"}
    return (
        f"{checkpoint.path} was trained at {sizes[checkpoint.main_downscale]}, but with these stages the "
        f"global stage trains at {sizes[downscale]} (half exactly when a local stage follows); keep the "
        "stages it was trained with or train into a new --out"
    )


def prepare_batch(batch: dict[str, Tensor], device: torch.device, downscale: int) -> dict[str, Tensor]:
    """Move a batch to ``device`` and, for a stage at half the canvas, downsample its images with
    :func:`train.models.downsample_half` (as the local enhancer feeds its global generator). Face centers
    stay in canvas pixels."""
    out = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    if downscale == 2:
        for key, value in out.items():
            if value.dim() == 4:  # every image entry: generator inputs, frames, masks
                out[key] = downsample_half(value)
    return out


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` do not require grad inside (gradients flow through it, none accumulate)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


@dataclass
class StepLosses:
    """One step's losses: the generator's and discriminator's totals (with graphs) and scalars to log."""

    generator: Tensor
    discriminator: Tensor
    logged: dict[str, Tensor]


def _unroll(
    generator: Callable[..., Tensor],
    batch: dict[str, Tensor],
    spec: GeneratorInputs,
    per_target: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor | None, Tensor]:
    """Everybody Dance Now's two-step unroll over the generator's declared inputs
    (:func:`realtime.model.inputs.assemble_inputs`): frame ``t - 1`` from its per-frame inputs
    (``NAME_prev``) and zeros for the state inputs, then frame ``t`` from its own and that output; or one
    frame for a generator without a state input. Per-target inputs come from the batch (``NAME``), or from
    ``per_target`` (``(1, C, H, W)``, broadcast over the batch: a teacher's own)."""
    targets = (
        per_target
        if per_target is not None
        else {item.name: batch[item.name] for item in spec.with_role(InputRole.PER_TARGET)}
    )

    def feed(suffix: str, state: Tensor | None) -> list[Tensor]:
        zeros = torch.zeros_like(batch["frame" + suffix]) if state is None else state
        frame = {item.name: batch[item.name + suffix] for item in spec.with_role(InputRole.PER_FRAME)}
        return list(assemble_inputs(spec, frame, zeros, targets).values())

    if not spec.temporal:
        return None, generator(*feed("", None))
    gen_prev = generator(*feed("_prev", None))
    return gen_prev, generator(*feed("", gen_prev))


class Teacher:
    """A trained target model that the generator being trained learns from (distillation): any engine
    :meth:`realtime.model.pipeline.Target.load` opens (``.onnx`` through ONNX Runtime, ``.pt`` inference
    weights) with its sidecar, run without gradients on a batch's declared inputs.

    The teacher runs on its own declared inputs: its per-frame inputs come from the batch (the student must
    declare them too), its state input (the previous frame) from its own unroll, its per-target inputs from
    its own bundle (:attr:`realtime.model.pipeline.Target.per_target`). So a temporal teacher can
    teach a generator without the previous frame (the teacher's frame ``t`` after its two-step unroll);
    a temporal student needs a temporal teacher.

    Args:
        target: the loaded teacher (its face model, if any, is not used: the teacher's main generator only).
        inputs: the declared inputs of the generator being trained.
        canvas_hw: ``(H, W)`` the trained generator works at; the teacher's canvas must be this.

    Raises:
        ValueError: if the teacher takes a per-frame input the student does not, is not temporal for a
            temporal student, or its output channels or canvas differ from the student's.
    """

    def __init__(self, target: Target, inputs: GeneratorInputs, canvas_hw: tuple[int, int]) -> None:
        declared = target.bundle.generator_inputs
        per_frame = {item.name for item in declared.with_role(InputRole.PER_FRAME)}
        if (
            not per_frame <= set(inputs.names)
            or (inputs.temporal and not declared.temporal)
            or declared.output.channels != inputs.output.channels
        ):
            raise ValueError(
                f"the teacher {target.path} takes {list(declared.names)} -> {declared.output.channels} "
                f"channels, the generator being trained {list(inputs.names)} -> {inputs.output.channels}; "
                "distill from a teacher whose per-frame inputs the student takes too (and a temporal one for "
                "a temporal student)"
            )
        teacher_hw = (target.bundle.canvas_height, target.bundle.canvas_width)
        if teacher_hw != tuple(canvas_hw):
            raise ValueError(
                f"the teacher {target.path} runs at {teacher_hw[0]}x{teacher_hw[1]} (HxW) but the generator "
                f"is trained at {canvas_hw[0]}x{canvas_hw[1]}; distill at the teacher's canvas"
            )
        self.target = target
        self.inputs = declared

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        inputs: GeneratorInputs,
        canvas_hw: tuple[int, int],
        threads: int = 1,
    ) -> Teacher:
        """Open the engine at ``path`` with :meth:`realtime.model.pipeline.Target.load` (``threads`` intra-op
        threads for ONNX Runtime; 0 = all cores).

        Raises:
            FileNotFoundError, ValueError, RuntimeError: as :meth:`realtime.model.pipeline.Target.load`, and
                ValueError as the constructor.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"distill.teacher: no engine file at {path}")
        options: dict[str, Any] = {"threads": threads} if path.suffix.lower() == ONNX_SUFFIX else {}
        return cls(Target.load(path, **options), inputs, canvas_hw)

    def __call__(self, *tensors: Tensor) -> Tensor:
        """The teacher's frame for its declared inputs in its order, each float32
        ``(B, C_i, H, W)`` in [0, 1] on any device: float32 ``(B, 3, H, W)`` in [0, 1] on that device, a
        fresh tensor without gradient."""
        device = tensors[0].device
        named = {
            item.name: t.detach().to(self.target.device, torch.float32).contiguous()
            for item, t in zip(self.inputs.inputs, tensors, strict=True)
        }
        return self.target.generate(named).to(device).clone()

    @torch.no_grad()
    def unroll(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Tensor]:
        """The teacher's frames of a batch in Everybody Dance Now's two-step unroll (its own previous output
        feeding its state input): ``(frame t - 1 or None for a generator without state, frame t)``."""
        return _unroll(self, batch, self.inputs, self.target.per_target)


def _adversarial(
    discriminator: nn.Module, discriminator_raw: nn.Module, real: Tensor, fake: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """LSGAN and feature matching: ``(loss_d, loss_d_real, loss_d_fake, loss_g_gan, loss_g_fm)``.

    ``discriminator`` may be DDP-wrapped (it runs the discriminator's own passes); ``discriminator_raw`` is
    the bare module, run frozen for the generator's pass so that no gradient reaches (or syncs) its
    parameters then."""
    pred_real = discriminator(real)
    pred_fake_detached = discriminator(fake.detach())
    loss_d_real = lsgan_loss(pred_real, target_is_real=True)
    loss_d_fake = lsgan_loss(pred_fake_detached, target_is_real=False)
    with frozen(discriminator_raw):
        pred_fake = discriminator_raw(fake)
    loss_g_gan = lsgan_loss(pred_fake, target_is_real=True)
    loss_g_fm = feature_matching_loss(pred_fake, pred_real)
    return 0.5 * (loss_d_real + loss_d_fake), loss_d_real, loss_d_fake, loss_g_gan, loss_g_fm


def main_stage_losses(
    generator: nn.Module,
    discriminator: nn.Module,
    discriminator_raw: nn.Module,
    batch: dict[str, Tensor],
    config: FitConfig,
    vgg: VGGPerceptualLoss | None,
    teacher: Teacher | None = None,
) -> StepLosses:
    """One step of the global or local stage (pix2pixHD's objective with Everybody Dance Now's temporal
    discriminator): D judges ``concat(stick_prev, stick, frame_prev, frame)`` against the generated pair;
    G minimizes LSGAN + ``lambda_feature_matching`` x feature matching + ``lambda_vgg`` x VGG (when loaded)
    + ``lambda_pose_mask_l1`` x PG2's pose-mask L1 + ``lambda_l1`` x L1 + ``distill.lambda_l1`` x the L1 to
    the ``teacher``'s frames (when given), the image terms summed over both unrolled frames, + for a
    compositing generator ``lambda_alpha_mask`` x the L1 between frame ``t``'s alpha and its person mask."""
    gen_prev, gen = _unroll(generator, batch, generator_inputs(config.generator))
    stick, frame, mask = batch["stick_figure"], batch["frame"], batch["mask"]
    if gen_prev is not None:
        stick_prev = batch["stick_figure_prev"]
        real = torch.cat([stick_prev, stick, batch["frame_prev"], frame], dim=1)
        fake = torch.cat([stick_prev, stick, gen_prev, gen], dim=1)
        generated = torch.cat([gen_prev, gen])
        targets = torch.cat([batch["frame_prev"], frame])
        masks = torch.cat([batch["mask_prev"], mask])
        frames_per_item = 2.0
    else:
        real, fake = torch.cat([stick, frame], dim=1), torch.cat([stick, gen], dim=1)
        generated, targets, masks, frames_per_item = gen, frame, mask, 1.0
    loss_d, loss_d_real, loss_d_fake, loss_g_gan, loss_g_fm = _adversarial(
        discriminator, discriminator_raw, real, fake
    )
    weights = config.loss
    # Image terms: a sum over the unrolled frames (each term is a per-frame mean).
    loss_l1 = frames_per_item * l1_loss(generated, targets)
    loss_mask = frames_per_item * pose_mask_l1_loss(generated, targets, masks)
    loss_g = loss_g_gan + weights.lambda_feature_matching * loss_g_fm + weights.lambda_l1 * loss_l1
    loss_g = loss_g + weights.lambda_pose_mask_l1 * loss_mask
    logged = {
        "loss_g_gan": loss_g_gan, "loss_g_feature_matching": loss_g_fm, "loss_g_l1": loss_l1,
        "loss_g_pose_mask_l1": loss_mask,
    }  # fmt: skip
    if vgg is not None:
        loss_vgg = frames_per_item * vgg(generated, targets)
        loss_g = loss_g + weights.lambda_vgg * loss_vgg
        logged["loss_g_vgg"] = loss_vgg
    alpha = getattr(getattr(generator, "module", generator), "last_alpha", None)  # frame t's (DDP: .module)
    if weights.lambda_alpha_mask > 0 and alpha is not None:
        loss_alpha = l1_loss(alpha, mask)
        loss_g = loss_g + weights.lambda_alpha_mask * loss_alpha
        logged["loss_g_alpha_mask"] = loss_alpha
    if teacher is not None:
        teacher_prev, teacher_gen = teacher.unroll(batch)
        if gen_prev is None:
            taught = teacher_gen
        else:
            assert teacher_prev is not None  # a temporal student has a temporal teacher (Teacher checks)
            taught = torch.cat([teacher_prev, teacher_gen])
        loss_distill = frames_per_item * l1_loss(generated, taught)
        loss_g = loss_g + config.distill.lambda_l1 * loss_distill
        logged["loss_g_distill_l1"] = loss_distill
    logged.update(loss_g=loss_g, loss_d=loss_d, loss_d_real=loss_d_real, loss_d_fake=loss_d_fake)
    return StepLosses(loss_g, loss_d, logged)


def _face_origins(centers: Tensor, size_px: int) -> list[tuple[int, int]]:
    """The crop origin (:func:`realtime.model.face.face_crop_origin`) of each float ``(B, 2)`` face center."""
    return [face_crop_origin(cx, cy, size_px) for cx, cy in centers.tolist()]


def crop_faces(images: Tensor, centers: Tensor, size_px: int) -> Tensor:
    """Square face crops of a batch, zeros where a crop leaves the canvas (the run time's crop,
    :func:`realtime.model.face.crop_squares`).

    Args:
        images: ``(B, C, H, W)``.
        centers: float ``(B, 2)`` face centers x, y in pixels of ``images`` (finite).
        size_px: crop side.

    Returns:
        ``(B, C, size_px, size_px)``; crop ``b`` starts at :func:`realtime.model.face.face_crop_origin`.
    """
    return crop_squares(images, _face_origins(centers, size_px), size_px)


def paste_faces(images: Tensor, crops: Tensor, centers: Tensor) -> Tensor:
    """``images`` with the on-canvas part of each crop put back where :func:`crop_faces` took it
    (:func:`realtime.model.face.paste_squares`)."""
    return paste_squares(images, crops, _face_origins(centers, crops.shape[-1]))


def face_stage_losses(
    models: StageModels,
    face: nn.Module,
    discriminator: nn.Module,
    discriminator_raw: nn.Module,
    batch: dict[str, Tensor],
    config: FitConfig,
    vgg: VGGPerceptualLoss | None,
) -> StepLosses:
    """One step of the face stage (Everybody Dance Now, Sec. 3.3, Eq. 5): the frozen main generator runs the
    two-step unroll; for both frames, the face generator ``face`` (maybe DDP-wrapped) refines the face crop,
    D judges ``concat(stick crop, real crop)`` against ``concat(stick crop, refined crop)``; G minimizes
    LSGAN + ``face.lambda_feature_matching`` x feature matching + ``face.lambda_l1`` x L1 (+ ``lambda_vgg``
    x VGG on the crops when loaded)."""
    size = models.face_crop_px
    with torch.no_grad():
        gen_prev, gen = _unroll(models.main, batch, generator_inputs(config.generator))
    if gen_prev is None:  # non-temporal: refine frame t only
        sticks, generated, frames, centers = batch["stick_figure"], gen, batch["frame"], batch["face_center"]
    else:
        sticks = torch.cat([batch["stick_figure_prev"], batch["stick_figure"]])
        generated = torch.cat([gen_prev, gen])
        frames = torch.cat([batch["frame_prev"], batch["frame"]])
        centers = torch.cat([batch["face_center_prev"], batch["face_center"]])
    stick_crops = crop_faces(sticks, centers, size)
    generated_crops = crop_faces(generated, centers, size)
    real_crops = crop_faces(frames, centers, size)
    refined = (generated_crops + face(stick_crops, generated_crops)).clamp(0.0, 1.0)
    real = torch.cat([stick_crops, real_crops], dim=1)
    fake = torch.cat([stick_crops, refined], dim=1)
    loss_d, loss_d_real, loss_d_fake, loss_g_gan, loss_g_fm = _adversarial(
        discriminator, discriminator_raw, real, fake
    )
    loss_l1 = l1_loss(refined, real_crops)
    loss_g = loss_g_gan + config.face.lambda_feature_matching * loss_g_fm + config.face.lambda_l1 * loss_l1
    logged = {"loss_g_gan": loss_g_gan, "loss_g_feature_matching": loss_g_fm, "loss_g_face_l1": loss_l1}
    if vgg is not None:
        loss_vgg = vgg(refined, real_crops)
        loss_g = loss_g + config.loss.lambda_vgg * loss_vgg
        logged["loss_g_vgg"] = loss_vgg
    with torch.no_grad():
        logged["face_l1_before"] = l1_loss(generated_crops, real_crops)
    logged.update(loss_g=loss_g, loss_d=loss_d, loss_d_real=loss_d_real, loss_d_fake=loss_d_fake)
    return StepLosses(loss_g, loss_d, logged)


@torch.no_grad()
def write_sample_sheet(path: Path, models: StageModels, batch: dict[str, Tensor], config: FitConfig) -> None:
    """PNG with one row per sample frame: stick figure | real frame | generated frame (two-step unroll), and
    in the face stage a fourth column with the face residual applied. Images at the stage's working size."""
    main = models.main
    was_training = main.training
    main.eval()
    gen_prev, gen = _unroll(main, batch, generator_inputs(config.generator))
    del gen_prev
    columns = [batch["stick_figure"], batch["frame"], gen]
    if models.face is not None:
        centers = batch["face_center"]
        stick_crops = crop_faces(batch["stick_figure"], centers, models.face_crop_px)
        crops = crop_faces(gen, centers, models.face_crop_px)
        columns.append(paste_faces(gen, models.face.refine(stick_crops, crops), centers))
    if was_training:
        main.train()
    rows = torch.cat(columns, dim=3)  # (N, 3, H, k*W)
    sheet = torch.cat(list(rows), dim=1)  # (3, N*H, k*W)
    pixels = (sheet.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
