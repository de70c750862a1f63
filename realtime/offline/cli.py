"""The offline tool's command line: ``python -m realtime.offline [--engine T.onnx] --source S.mp4 --out
R.mp4`` writes a video of the source, its normalized stick figure and the generated target side by side
(:func:`realtime.offline.retarget.retarget_video`); ``python -m realtime.offline --action wave --seconds 4
--out wave.mp4`` writes the target performing an action, stick figure and generated target side by side, no
source video needed (:func:`realtime.offline.action.render_action`).

Light on purpose: it parses its arguments before it imports the pipeline (NumPy, PyTorch, MediaPipe), so that
``--help`` and argument errors answer at once (the pattern of :mod:`realtime.cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.catalog import ENGINE_SUFFIXES, GARMENTS, MODEL_CHOICES, MODEL_HELP
from realtime.cli import add_log_level, existing_file, positive_float, positive_int, rgb_colour, setup_logging
from realtime.targets import DEFAULT_TARGET


def odd_window(text: str) -> int:
    """A median window: an odd whole number >= 1.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    window = positive_int(text)
    if window % 2 == 0:
        raise argparse.ArgumentTypeError(f"the median window must be odd, got {window}")
    return window


def build_parser() -> argparse.ArgumentParser:
    """``python -m realtime.offline``'s command line."""
    parser = argparse.ArgumentParser(
        prog="python -m realtime.offline",
        description="Retarget a source video onto a trained target offline: writes a video with the source, "
        "its normalized stick figure and the generated target side by side, and prints the frames per second "
        "achieved. With --action instead of --source: the target performs an action (the bundled action "
        "model), stick figure and generated target side by side.",
    )
    parser.add_argument(
        "--engine",
        type=existing_file,
        default=DEFAULT_TARGET,
        help=f"target engine ({', '.join(ENGINE_SUFFIXES)}) with its .json sidecar (default: the bundled "
        f"synthetic mannequin, {DEFAULT_TARGET.name})",
    )
    parser.add_argument("--model", choices=MODEL_CHOICES, default="auto", help=MODEL_HELP)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", type=existing_file, help="source (driving) video")
    what.add_argument(
        "--action",
        metavar="LABEL",
        help="no source: the target performs this action (e.g. wave, clap, point, arm_pump, idle_sway, turn)",
    )
    parser.add_argument("--seconds", type=positive_float, default=4.0, help="--action's duration (default 4)")
    parser.add_argument("--fps", type=positive_float, default=30.0, help="--action's frame rate (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="--action's noise seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    parser.add_argument(
        "--max-frames", type=positive_int, default=None, help="retarget only the first N frames"
    )
    parser.add_argument(
        "--median-window",
        type=odd_window,
        default=5,
        help="temporal median window in frames, odd; 1 = off (default 5)",
    )
    for garment, parts in GARMENTS.items():
        parser.add_argument(
            f"--{garment}-colour",
            type=rgb_colour,
            default=None,
            metavar="#RRGGBB",
            help=f"recolour the {garment} garment ({', '.join(parts)}) of a target trained with the "
            "appearance prior",
        )
    add_log_level(parser)
    return parser


def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m realtime.offline``: prints the frames written and the throughput; exit code 2 for a bad
    engine or source video. ``command_line`` (default: ``argv`` is None) says the process is the command
    itself (see :func:`realtime.cli.setup_logging`)."""
    command_line = argv is None if command_line is None else command_line
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, command_line=command_line)
    from realtime.model.pipeline import Target
    from realtime.offline.action import render_action
    from realtime.offline.retarget import retarget_video
    from realtime.video import VideoError

    if args.action is not None:
        try:
            target = Target.load(args.engine, model=args.model)
            action = render_action(target, args.action, args.seconds, args.out, fps=args.fps, seed=args.seed)
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"wrote {args.out}: {args.action} for {action.seconds:.2f} s, {action.num_frames} frames at "
            f"{action.fps:g} fps; generate {action.generate_fps:.1f} fps"
        )
        return 0
    try:
        target = Target.load(args.engine, model=args.model)
        colours = {g: getattr(args, f"{g}_colour") for g in GARMENTS if getattr(args, f"{g}_colour")}
        report = retarget_video(
            target, args.source, args.out, max_frames=args.max_frames, median_window=args.median_window,
            garment_colours=colours,
        )  # fmt: skip
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {report.num_frames} frames ({report.frames_with_person} with a person); "
        f"pose {report.pose_fps:.1f} fps, generate {report.generate_fps:.1f} fps, "
        f"overall {report.overall_fps:.1f} fps"
    )
    return 0
