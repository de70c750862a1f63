"""The command lines: ``python -m train.synthetic --out DIR`` (a dataset), ``python -m train.synthetic
source`` (the rendered source dancer) and ``python -m train evaluate --synthetic`` (the unseen-pose
evaluation, which :mod:`train.cli` hands over to here)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from realtime.catalog import MODEL_CHOICES, MODEL_HELP
from realtime.cli import (
    add_log_level,
    canvas_size,
    existing_file,
    fraction,
    positive_float,
    positive_int,
    setup_logging,
)
from train.catalog import (
    DEFAULT_SOURCE_FPS,
    DEFAULT_SOURCE_SECONDS,
    DEFAULT_SOURCE_SEED,
    DEFAULT_SOURCE_SIZE,
    MOTION_DANCE,
    MOTION_RESTRICTED,
    SYNTHETIC_MOTION_FRAMES,
)

# Every command line here parses its arguments before it imports the renderer, the evaluation or their
# dependencies (NumPy, PyTorch, MediaPipe): --help and argument errors answer at once.


def _main_generate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.synthetic",
        description="Write a prepared training directory (train.prepare's format) of a synthetic wooden "
        "mannequin dancing: generated motion, rendered frames, masks, stick figures, face boxes, statistics, "
        "and the last 15% held out. To compare a trained mannequin model with ground truth on real source "
        "videos' poses: python -m train evaluate --synthetic --help",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    motions = list(SYNTHETIC_MOTION_FRAMES)
    parser.add_argument(
        "--motion",
        choices=motions,
        default=motions[0],
        help=f"the mannequin's motion: {MOTION_DANCE} (default): varied dance-like moves over the whole "
        f"floor, arms anywhere, crouches and hops; {MOTION_RESTRICTED}: what a user records of themselves "
        "in a few seconds: standing, walking a little, turning round, arms low (hands below the chest), "
        "no wide stance, no crouch (a short recording, for measuring unseen poses)",
    )
    defaults = ", ".join(f"{frames} for {name}" for name, frames in SYNTHETIC_MOTION_FRAMES.items())
    parser.add_argument(
        "--frames", type=positive_int, default=None, help=f"number of frames (default: {defaults})"
    )
    parser.add_argument(
        "--size", type=canvas_size, default=(256, 256), help="canvas WIDTHxHEIGHT (default 256x256)"
    )
    parser.add_argument("--seed", type=int, default=0, help="motion seed (default 0)")
    parser.add_argument(
        "--heldout-fraction", type=fraction, default=0.15, help="last fraction held out (default 0.15)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.synthetic.dataset import write_synthetic_dataset
    from train.synthetic.motion import motion_preset

    frames = args.frames if args.frames is not None else SYNTHETIC_MOTION_FRAMES[args.motion]
    start = time.perf_counter()
    try:
        report = write_synthetic_dataset(
            args.out, num_frames=frames, width=args.size[0], height=args.size[1], seed=args.seed,
            heldout_fraction=args.heldout_fraction, motion_config=motion_preset(args.motion),
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = report.meta
    print(
        f"wrote {meta.num_frames} frames of {args.motion} motion ({meta.train_end} train, "
        f"{len(meta.heldout)} held out), "
        f"{meta.canvas_width}x{meta.canvas_height}, {report.size_bytes / 2**20:.0f} MiB, into {args.out} in "
        f"{time.perf_counter() - start:.1f} s (renderer {report.render_ms_per_frame:.2f} ms/frame); "
        f"preview: {args.out / 'preview.png'}"
    )
    return 0


def _main_evaluate(argv: list[str], command_line: bool) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train evaluate --synthetic",
        description="Drive a mannequin model with real source videos' poses (normalized as python -m "
        "realtime.offline does), render the mannequin in the same poses as ground truth, and "
        "compare: SSIM and PSNR over the frame and over the body region (the mannequin's silhouette box "
        "grown by 10% of its size on each side), the limb-direction agreement with the source frames "
        "(MediaPipe on both: median / p90 angle, elbows and wrists missed; as python -m train evaluate "
        "--sources reports for real targets), face SSIM, pose distance and missed joints, beside the "
        "same image figures for the empty room (no mannequin) against the same ground truth. Writes "
        "OUT/metrics.json and one sample sheet per source (source | stick figure | ground truth | "
        "generated).",
    )
    parser.add_argument(
        "--engine", type=existing_file, default=None, help="mannequin target (default: the bundled one)"
    )
    parser.add_argument("--model", choices=MODEL_CHOICES, default="auto", help=MODEL_HELP)
    parser.add_argument(
        "--source",
        type=existing_file,
        action="append",
        required=True,
        help="source video (repeat for several)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--max-frames", type=positive_int, default=None, help="only the first N frames of each"
    )
    parser.add_argument(
        "--median-window", type=positive_int, default=5, help="temporal median window (default 5)"
    )
    add_log_level(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, command_line=command_line)
    from realtime.video import VideoError
    from train.synthetic.evaluation import evaluate_synthetic

    engine = args.engine
    if engine is None:
        from realtime.targets import DEFAULT_TARGET

        engine = DEFAULT_TARGET
    try:
        evaluation = evaluate_synthetic(
            engine, args.source, args.out, max_frames=args.max_frames, median_window=args.median_window,
            model=args.model,
        )  # fmt: skip
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"engine {engine} ({evaluation.model})")
    for s in evaluation.sources:
        print(
            f"{Path(s.source).name}: {s.num_frames} frames ({s.frames_with_person} with a person): "
            f"SSIM {s.ssim:.4f}, PSNR {s.psnr_db:.2f} dB, body SSIM {s.body_ssim:.4f}, body PSNR "
            f"{s.body_psnr_db:.2f} dB ({s.body_frames} frames), face SSIM {s.face_ssim:.4f}, pose distance "
            f"{s.pose_distance_px:.2f} px, missed joints {s.missed_joint_rate:.1%} (on the ground truth: "
            f"{s.reference_pose_distance_px:.2f} px, {s.reference_missed_joint_rate:.1%}); generator "
            f"{s.generate_ms:.1f} ms/frame; sheet {s.sheet}"
        )
        print(
            f"  limb directions against the source: median {s.limb_direction_median_deg:.1f} deg, p90 "
            f"{s.limb_direction_p90_deg:.1f} deg, elbows+wrists missed {s.missed_arm_joint_rate:.1%} (on the "
            f"ground truth: {s.reference_limb_direction_median_deg:.1f} deg, "
            f"{s.reference_limb_direction_p90_deg:.1f} deg, {s.reference_missed_arm_joint_rate:.1%})"
        )
        print(
            f"  empty room against the same ground truth: SSIM {s.background_ssim:.4f}, PSNR "
            f"{s.background_psnr_db:.2f} dB, body SSIM {s.background_body_ssim:.4f}, body PSNR "
            f"{s.background_body_psnr_db:.2f} dB"
        )
    print(f"metrics: {args.out / 'metrics.json'}")
    return 0


def _main_source(argv: list[str]) -> int:
    import shutil

    parser = argparse.ArgumentParser(
        prog="python -m train.synthetic source",
        description="Write a rendered source (driving) video with no camera: a dancer unlike the bundled "
        "mannequin target (another body, clothes and room; choreographed moves on a beat). Rendered once per "
        "machine into a cache folder (DANCE_LIVE_CACHE, else ~/.cache/dance-live) and copied to --out. Then: "
        "python -m realtime.offline --source OUT --out demo.mp4",
    )
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    # The defaults are train.synthetic.source.SourceParams's, stated once in train.catalog.
    parser.add_argument(
        "--seconds", type=positive_float, default=DEFAULT_SOURCE_SECONDS, help="length (default %(default)g)"
    )
    parser.add_argument(
        "--fps", type=positive_float, default=DEFAULT_SOURCE_FPS, help="frame rate (default %(default)g)"
    )
    width, height = DEFAULT_SOURCE_SIZE
    parser.add_argument(
        "--size",
        type=canvas_size,
        default=DEFAULT_SOURCE_SIZE,
        help=f"frame WIDTHxHEIGHT (default {width}x{height})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SOURCE_SEED, help="motion seed (default %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.synthetic.source import SourceParams, cached_source_video

    params = SourceParams(
        seconds=args.seconds, fps=args.fps, width=args.size[0], height=args.size[1], seed=args.seed
    )
    try:
        video = cached_source_video(params)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video.path, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    how = "from the cache" if video.cached else f"rendered in {video.render_s:.1f} s"
    print(
        f"wrote {args.out}: {params.num_frames} frames, {params.width}x{params.height}, {params.fps:g} fps "
        f"({how}: {video.path})"
    )
    return 0


def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.synthetic [--out DIR ...]`` writes a dataset; ``... evaluate ...`` evaluates;
    ``... source --out VIDEO`` writes a rendered source dancer video. ``command_line`` (default: ``argv`` is
    None) says the process is the command itself (see :func:`realtime.cli.setup_logging`)."""
    command_line = argv is None if command_line is None else command_line
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"]:
        return _main_evaluate(argv[1:], command_line)
    if argv[:1] == ["source"]:
        return _main_source(argv[1:])
    return _main_generate(argv)
