"""Train a target model: Everybody Dance Now's temporally coherent pix2pixHD global stage.

Usage::

    python -m train.fit PREPARED_DIR --out RUN [--config train/configs/small.yaml] [key=value ...]

Each step follows Everybody Dance Now (Chan et al., ICCV 2019, Sec. 3.2) on a pair of consecutive frames:
``gen_prev = G(stick_prev, 0)``, ``gen = G(stick, gen_prev)``; the discriminator judges
``concat(stick_prev, stick, frame_prev, frame)`` against ``concat(stick_prev, stick, gen_prev, gen)``. Losses
are pix2pixHD's (Wang et al., CVPR 2018): LSGAN + 10 x discriminator feature matching, plus an optional L1
term; the VGG perceptual loss is not part of this slice. Adam for both networks.

The run directory gets ``config.yaml`` (resolved config), ``metrics.jsonl`` (one JSON line per log step),
``checkpoint.pt`` (latest, written atomically; see :mod:`train.checkpoint`) and ``samples/step_XXXXXXX.png``
(rows of stick figure | real | generated). If ``checkpoint.pt`` exists the run resumes from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from train.checkpoint import load_checkpoint, load_weights_strict, save_checkpoint
from train.config import DEFAULT_CONFIG_PATH, FitConfig, config_differences, config_to_yaml, load_config
from train.dataset import FramePairs, PreparedMeta, load_prepared
from train.losses import feature_matching_loss, l1_loss, lsgan_loss
from train.models import GlobalGenerator, build_discriminator, build_generator

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def fit(
    data_dir: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: FitConfig | None = None
) -> Path:
    """Train on the prepared directory ``data_dir``, writing into ``run_dir``, until ``config.steps`` steps
    are done, ``config.max_minutes`` of wall time have passed in this call, or SIGINT/SIGTERM arrives; then
    save a checkpoint and return its path. Resumes from ``run_dir/checkpoint.pt`` if it exists.

    Args:
        data_dir: a prepared directory (:func:`train.dataset.load_prepared`); trains on its ``train`` split.
        run_dir: the run directory (created if needed).
        config: the training config; None = the packaged ``small.yaml``.

    Returns:
        the path of the latest checkpoint.

    Raises:
        FileNotFoundError, ValueError: for a missing or invalid prepared directory, a batch larger than the
            training set, or a resume whose model settings or dataset differ from the checkpoint's.
        train.checkpoint.CheckpointError: if the existing checkpoint is unreadable.
    """
    config = config if config is not None else load_config(DEFAULT_CONFIG_PATH)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    data = load_prepared(data_dir)
    pairs = FramePairs(data, "train")
    if config.batch_size > len(pairs):
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {len(pairs)} training frame pairs; lower it"
        )
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    device = _device(config.device)
    torch.manual_seed(config.seed)
    temporal = config.generator.temporal

    generator = build_generator(config.generator).to(device)
    discriminator = build_discriminator(config.discriminator, temporal=temporal).to(device)
    betas = (config.optim.beta1, config.optim.beta2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.optim.lr, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.optim.lr, betas=betas)

    step, elapsed_before_s = 0, 0.0
    if checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path, map_location=device)
        _check_resumable(checkpoint.config, checkpoint.data_meta, config, data.meta, run_dir)
        load_weights_strict(generator, checkpoint.generator, what="generator", expected=config.generator)
        load_weights_strict(
            discriminator, checkpoint.discriminator, what="discriminator", expected=config.discriminator
        )
        optimizer_g.load_state_dict(checkpoint.optimizer_g)
        optimizer_d.load_state_dict(checkpoint.optimizer_d)
        step, elapsed_before_s = checkpoint.step, checkpoint.elapsed_s
        _truncate_metrics(run_dir / "metrics.jsonl", step)
        torch.manual_seed(config.seed + step)  # a resumed run draws fresh (but reproducible) batches
        log.info("resuming %s from step %d (%.0f s trained so far)", checkpoint_path, step, elapsed_before_s)
    (run_dir / "config.yaml").write_text(config_to_yaml(config))
    log.info(
        "training on %s: %d frame pairs of %dx%d, device %s, %d threads, G %.2fM / D %.2fM parameters",
        data.root, len(pairs), data.meta.canvas_width, data.meta.canvas_height, device,
        torch.get_num_threads(), _millions(generator), _millions(discriminator),
    )  # fmt: skip
    log.info(
        "VGG perceptual loss is off (not part of this training slice); L1 weight %g", config.loss.lambda_l1
    )

    loader = DataLoader(
        pairs, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed + step),
    )  # fmt: skip
    batches = _forever(loader)
    sample_batch = _sample_batch(pairs, config.sample_frames)
    window: dict[str, list[float]] = defaultdict(list)
    stop_reasons: list[str] = []
    start_s = window_start_s = time.monotonic()
    deadline_s = start_s + config.max_minutes * 60 if config.max_minutes > 0 else float("inf")

    def save() -> None:
        save_checkpoint(
            checkpoint_path, step=step, config=config, data_meta=data.meta, generator=generator,
            discriminator=discriminator, optimizer_g=optimizer_g, optimizer_d=optimizer_d,
            elapsed_s=elapsed_before_s + time.monotonic() - start_s,
        )  # fmt: skip

    bar = tqdm(total=config.steps, initial=step, unit="step", desc="fit")
    with _stop_on_signals(stop_reasons), bar:
        while step < config.steps and not stop_reasons:
            if time.monotonic() >= deadline_s:
                stop_reasons.append(f"time limit of {config.max_minutes:g} min")
                break
            batch = {key: value.to(device) for key, value in next(batches).items()}
            stick_prev, stick = batch["stick_prev"], batch["stick"]
            frame_prev, frame = batch["frame_prev"], batch["frame"]

            # Generator: two-step unroll (first frame from a blank previous frame), or a single frame.
            if temporal:
                gen_prev = generator(stick_prev, torch.zeros_like(stick_prev))
                gen = generator(stick, gen_prev)
                real = torch.cat([stick_prev, stick, frame_prev, frame], dim=1)
                fake = torch.cat([stick_prev, stick, gen_prev, gen], dim=1)
                loss_l1 = l1_loss(gen, frame) + l1_loss(gen_prev, frame_prev)
            else:
                gen = generator(stick)
                real, fake = torch.cat([stick, frame], dim=1), torch.cat([stick, gen], dim=1)
                loss_l1 = l1_loss(gen, frame)

            # Discriminator loss on real and (detached) fake pairs.
            pred_real = discriminator(real)
            pred_fake_detached = discriminator(fake.detach())
            loss_d_real = lsgan_loss(pred_real, target_is_real=True)
            loss_d_fake = lsgan_loss(pred_fake_detached, target_is_real=False)
            loss_d = 0.5 * (loss_d_real + loss_d_fake)

            # Generator loss: fool D, match D's features on real pairs, stay close to the frames (L1).
            discriminator.requires_grad_(False)  # gradients flow through D to G, none accumulate in D
            pred_fake = discriminator(fake)
            discriminator.requires_grad_(True)
            loss_g_gan = lsgan_loss(pred_fake, target_is_real=True)
            loss_g_fm = feature_matching_loss(pred_fake, pred_real)
            weights = config.loss
            loss_g = loss_g_gan + weights.lambda_feature_matching * loss_g_fm + weights.lambda_l1 * loss_l1

            optimizer_g.zero_grad(set_to_none=True)
            loss_g.backward()
            optimizer_g.step()
            optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            optimizer_d.step()
            step += 1
            bar.update(1)

            losses = {
                "loss_g": loss_g, "loss_g_gan": loss_g_gan, "loss_g_feature_matching": loss_g_fm,
                "loss_g_l1": loss_l1, "loss_d": loss_d, "loss_d_real": loss_d_real,
                "loss_d_fake": loss_d_fake,
            }  # fmt: skip
            for name, value in losses.items():
                window[name].append(value.item())
            if step % config.log_every == 0 or step == config.steps:
                now_s = time.monotonic()
                record = {"step": step, **{name: float(np.mean(values)) for name, values in window.items()}}
                record["sec_per_step"] = (now_s - window_start_s) / len(window["loss_g"])
                record["elapsed_s"] = elapsed_before_s + now_s - start_s
                record["wall_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                with open(run_dir / "metrics.jsonl", "a") as metrics:
                    metrics.write(json.dumps(record) + "\n")
                bar.set_postfix(loss_g=f"{record['loss_g']:.3f}", loss_d=f"{record['loss_d']:.3f}")
                window.clear()
                window_start_s = now_s
            if step % config.sample_every == 0 or step == config.steps:
                _write_sample_sheet(
                    run_dir / "samples" / f"step_{step:07d}.png", generator, sample_batch, device
                )
            if step % config.checkpoint_every == 0:
                save()
    save()
    if stop_reasons:
        log.info("stopped at step %d/%d (%s); run again to resume", step, config.steps, stop_reasons[0])
    else:
        log.info("finished: %d steps, checkpoint %s", step, checkpoint_path)
    return checkpoint_path


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
    return torch.device(name)


def _millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _check_resumable(
    old_config: FitConfig, old_meta: PreparedMeta, config: FitConfig, meta: PreparedMeta, run_dir: Path
) -> None:
    """Model settings and dataset must match the checkpoint's; other settings may change (logged)."""
    differences = config_differences(old_config, config)
    model_changes = {k: v for k, v in differences.items() if k.startswith(("generator.", "discriminator."))}
    if model_changes:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in model_changes.items())
        raise ValueError(
            f"{run_dir} holds a checkpoint of a different model ({listed}); resume with its settings "
            f"(see {run_dir / 'config.yaml'}) or train into a new --out directory"
        )
    if differences:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
        log.info("resuming with changed settings: %s", listed)
    if old_meta.to_json() != meta.to_json():
        raise ValueError(
            f"{run_dir} was trained on a different prepared dataset (its meta.json differs); "
            "train into a new --out directory"
        )


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines logged after the checkpoint being resumed (they will be logged again)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if json.loads(line)["step"] <= last_step))


