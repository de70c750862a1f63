"""Train a target model: Everybody Dance Now's stages, global -> local -> face, run in order and resumable.

Usage (the command line is :mod:`train.cli`'s)::

    python -m train fit PREPARED_DIR --out RUN [--config train/configs/small.yaml] [key=value ...]
    python -m train fit PREPARED_DIR --out RUN --config train/configs/full.yaml --vgg-weights vgg19.pth
    torchrun --nproc_per_node 2 -m train fit PREPARED_DIR --out RUN ...      # DistributedDataParallel

The stages (``stages=[global,local,face]``; see :mod:`train.stages`) follow Everybody Dance Now (Chan et
al., ICCV 2019, Sec. 3.2-3.3) and pix2pixHD (Wang et al., CVPR 2018, Sec. 3.2): the temporally coherent
global generator, pix2pixHD's local enhancer at twice its resolution (the global stage then trains at half
the canvas), and the face residual GAN with the main generator frozen. Every step is the two-step temporal
unroll on a pair of consecutive frames. Losses: LSGAN, 10 x discriminator feature matching, VGG19
perceptual loss (when ``--vgg-weights`` gives a local weights file), PG2's pose-mask L1 and plain L1 (config
weights), an L1 to a trained teacher model's frames when ``distill.teacher`` names one (GAN Compression's
distillation, e.g. into ``generator.kind=mobile``), and in the face stage a face-crop L1. Adam for every
network.

Run directory::

    RUN/config.yaml                 the resolved config of the latest invocation
    RUN/checkpoint.pt               symlink to the latest stage's checkpoint: the run's model so far (export
                                    it, evaluate it, or run it with the PyTorch backend)
    RUN/STAGE/checkpoint.pt         each stage's checkpoint (see train.checkpoint), written atomically
    RUN/STAGE/metrics.jsonl         one JSON line per log step
    RUN/STAGE/samples/step_XXXXXXX.png   stick figure | real | generated (| with the face residual)

Running the same command again resumes: finished stages are skipped (a finished stage that a later stage
already started from is never trained further), the stage in progress continues from its checkpoint, and the
remaining stages follow. SIGINT/SIGTERM or ``max_minutes`` stop at the end of a step with a checkpoint.
With ``torchrun``, only rank 0 writes files; all ranks stop at the same step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from realtime.console import progress
from realtime.model.nets import MobileGenerator
from train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, target_from_checkpoint
from train.config import (
    DEFAULT_CONFIG_PATH,
    FitConfig,
    config_differences,
    config_to_yaml,
    load_config,
    student_config,
)
from train.dataset import FramePairs, PreparedData, PreparedMeta, load_prepared
from train.distributed import (
    DistributedContext,
    any_rank,
    barrier,
    init_distributed,
    mean_over_ranks,
    shutdown_distributed,
)
from train.models import generator_inputs
from train.stages import (
    Teacher,
    build_stage_models,
    check_stage_fits,
    face_stage_losses,
    main_stage_losses,
    prepare_batch,
    write_sample_sheet,
)
from train.vgg import VGGPerceptualLoss, load_vgg19_features

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"

#: Config keys that define each stage's networks: a resumed stage must keep them.
_MODEL_KEYS = {
    "global": ("generator.", "discriminator."),
    "local": ("generator.", "discriminator.", "local.n_blocks"),
    "face": ("generator.", "local.n_blocks", *(f"face.{k}" for k in ("ngf", "n_downsample", "n_blocks", "ndf",
                                                                       "n_layers", "n_scales"))),
    "student": ("generator.", "discriminator."),  # of the student's config (train.config.student_config)
}  # fmt: skip


def stage_checkpoint_path(run_dir: str | os.PathLike[str], stage: str) -> Path:
    """``RUN/STAGE/checkpoint.pt``."""
    return Path(run_dir) / stage / CHECKPOINT_NAME


def fit(
    data_dir: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: FitConfig | None = None
) -> Path:
    """Train on the prepared directory ``data_dir``, writing into ``run_dir``, through ``config.stages`` in
    order, until every stage has its steps, ``config.max_minutes`` of wall time have passed in this call, or
    SIGINT/SIGTERM arrives; then save a checkpoint and return ``run_dir/checkpoint.pt`` (the latest stage's).
    Resumes from the stage checkpoints in ``run_dir``. Under ``torchrun`` (``WORLD_SIZE`` > 1) trains with
    DistributedDataParallel; only rank 0 writes.

    Args:
        data_dir: a prepared directory (:func:`train.dataset.load_prepared`); trains on its ``train`` split.
        run_dir: the run directory (created if needed).
        config: the training config; None = the packaged ``small.yaml``.

    Returns:
        the path of the run's latest checkpoint (a symlink to ``run_dir/STAGE/checkpoint.pt``).

    Raises:
        FileNotFoundError, ValueError: for a missing or invalid prepared directory or VGG weights file, a
            batch larger than the training set, a resume whose model settings or dataset differ from the
            checkpoint's, or stages that do not fit the run directory.
        train.checkpoint.CheckpointError: if an existing checkpoint is unreadable.
    """
    config = config if config is not None else load_config(DEFAULT_CONFIG_PATH)
    context = init_distributed(config.device)
    try:
        return _fit(Path(data_dir), Path(run_dir), config, context)
    finally:
        shutdown_distributed(context)


@dataclass
class _Run:
    """What every stage of one invocation shares."""

    data: PreparedData
    run_dir: Path
    config: FitConfig
    context: DistributedContext
    vgg: VGGPerceptualLoss | None
    stop_reasons: list[str]
    deadline_s: float


def _fit(data_dir: Path, run_dir: Path, config: FitConfig, context: DistributedContext) -> Path:
    data = load_prepared(data_dir)
    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // context.world_size))
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_to_yaml(config))
    vgg = _vgg_loss(config, context.device)
    start_s = time.monotonic()
    deadline_s = start_s + config.max_minutes * 60 if config.max_minutes > 0 else float("inf")
    run = _Run(data, run_dir, config, context, vgg, [], deadline_s)
    if context.is_main:
        log.info("%s", plan_text(config))
    previous: Checkpoint | None = None
    with _stop_on_signals(run.stop_reasons):
        for index, stage in enumerate(config.stages):
            path = stage_checkpoint_path(run_dir, stage)
            existing = load_checkpoint(path, map_location=context.device) if path.exists() else None
            if existing is not None:
                _check_resumable(existing, stage_config(config, stage), data.meta, stage)
            later = [s for s in config.stages[index + 1 :] if stage_checkpoint_path(run_dir, s).exists()]
            if existing is not None and (_stage_done(existing, config) or later):
                if _budget_reached(existing, config) and existing.step < config.stage_steps(stage):
                    log.info(
                        "stage %s: done at its budget of %g min (%d of %d steps), %s", stage,
                        config.stage_minutes[stage], existing.step, config.stage_steps(stage), path,
                    )  # fmt: skip
                elif existing.step < config.stage_steps(stage):
                    log.warning(
                        "stage %s stays at %d steps (not %d): stage %s already started from it",
                        stage, existing.step, config.stage_steps(stage), later[0],
                    )  # fmt: skip
                else:
                    log.info("stage %s: done (%d steps), %s", stage, existing.step, path)
                check_stage_fits(stage, config, existing)
                previous = existing
                continue
            previous = _train_stage(run, stage, previous=previous, existing=existing)
            if run.stop_reasons:
                break
    final = run_dir / CHECKPOINT_NAME
    if context.is_main and previous is not None:
        _link_latest(run_dir, previous.stage)
    barrier(context)
    if run.stop_reasons:
        log.info("stopped (%s); run the same command again to resume", run.stop_reasons[0])
    else:
        log.info("finished stages %s: %s", ", ".join(config.stages), final)
        if context.is_main and "student" in config.stages and not context.is_distributed:
            for line in what_you_got(run_dir, data, config):
                log.info("%s", line)
    return final


def _vgg_loss(config: FitConfig, device: torch.device) -> VGGPerceptualLoss | None:
    """The VGG perceptual loss if ``loss.vgg_weights`` names a file (and its weight is > 0), else None; says
    which in the log, once."""
    weights = config.loss
    if not weights.use_vgg_loss:
        reason = "loss.lambda_vgg is 0"
        if weights.lambda_vgg > 0:
            reason = (
                "no VGG19 weights file given (--vgg-weights PATH or loss.vgg_weights; none can be downloaded)"
            )
        log.info("VGG perceptual loss is off: %s", reason)
        return None
    vgg = VGGPerceptualLoss(load_vgg19_features(weights.vgg_weights, map_location=device)).to(device)
    log.info("VGG perceptual loss on (weight %g, weights %s)", weights.lambda_vgg, weights.vgg_weights)
    return vgg


def _train_stage(
    run: _Run, stage: str, *, previous: Checkpoint | None, existing: Checkpoint | None
) -> Checkpoint:
    """Train (or resume) one stage until its steps are done, its budget (``stage_minutes``) is spent or a stop
    is requested; returns its checkpoint."""
    config, context, data = stage_config(run.config, stage), run.context, run.data
    device = context.device
    stage_dir = run.run_dir / stage
    checkpoint_path = stage_dir / CHECKPOINT_NAME
    step = existing.step if existing is not None else 0
    steps = config.stage_steps(stage)
    torch.manual_seed(config.seed + step + 100_003 * context.rank)  # fresh, reproducible draws on resume
    models = build_stage_models(
        stage, config, previous=previous, existing=existing, face_box_px=data.meta.face_box_size_px
    ).to(device)
    generator_raw, discriminator_raw = models.trained_generator, models.discriminator
    if existing is None and isinstance(generator_raw, MobileGenerator) and generator_raw.learned_background:
        _init_background(generator_raw, data)
    betas = (config.optim.beta1, config.optim.beta2)
    optimizer_g = torch.optim.Adam(generator_raw.parameters(), lr=config.optim.lr, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator_raw.parameters(), lr=config.optim.lr, betas=betas)
    elapsed_before_s = 0.0
    if existing is not None:
        optimizer_g.load_state_dict(existing.optimizer_g)
        optimizer_d.load_state_dict(existing.optimizer_d)
        elapsed_before_s = existing.elapsed_s
        if context.is_main:
            _truncate_metrics(stage_dir / "metrics.jsonl", step)
        log.info("stage %s: resuming from step %d (%.0f s so far)", stage, step, elapsed_before_s)
    teacher = _teacher(config, stage, models.main_downscale, data.meta, previous)
    generator: torch.nn.Module = generator_raw
    discriminator: torch.nn.Module = discriminator_raw
    if context.is_distributed:
        ids = [device.index] if device.type == "cuda" else None
        generator = DistributedDataParallel(generator_raw, device_ids=ids)
        discriminator = DistributedDataParallel(discriminator_raw, device_ids=ids)

    inputs = generator_inputs(config.generator)
    pairs = FramePairs(data, "train", augment=config.augment, require_face=stage == "face", inputs=inputs)
    per_rank = len(pairs) // context.world_size
    if config.batch_size > per_rank:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {per_rank} training frame pairs per process "
            f"({len(pairs)} pairs{' with faces' if stage == 'face' else ''}, "
            f"{context.world_size} processes); lower it"
        )
    sampler: DistributedSampler | None = (
        DistributedSampler(pairs, context.world_size, context.rank, shuffle=True, seed=config.seed + step,
                           drop_last=True)
        if context.is_distributed else None
    )  # fmt: skip
    loader = DataLoader(
        pairs, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=True,
        num_workers=config.num_workers, generator=torch.Generator().manual_seed(config.seed + step),
    )  # fmt: skip
    batches = _forever(loader, sampler)
    sample_batch = _sample_batch(
        FramePairs(data, "train", require_face=stage == "face", inputs=inputs), config.sample_frames
    )
    sample_batch = prepare_batch(sample_batch, device, models.main_downscale)
    log.info(
        "stage %s on %s: %d frame pairs at %dx%d (canvas / %d), device %s, %d threads, %d process(es), "
        "trained G %.2fM / D %.2fM parameters, augmentation %s",
        stage, data.root, len(pairs), data.meta.canvas_width // models.main_downscale,
        data.meta.canvas_height // models.main_downscale, models.main_downscale, device,
        torch.get_num_threads(), context.world_size, _millions(generator_raw), _millions(discriminator_raw),
        "on" if config.augment.enabled else "off",
    )  # fmt: skip

    window: dict[str, list[float]] = defaultdict(list)
    start_s = window_start_s = time.monotonic()
    budget_min = run.config.stage_minutes.get(stage, 0.0)
    stage_deadline_s = start_s + budget_min * 60 - elapsed_before_s if budget_min > 0 else float("inf")
    budget_spent = False

    teacher_stage = previous.stage if stage == "student" and previous is not None else None

    def save() -> Checkpoint | None:
        if not context.is_main:
            return None
        save_checkpoint(
            checkpoint_path, stage=stage, step=step, config=config, data_meta=data.meta,
            main_generator=models.main_kind, main_downscale=models.main_downscale, generator=models.main,
            face_generator=models.face, discriminator=discriminator_raw, optimizer_g=optimizer_g,
            optimizer_d=optimizer_d, elapsed_s=elapsed_before_s + time.monotonic() - start_s,
            target_inputs=pairs.per_target, teacher_stage=teacher_stage,
        )  # fmt: skip
        _link_latest(run.run_dir, stage)
        return None

    bar = progress(total=steps, initial=step, unit="step", desc=f"fit {stage}", disable=not context.is_main)
    with bar:
        while step < steps:
            local_stop = bool(run.stop_reasons) or time.monotonic() >= run.deadline_s
            if any_rank(context, local_stop):
                if not run.stop_reasons:
                    reason = "time limit" if time.monotonic() >= run.deadline_s else "another rank stopped"
                    run.stop_reasons.append(
                        f"time limit of {config.max_minutes:g} min" if reason == "time limit" else reason
                    )
                break
            if any_rank(context, time.monotonic() >= stage_deadline_s):
                budget_spent = True
                break
            batch = prepare_batch(next(batches), device, models.main_downscale)
            if stage == "face":
                losses = face_stage_losses(
                    models, generator, discriminator, discriminator_raw, batch, config, run.vgg
                )
            else:
                losses = main_stage_losses(
                    generator, discriminator, discriminator_raw, batch, config, run.vgg, teacher
                )
            optimizer_g.zero_grad(set_to_none=True)
            losses.generator.backward()
            optimizer_g.step()
            optimizer_d.zero_grad(set_to_none=True)
            losses.discriminator.backward()
            optimizer_d.step()
            step += 1
            bar.update(1)

            for name, value in losses.logged.items():
                window[name].append(value.item())
            if step % config.log_every == 0 or step == steps:
                now_s = time.monotonic()
                means = mean_over_ranks(context, {k: float(np.mean(v)) for k, v in window.items()})
                record: dict[str, object] = {"stage": stage, "step": step, **means}
                record["sec_per_step"] = (now_s - window_start_s) / len(window["loss_g"])
                record["elapsed_s"] = elapsed_before_s + now_s - start_s
                record["wall_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                if context.is_main:
                    stage_dir.mkdir(parents=True, exist_ok=True)
                    with open(stage_dir / "metrics.jsonl", "a") as metrics:
                        metrics.write(json.dumps(record) + "\n")
                bar.set_postfix(loss_g=f"{means['loss_g']:.3f}", loss_d=f"{means['loss_d']:.3f}")
                window.clear()
                window_start_s = now_s
            if context.is_main and (step % config.sample_every == 0 or step == steps):
                write_sample_sheet(
                    stage_dir / "samples" / f"step_{step:07d}.png", models, sample_batch, config
                )
            if step % config.checkpoint_every == 0:
                save()
    save()
    barrier(context)  # the checkpoint is on disk before any rank reads it (the next stage starts from it)
    if step >= steps:
        log.info("stage %s: finished %d steps, %s", stage, step, checkpoint_path)
    elif budget_spent:
        log.info("stage %s: budget of %g min spent at step %d/%d, %s", stage, budget_min, step, steps,
                 checkpoint_path)  # fmt: skip
    else:
        log.info("stage %s: stopped at step %d/%d (%s)", stage, step, steps, run.stop_reasons[0])
    return load_checkpoint(checkpoint_path, map_location=device)


#: Training frames whose per-pixel median starts a learned background (MobileGenerator.init_background).
BACKGROUND_INIT_FRAMES = 64


def _init_background(generator: MobileGenerator, data: PreparedData) -> None:
    """Start ``generator``'s learned background from the median of :data:`BACKGROUND_INIT_FRAMES` training
    frames spread over the training split.

    Raises:
        ValueError: if ``generator.background_hw`` is not the prepared canvas.
    """
    height, width = data.meta.canvas_height, data.meta.canvas_width
    if tuple(generator.spec.background_hw) != (height, width):
        raise ValueError(
            f"generator.background_hw is {list(generator.spec.background_hw)} but {data.root} is prepared at "
            f"{height}x{width} (HxW); set generator.background_hw=[{height},{width}]"
        )
    count = min(BACKGROUND_INIT_FRAMES, data.meta.train_end)
    index = np.unique(np.linspace(0, data.meta.train_end - 1, num=count).round().astype(np.int64))
    frames = torch.from_numpy(np.ascontiguousarray(data.frames[index])).permute(0, 3, 1, 2).float() / 255.0
    generator.init_background(frames)
    log.info("learned background started from the median of %d training frames", len(index))


def _teacher(
    config: FitConfig, stage: str, downscale: int, meta: PreparedMeta, previous: Checkpoint | None
) -> Teacher | None:
    """The distillation teacher of a global or local stage (None when ``distill`` is off or in the face
    stage), or of the student stage (the finished previous stage's main generator, run with PyTorch in this
    process); says which in the log.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as :meth:`train.stages.Teacher.load`.
    """
    canvas_hw = (meta.canvas_height // downscale, meta.canvas_width // downscale)
    if stage == "student":
        assert previous is not None  # the student stage is never first (FitConfig checks)
        teacher = Teacher(
            target_from_checkpoint(previous.path), generator_inputs(config.generator), canvas_hw
        )
        log.info(
            "stage student: distilling the %s stage's model %s (L1 weight %g, plain L1 %g)",
            previous.stage, previous.path, config.distill.lambda_l1, config.loss.lambda_l1,
        )  # fmt: skip
        return teacher
    if not config.distill.enabled or stage == "face":
        return None
    teacher = Teacher.load(
        config.distill.teacher, generator_inputs(config.generator), canvas_hw, config.distill.threads
    )
    log.info(
        "stage %s: distilling from %s (L1 weight %g, %d teacher threads)",
        stage, teacher.target.path, config.distill.lambda_l1, config.distill.threads,
    )  # fmt: skip
    return teacher


def what_you_got(run_dir: Path, data: PreparedData, config: FitConfig) -> list[str]:
    """The lines a finished run with a student stage ends with: for the teacher and the student, the
    held-out body SSIM and PSNR and face SSIM (:func:`train.evaluate.evaluate_model`, the evaluation of
    ``python -m train evaluate``) and the frames per second of the generator alone on this machine (PyTorch,
    the run's threads; the live server runs ONNX Runtime), then how to export and serve them."""
    from train.evaluate import evaluate_model

    lines = []
    teacher_stage = config.teacher_stages[-1]
    for role, stage in (("teacher", teacher_stage), ("student", "student")):
        path = stage_checkpoint_path(run_dir, stage)
        checkpoint = load_checkpoint(path)
        evaluation = evaluate_model(target_from_checkpoint(path), data, label=role)
        result = evaluation.result
        lines.append(
            f"{role} ({stage} stage, {checkpoint.step} steps, {checkpoint.elapsed_s / 60:.0f} min): held-out "
            f"body SSIM {result.body.ssim:.3f}, body PSNR {result.body.psnr_db:.2f} dB, face SSIM "
            f"{result.face.ssim:.3f}; generator alone {1e3 / evaluation.generator_ms_per_frame:.1f} fps on "
            f"this machine (PyTorch, {torch.get_num_threads()} threads)"
        )
    lines.append(
        f"export both: python -m export onnx {run_dir / CHECKPOINT_NAME} TARGET.onnx; then python server.py "
        "--engine TARGET.onnx runs the student on a CPU and the teacher on a GPU (--model overrides)"
    )
    return lines


def stage_config(config: FitConfig, stage: str) -> FitConfig:
    """The config ``stage`` trains with and stores in its checkpoint: the student's own
    (:func:`train.config.student_config`) for the student stage, else ``config``."""
    return student_config(config) if stage == "student" else config


def _budget_reached(checkpoint: Checkpoint, config: FitConfig) -> bool:
    """Whether a stage's checkpoint has used up the stage's ``stage_minutes`` budget (if it has one)."""
    budget_min = config.stage_minutes.get(checkpoint.stage, 0.0)
    return budget_min > 0 and checkpoint.elapsed_s >= budget_min * 60


def _stage_done(checkpoint: Checkpoint, config: FitConfig) -> bool:
    """Whether a stage's checkpoint has its steps, or its budget is spent."""
    return checkpoint.step >= config.stage_steps(checkpoint.stage) or _budget_reached(checkpoint, config)


def plan_text(config: FitConfig) -> str:
    """One line that says what a run will train and for how long at most: each stage's steps and budget,
    and the total of the budgets (the time printed at the start: the stages stop at their steps or their
    minutes, whichever comes first)."""
    parts, total_min, bounded = [], 0.0, True
    for stage in config.stages:
        budget_min = config.stage_minutes.get(stage, 0.0)
        limit = f" or {budget_min:g} min" if budget_min > 0 else ""
        parts.append(f"{stage} {config.stage_steps(stage)} steps{limit}")
        total_min += budget_min
        bounded = bounded and budget_min > 0
    if config.max_minutes > 0:
        total_min, bounded = min(total_min, config.max_minutes) if bounded else config.max_minutes, True
    when = f"done within {total_min:g} min of training" if bounded else "no time limit on every stage"
    return f"plan: {', '.join(parts)}: {when} (running the command again resumes)"


def _link_latest(run_dir: Path, stage: str) -> None:
    """Point ``RUN/checkpoint.pt`` at ``RUN/STAGE/checkpoint.pt`` (relative symlink, replaced atomically)."""
    link = run_dir / CHECKPOINT_NAME
    tmp = run_dir / f".{CHECKPOINT_NAME}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(Path(stage) / CHECKPOINT_NAME, tmp)
    os.replace(tmp, link)


def _millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _check_resumable(checkpoint: Checkpoint, config: FitConfig, meta: PreparedMeta, stage: str) -> None:
    """The stage's model settings and the dataset must match the checkpoint's; others may change (logged)."""
    if checkpoint.stage != stage:
        raise ValueError(f"{checkpoint.path} holds a {checkpoint.stage!r} stage, expected {stage!r}")
    differences = config_differences(checkpoint.config, config)
    model_changes = {k: v for k, v in differences.items() if k.startswith(_MODEL_KEYS[stage])}
    run_dir = checkpoint.path.parent.parent
    if model_changes:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in model_changes.items())
        raise ValueError(
            f"{run_dir} holds a {stage} stage checkpoint of a different model ({listed}); resume with its "
            f"settings (see {run_dir / 'config.yaml'}) or train into a new --out directory"
        )
    if differences:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
        log.info("stage %s: settings changed since its checkpoint: %s", stage, listed)
    if checkpoint.data_meta.to_json() != meta.to_json():
        raise ValueError(
            f"{run_dir} was trained on a different prepared dataset (its meta.json differs); "
            "train into a new --out directory"
        )


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines logged after the checkpoint being resumed (they will be logged again)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if json.loads(line)["step"] <= last_step))


def _forever(loader: DataLoader, sampler: DistributedSampler | None) -> Iterator[dict[str, torch.Tensor]]:
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _sample_batch(pairs: FramePairs, count: int) -> dict[str, torch.Tensor]:
    """``count`` fixed frame pairs spread evenly over the training split, collated."""
    indices = sorted(set(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int).tolist()))
    return default_collate([pairs[i] for i in indices])


@contextlib.contextmanager
def _stop_on_signals(stop_reasons: list[str]) -> Iterator[None]:
    """While active, SIGINT and SIGTERM append their name to ``stop_reasons`` (the loop then stops at the end
    of the step and checkpoints); a second signal raises KeyboardInterrupt at once. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop_reasons:
            raise KeyboardInterrupt
        stop_reasons.append(signal.Signals(signum).name)
        log.warning("%s: stopping after this step (again: abort without saving)", stop_reasons[0])

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)
