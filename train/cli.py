"""The training command lines: ``python -m train prepare|fit|evaluate ...``.

- ``python -m train prepare TARGET.mp4 --out DIR``: a target video to a prepared directory
  (:mod:`train.prepare`).
- ``python -m train fit DIR --out RUN [key=value ...]``: training, stage after stage, resumable
  (:mod:`train.fit`; ``torchrun --nproc_per_node N -m train fit ...`` for several processes).
- ``python -m train evaluate MODEL [MODEL ...] --data DIR``: the held-out self-reconstruction
  (:mod:`train.evaluate`); ``python -m train evaluate --synthetic ...`` is the unseen-pose evaluation of
  :mod:`train.synthetic.cli`, a mode with its own arguments.

Light on purpose: each command parses its arguments before it imports its library module (NumPy, PyTorch,
MediaPipe), so that ``--help`` and argument errors answer at once (the pattern of :mod:`realtime.cli`). Each
``*_main(argv)`` is callable from Python (``command_line`` then defaults to False: the process's stderr is
left as it is).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

from realtime.catalog import (
    CANVAS_MULTIPLE_PX,
    DEFAULT_CANVAS_PIXELS,
    DEFAULT_POSE_ESTIMATOR,
    MASK_SOURCE_NONE,
    MODEL_CHOICES,
    mask_source_names,
    pose_estimator_names,
)
from realtime.cli import (
    Command,
    add_log_level,
    canvas_size,
    existing_file,
    existing_path,
    fraction,
    positive_float,
    positive_int,
    run_command,
    setup_logging,
)
from train.catalog import DEFAULT_SOURCE_FRAMES, STILL_THRESHOLD_PX
from train.config import DEFAULT_CONFIG_PATH, STAGES, config_keys


# -- prepare -------------------------------------------------------------------------------------------------
def build_prepare_parser() -> argparse.ArgumentParser:
    """``python -m train prepare``'s command line."""
    parser = argparse.ArgumentParser(
        prog="python -m train prepare",
        description="Turn a video of the target person (one person, static camera, full body in frame) into "
        "a training directory: canvas frames, keypoints, stick figures, masks, face boxes, the target's "
        "normalization statistics, and a split that holds out the last frames.",
    )
    parser.add_argument("video", type=existing_file, help="target video (any format FFmpeg reads)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    canvas = parser.add_mutually_exclusive_group()
    canvas.add_argument(
        "--pixels",
        type=positive_int,
        default=DEFAULT_CANVAS_PIXELS,
        help="the canvas's pixel budget: by default the canvas takes the aspect of the window that holds the "
        "person in every frame (a portrait recording gets a portrait canvas), with about this many pixels "
        f"and sides multiples of {CANVAS_MULTIPLE_PX} (the generators' size multiple); the chosen size is "
        f"printed and recorded in meta.json and the target's sidecar (default {DEFAULT_CANVAS_PIXELS}, "
        "as 256x256)",
    )
    canvas.add_argument(
        "--size",
        type=canvas_size,
        default=None,
        help="force the canvas to exactly WIDTHxHEIGHT (e.g. 256x256), the person's window cropped or "
        f"letterboxed to its aspect; sides that are not multiples of {CANVAS_MULTIPLE_PX} may not suit "
        "every generator configuration",
    )
    parser.add_argument(
        "--heldout-fraction",
        type=fraction,
        default=0.15,
        help="last fraction of frames held out (default 0.15)",
    )
    parser.add_argument("--max-frames", type=positive_int, default=None, help="use only the first N frames")
    parser.add_argument(
        "--pose-estimator",
        choices=pose_estimator_names(),
        default=DEFAULT_POSE_ESTIMATOR,
        help="pose estimator (realtime.catalog.POSE_ESTIMATORS), recorded in meta.json and in the target's "
        f"sidecar so that serving uses the same one (default {DEFAULT_POSE_ESTIMATOR})",
    )
    parser.add_argument(
        "--mask-source",
        choices=mask_source_names(),
        default=DEFAULT_POSE_ESTIMATOR,
        help=f"person masks: a pose estimator's segmentation, or {MASK_SOURCE_NONE} (all-zero masks: the "
        "evaluation's body region then falls back to the keypoints' box, and the pose-mask L1 weighs the "
        f"person like the background); recorded in meta.json (default {DEFAULT_POSE_ESTIMATOR})",
    )
    add_log_level(parser, "info")
    return parser


def prepare_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train prepare``: prints what was prepared; exit code 2 for a bad video."""
    command_line = argv is None if command_line is None else command_line
    args = build_prepare_parser().parse_args(argv)
    setup_logging(args.log_level, command_line=command_line)
    import numpy as np

    from realtime.video import VideoError
    from train.prepare import person_height_px, prepare

    start = time.perf_counter()
    try:
        meta = prepare(
            args.video,
            args.out,
            canvas_width=args.size[0] if args.size else None,
            canvas_height=args.size[1] if args.size else None,
            canvas_pixels=args.pixels,
            heldout_fraction=args.heldout_fraction,
            max_frames=args.max_frames,
            pose_estimator=args.pose_estimator,
            mask_source=args.mask_source,
        )
    except (VideoError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keypoints = np.load(args.out / "keypoints.npz")
    found = float((keypoints["confidence"].max(axis=1) > 0).mean())
    height_px = person_height_px(keypoints["joints_px"], keypoints["confidence"])
    chosen = "forced by --size" if args.size else f"chosen for the person's framing, about {args.pixels} px"
    print(
        f"prepared {meta.num_frames} frames ({meta.train_end} train, {len(meta.heldout)} held out) into "
        f"{args.out} in {time.perf_counter() - start:.1f} s; person found in {found:.0%} of frames; "
        f"canvas {meta.canvas_width}x{meta.canvas_height} ({chosen}); person's keypoint height median "
        f"{height_px:.0f} px of {meta.canvas_height}; preview: {args.out / 'preview.png'}"
    )
    return 0


# -- fit -----------------------------------------------------------------------------------------------------
def config_keys_help(width: int = 108) -> str:
    """The training config's keys for ``--help``, grouped (``generator.{kind,ngf,...}``) and wrapped: derived
    from :func:`train.config.config_keys`, so no key is left out."""
    groups: dict[str, list[str]] = {}
    for key in config_keys():
        parent, _, name = key.rpartition(".")
        groups.setdefault(parent or name, []).append(name if parent else "")
    words = [group if names == [""] else f"{group}.{{{','.join(names)}}}" for group, names in groups.items()]
    return textwrap.fill(
        " ".join(words), width=width, initial_indent="keys: ", subsequent_indent="  ", break_long_words=False,
        break_on_hyphens=False,
    )  # fmt: skip


def build_fit_parser() -> argparse.ArgumentParser:
    """``python -m train fit``'s command line (parse it with ``parse_intermixed_args``: the ``key=value``
    overrides may come between the options)."""
    parser = argparse.ArgumentParser(
        prog="python -m train fit",
        description="Train a target model (Everybody Dance Now: temporal pix2pixHD global generator, local "
        "enhancer, face GAN) on a prepared directory, stage after stage. Resumes if RUN has checkpoints. "
        "Ctrl-C or SIGTERM saves a checkpoint and exits. Multi-process: torchrun --nproc_per_node N -m "
        "train fit ...",
        epilog="examples:\n"
        "  python -m train fit prepared/alice --out runs/alice\n"
        "  python -m train fit prepared/alice --out runs/alice steps=20000 max_minutes=30 generator.ngf=32\n"
        "  python -m train fit prepared/alice --out runs/alice 'stages=[global,local,face]' \\\n"
        "      local.steps=2000 face.steps=1000\n"
        "  python -m train fit prepared/alice --out runs/alice --config train/configs/full.yaml "
        "--vgg-weights vgg19.pth\n"
        f"stages: {', '.join(STAGES)} (in this order, global first)\n" + config_keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data_dir", type=existing_path, help="prepared directory (python -m train prepare)")
    parser.add_argument(
        "--out", type=Path, required=True, help="run directory (created; resumed if it has checkpoints)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default: {DEFAULT_CONFIG_PATH} for a new run, the latest checkpoint's config "
        "when resuming)",
    )
    parser.add_argument(
        "--vgg-weights",
        type=Path,
        default=None,
        help="torchvision vgg19 state dict (.pth) for the VGG perceptual loss (same as "
        "loss.vgg_weights=PATH); without it the term is off",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=500")
    return parser


def fit_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train fit``: prints the checkpoint written; exit code 2 for a bad config, data or run
    directory. ``command_line`` is accepted for :func:`realtime.cli.run_command` (training logs at INFO
    either way)."""
    del command_line
    args = build_fit_parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from train.checkpoint import load_checkpoint
    from train.config import load_config
    from train.fit import CHECKPOINT_NAME, fit

    overrides = list(args.overrides)
    if args.vgg_weights is not None:
        overrides.append(f"loss.vgg_weights={args.vgg_weights.resolve()}")
    try:
        checkpoint_path = args.out / CHECKPOINT_NAME
        if args.config is None and checkpoint_path.exists():
            latest = load_checkpoint(checkpoint_path)
            # A student checkpoint stores the student's own config; the run's is the one written at its start.
            run_config = args.out / "config.yaml"
            base = (
                load_config(run_config)
                if latest.stage == "student" and run_config.is_file()
                else latest.config
            )
            config = load_config(None, overrides, base=base)
            if os.environ.get("RANK", "0") == "0":
                print(f"resuming {args.out} with its config{' and the overrides' if overrides else ''}")
        else:
            config = load_config(args.config or DEFAULT_CONFIG_PATH, overrides)
        with logging_redirect_tqdm():
            path = fit(args.data_dir, args.out, config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(f"checkpoint: {path}")
    return 0


# -- evaluate ------------------------------------------------------------------------------------------------
def build_evaluate_parser() -> argparse.ArgumentParser:
    """``python -m train evaluate``'s command line. ``--synthetic`` is a mode of its own with other arguments
    (:mod:`train.synthetic.cli`)."""
    parser = argparse.ArgumentParser(
        prog="python -m train evaluate",
        usage="python -m train evaluate MODEL [MODEL ...] --data DATA [options]\n"
        "       python -m train evaluate --synthetic --source VIDEO [--source VIDEO ...] --out OUT [options]",
        description="Self-reconstruction on the held-out frames of the target video: each model is driven by "
        "those frames' own stick figures and its output is compared with the real frames (SSIM and PSNR "
        "over the frame, the body region and the face, pose distance and missed joints of MediaPipe on the "
        "output, temporal stability). Several models give one table with a row each. With --sources, each "
        "model is also driven by source videos' poses it never saw (through the offline retargeting) and "
        "the table gains, beside the body-region measures, the limb-direction agreement between each source "
        "frame and the frame generated from it (MediaPipe on both: median / p90 angle in degrees) and the "
        "share of the source's elbows and wrists missing on the output.",
        epilog="examples:\n"
        "  python -m train evaluate runs/alice --data prepared/alice\n"
        "  python -m train evaluate a.onnx b.onnx c.onnx --data prepared/alice --out ablation\n"
        "  python -m train evaluate runs/alice --data prepared/alice --sources dance.mp4 taiji.mp4\n"
        "unseen poses with exact ground truth (a mannequin model, the bundled one by default):\n"
        "  python -m train evaluate --synthetic --source dance.mp4 --source dribble.mp4 --out eval_synth\n"
        "  (python -m train evaluate --synthetic --help for its options)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        type=Path,
        nargs="+",
        metavar="MODEL",
        help="a run directory (its checkpoint; the last stage's with per-stage subfolders), a checkpoint "
        "(.pt) or an engine file (.onnx, .pt)",
    )
    parser.add_argument("--data", type=Path, required=True, help="the prepared target directory")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default with one model: the model's folder/eval; required with several)",
    )
    parser.add_argument(
        "--still-threshold-px",
        type=positive_float,
        default=STILL_THRESHOLD_PX,
        help="consecutive frames count as still when every driving joint moved less than this (pixels; "
        "default %(default)g)",
    )
    parser.add_argument("--sheet-frames", type=positive_int, default=6, help="rows in each sample sheet")
    parser.add_argument(
        "--sources",
        type=existing_file,
        nargs="+",
        default=[],
        metavar="VIDEO",
        help="source (driving) videos: drive each model with their poses, as python -m realtime.offline "
        "does, and add per source the limb-direction median / p90 (degrees) and the elbows+wrists missed "
        "to metrics.json and the table, and a sample sheet (samples_NAME.png: source | stick figure | "
        "generated); default none",
    )
    parser.add_argument(
        "--source-frames",
        type=positive_int,
        default=DEFAULT_SOURCE_FRAMES,
        metavar="N",
        help="drive with the first N frames of each source video (the whole video if shorter; default "
        "%(default)s)",
    )
    parser.add_argument(
        "--model",
        choices=(*MODEL_CHOICES, "both"),
        default="auto",
        help="which of a target's models to evaluate when it holds a teacher and its real-time student (a "
        "bundle, or a run trained with the student stage): both = one row each; auto = the one the server "
        "would run here (default: %(default)s)",
    )
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add a row measuring the real frames themselves (each measure's floor on this data)",
    )
    parser.add_argument(
        "--background",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add a row measuring the target's background plate (the per-pixel median of the training frames "
        "with the person masked out) against the held-out frames: the background's share of SSIM and PSNR",
    )
    add_log_level(parser)
    return parser