def _forever(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def _sample_batch(pairs: FramePairs, count: int) -> dict[str, torch.Tensor]:
    """``count`` fixed frame pairs spread evenly over the training split, collated."""
    indices = sorted(set(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int).tolist()))
    return default_collate([pairs[i] for i in indices])


@torch.no_grad()
def _write_sample_sheet(
    path: Path, generator: GlobalGenerator, batch: dict[str, torch.Tensor], device: torch.device
) -> None:
    """PNG with one row per sample frame: stick figure | real frame | generated frame (two-step unroll)."""
    stick = batch["stick"].to(device)
    if generator.temporal:
        stick_prev = batch["stick_prev"].to(device)
        generated = generator(stick, generator(stick_prev, torch.zeros_like(stick_prev)))
    else:
        generated = generator(stick)
    rows = torch.cat([stick, batch["frame"].to(device), generated], dim=3)  # (N, 3, H, 3W)
    sheet = torch.cat(list(rows), dim=1)  # (3, N*H, 3W)
    pixels = (sheet.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.fit",
        description="Train a target model (Everybody Dance Now's temporal pix2pixHD global generator) on a "
        "prepared directory. Resumes if RUN/checkpoint.pt exists. Ctrl-C or SIGTERM saves a checkpoint "
        "and exits.",
        epilog="examples:\n"
        "  python -m train.fit prepared/alice --out runs/alice\n"
        "  python -m train.fit prepared/alice --out runs/alice steps=20000 max_minutes=30 generator.ngf=32\n"
        "keys: generator.{ngf,n_downsample,n_blocks,temporal} discriminator.{ndf,n_layers,n_scales}\n"
        "  loss.{lambda_feature_matching,lambda_l1} optim.{lr,beta1,beta2} batch_size steps max_minutes\n"
        "  checkpoint_every log_every sample_every sample_frames seed threads num_workers device",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data_dir", type=Path, help="prepared directory (python -m train.prepare)")
    parser.add_argument(
        "--out", type=Path, required=True, help="run directory (created; resumed if it has a checkpoint)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default: {DEFAULT_CONFIG_PATH} for a new run, the checkpoint's config "
        "when resuming)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=500")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        checkpoint_path = args.out / CHECKPOINT_NAME
        if args.config is None and checkpoint_path.exists():
            base = load_checkpoint(checkpoint_path).config
            config = load_config(None, args.overrides, base=base)
            print(
                f"resuming {checkpoint_path} with its config{' and the overrides' if args.overrides else ''}"
            )
        else:
            config = load_config(args.config or DEFAULT_CONFIG_PATH, args.overrides)
        with logging_redirect_tqdm():
            path = fit(args.data_dir, args.out, config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