def evaluate_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train evaluate``: prints the table and what was written; exit code 2 for a bad model, data
    or option. ``--synthetic`` first hands the rest over to :func:`train.synthetic.cli.main`."""
    command_line = argv is None if command_line is None else command_line
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--synthetic"]:  # unseen poses with ground truth: a mode of its own, other arguments
        from train.synthetic.cli import main as synthetic_main

        return synthetic_main(["evaluate", *argv[1:]], command_line=command_line)
    args = build_evaluate_parser().parse_args(argv)
    setup_logging(args.log_level, command_line=command_line)
    if len(args.models) > 1 and args.out is None:
        print("error: --out is required when evaluating several models", file=sys.stderr)
        return 2
    from train.evaluate import evaluate_models

    try:
        out, table = evaluate_models(
            args.models, args.data, args.out, still_threshold_px=args.still_threshold_px,
            sheet_frames=args.sheet_frames, reference=args.reference, background=args.background,
            sources=args.sources, source_frames=args.source_frames, report=print, model=args.model,
        )  # fmt: skip
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table.split("\n\n")[0])
    print(f"wrote {out / 'metrics.md'}")
    return 0


#: ``python -m train``'s commands, in the order of the data flow.
COMMANDS = {
    "prepare": Command(prepare_main, "a target video -> a prepared training directory"),
    "fit": Command(fit_main, "train a target model on a prepared directory (resumable)"),
    "evaluate": Command(evaluate_main, "held-out self-reconstruction; --synthetic: unseen poses"),
}


def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train COMMAND ...``: runs one of :data:`COMMANDS` (:func:`realtime.cli.run_command`)."""
    return run_command(
        "python -m train",
        "Train a target model: prepare its video, fit the generator stages, evaluate the result.",
        COMMANDS,
        argv,
        command_line=command_line,
    )
