"""The action models' command lines: ``python -m train.actions data|fit|sample|evaluate ...``.

- ``python -m train.actions data --out SEQS.npz [--labels LABELS.csv] [--synthetic]``: labelled sequences to
  a file (real clips of a label file, :mod:`train.actions.clips`, and/or the synthetic choreography).
- ``python -m train.actions fit synthetic|SEQS.npz --out RUN [--max-minutes M] [key=value ...]``: the
  classifier, then PSGAN (:mod:`train.actions.fit`); resumes a run folder with a checkpoint.
- ``python -m train.actions sample RUN --label wave --seconds 4 --out seq.npy``: one generated sequence
  (and ``seq.json``: its frame rate and space).
- ``python -m train.actions evaluate RUN [--sheet OUT.png] [--onnx ACTIONS.onnx]``: the accuracy, diversity
  and smoothness table (:mod:`train.actions.evaluate`), of the run's generator or an exported one.
- ``python -m train.actions export RUN --out realtime/targets/actions.onnx``: the generator as ONNX with its
  sidecar ``actions.json``, the artifact the live code loads (:mod:`train.actions.export`).

Light, as :mod:`train.cli`: each command parses its arguments before it imports PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from realtime.catalog import DEFAULT_POSE_ESTIMATOR, pose_estimator_names
from realtime.cli import (
    Command,
    add_log_level,
    existing_file,
    positive_float,
    positive_int,
    run_command,
    setup_logging,
)


def _labels_help() -> str:
    from train.actions.sequences import ACTION_LABELS

    return ", ".join(ACTION_LABELS)


# -- data ----------------------------------------------------------------------------------------------------
def data_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions data``: writes a sequence file; exit code 2 for a bad label file or video."""
    parser = argparse.ArgumentParser(
        prog="python -m train.actions data",
        description="Labelled pose sequences in the normalized joint space to a .npz: real clips of a label "
        "file (CSV: video,start_s,end_s,label[,split]) through the pose estimator, and/or the synthetic "
        f"choreography. Labels: {_labels_help()}.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--labels", type=existing_file, default=None, help="label file of real clips (CSV)")
    parser.add_argument("--synthetic", action="store_true", help="add the synthetic choreography")
    parser.add_argument("--config", type=Path, default=None, help="actions config (its data.* settings)")
    parser.add_argument(
        "--pose-estimator",
        choices=pose_estimator_names(),
        default=DEFAULT_POSE_ESTIMATOR,
        help="for real clips",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.fps=15"
    )
    add_log_level(parser, "info")
    args = parser.parse_intermixed_args(argv)
    setup_logging(args.log_level, command_line=argv is None if command_line is None else command_line)
    if args.labels is None and not args.synthetic:
        print("error: give --labels FILE, --synthetic or both", file=sys.stderr)
        return 2
    from realtime.video import VideoError
    from train.actions.choreography import synthetic_sequences
    from train.actions.clips import clip_sequences
    from train.actions.config import load_actions_config
    from train.actions.sequences import concatenate, save_sequences

    try:
        config = load_actions_config(args.config, args.overrides)
        parts = []
        if args.labels is not None:
            parts.append(clip_sequences(args.labels, num_frames=config.data.num_frames, fps=config.data.fps,
                                        pose_estimator=args.pose_estimator))  # fmt: skip
        if args.synthetic:
            parts.append(synthetic_sequences(config.data))
        data = concatenate(parts)
    except (OSError, ValueError, VideoError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    save_sequences(args.out, data)
    clips = ~data.synthetic
    print(
        f"wrote {args.out}: {len(data.labels)} sequences of {data.num_frames} frames at {data.fps:g} fps "
        f"({int(data.heldout.sum())} held out); real-clip windows: {int(clips.sum())} "
        f"({int((clips & data.heldout).sum())} held out), synthetic: {int((~clips).sum())} "
        f"({int((~clips & data.heldout).sum())} held out)"
    )
    return 0


# -- fit -----------------------------------------------------------------------------------------------------
def fit_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions fit``: prints the checkpoint written; exit code 2 for bad data or config."""
    from train.actions.config import DEFAULT_ACTIONS_CONFIG_PATH, actions_config_keys

    parser = argparse.ArgumentParser(
        prog="python -m train.actions fit",
        description="Train the action classifier on the real (training-split) sequences, then PSGAN (a GRU "
        "generator from noise and an action label, a label-conditioned GRU discriminator). Resumes RUN if it "
        "has a checkpoint. Ctrl-C saves a checkpoint and exits.",
        epilog="examples:\n  python -m train.actions fit synthetic --out runs/actions --max-minutes 7\n"
        "  python -m train.actions fit seqs.npz --out runs/actions steps=5000 generator.hidden=64\n"
        + textwrap.fill("keys: " + " ".join(actions_config_keys()), 108, subsequent_indent="  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", help="'synthetic' or a sequence file (python -m train.actions data)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created; resumed if it has one)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default: {DEFAULT_ACTIONS_CONFIG_PATH} for a new run, the checkpoint's when "
        "resuming)",
    )
    parser.add_argument(
        "--max-minutes",
        type=positive_float,
        default=None,
        help="training time budget in minutes, summed over resumes (sets max_minutes)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=500")
    add_log_level(parser, "info")
    args = parser.parse_intermixed_args(argv)
    setup_logging(args.log_level, command_line=argv is None if command_line is None else command_line)
    if args.data != "synthetic" and not Path(args.data).is_file():
        print(f"error: data {args.data!r} is neither 'synthetic' nor a sequence file", file=sys.stderr)
        return 2
    from train.actions.checkpoint import load_actions_checkpoint
    from train.actions.config import load_actions_config
    from train.actions.fit import fit_actions
    from train.checkpoint import CheckpointError

    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"max_minutes={args.max_minutes}")
    try:
        existing = args.out / "checkpoint.pt"
        base = load_actions_checkpoint(existing).config if existing.is_file() else None
        path = args.config if args.config is not None or base is not None else DEFAULT_ACTIONS_CONFIG_PATH
        config = load_actions_config(path, overrides, base=base)
        data = args.data if args.data == "synthetic" else str(Path(args.data).resolve())
        checkpoint = fit_actions(data, args.out, config, show_progress=args.progress, report=print)
    except (OSError, ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {checkpoint}")
    return 0


# -- sample --------------------------------------------------------------------------------------------------
def sample_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions sample``: writes one generated sequence; exit code 2 for a bad run, label."""
    parser = argparse.ArgumentParser(
        prog="python -m train.actions sample",
        description="Generate one pose sequence of an action label: a .npy of float32 (T, 23, 2) normalized "
        "keypoints, and beside it a .json with its frame rate, label and space.",
    )
    parser.add_argument("run", type=Path, help="run folder or its checkpoint.pt")
    parser.add_argument("--label", required=True, help=f"one of: {_labels_help()}")
    parser.add_argument("--seconds", type=positive_float, default=4.0, help="duration (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="the .npy to write")
    add_log_level(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, command_line=argv is None if command_line is None else command_line)
    from train.actions.evaluate import sample_sequence
    from train.checkpoint import CheckpointError

    try:
        out, meta = sample_sequence(args.run, args.label, args.seconds, args.out, seed=args.seed)
    except (OSError, ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {meta}")
    return 0


# -- evaluate ------------------------------------------------------------------------------------------------
def evaluate_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions evaluate``: prints the table; exit code 2 for a bad run or data."""
    parser = argparse.ArgumentParser(
        prog="python -m train.actions evaluate",
        description="Score a run's generated sequences as Yang et al. (ECCV 2018): the action classifier's "
        "accuracy per label on held-out real and on generated sequences, diversity (mean distance between "
        "sequences of one label) and smoothness (joint speed and acceleration, median and p95), real beside "
        "generated. Units: canvas sides of the normalized joint space (per second, per second squared).",
    )
    parser.add_argument("run", type=Path, help="run folder or its checkpoint.pt")
    parser.add_argument("--generated", type=positive_int, default=60, help="generated sequences per label")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--sheet", type=Path, default=None, help="also write a PNG sheet of generated frames")
    parser.add_argument("--sheet-frames", type=positive_int, default=6, help="figures per label row")
    parser.add_argument(
        "--onnx",
        type=existing_file,
        default=None,
        help="score this exported generator (.onnx + .json, e.g. realtime/targets/actions/actions.onnx) "
        "instead of the run's, with the run's classifier and held-out data",
    )
    add_log_level(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, command_line=argv is None if command_line is None else command_line)
    if args.generated < 2:
        print("error: --generated must be at least 2 (diversity needs pairs)", file=sys.stderr)
        return 2
    from train.actions.evaluate import evaluate_run
    from train.checkpoint import CheckpointError

    try:
        table, _ = evaluate_run(
            args.run,
            generated_per_label=args.generated,
            seed=args.seed,
            sheet=args.sheet,
            sheet_frames=args.sheet_frames,
            artifact=args.onnx,
        )
    except (OSError, ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table)
    if args.sheet is not None:
        print(f"wrote {args.sheet}")
    return 0


# -- export --------------------------------------------------------------------------------------------------
def export_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions export``: writes the runtime artifact; exit code 2 for a bad run or out."""
    parser = argparse.ArgumentParser(
        prog="python -m train.actions export",
        description="Write a run's PSGAN generator as ONNX (inputs: label index, step and sequence noise; "
        "output: (1, T, 23, 2) normalized keypoints, any T) and its .json sidecar (labels, fps, the "
        "reference body's statistics, noise sizes, the checkpoint's sha256): what realtime.model.actions "
        "loads.",
    )
    parser.add_argument("run", type=Path, help="run folder or its checkpoint.pt")
    parser.add_argument(
        "--out", type=Path, required=True, help="the .onnx to write (e.g. realtime/targets/actions.onnx)"
    )
    add_log_level(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, command_line=argv is None if command_line is None else command_line)
    from train.actions.export import export_actions
    from train.checkpoint import CheckpointError

    try:
        onnx_path, sidecar = export_actions(args.run, args.out)
    except (OSError, ValueError, RuntimeError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB) and {sidecar}")
    return 0


#: ``python -m train.actions``'s commands, in the order of the data flow.
COMMANDS = {
    "data": Command(data_main, "labelled sequences (real clips of a label file, synthetic) -> a .npz"),
    "fit": Command(fit_main, "train the action classifier and PSGAN (resumable)"),
    "sample": Command(sample_main, "one generated sequence of a label -> .npy (+ .json)"),
    "evaluate": Command(evaluate_main, "classifier accuracy, diversity, smoothness; --sheet PNG"),
    "export": Command(export_main, "the generator as ONNX + sidecar: the live code's action artifact"),
}


def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m train.actions COMMAND ...``: runs one of :data:`COMMANDS`."""
    return run_command(
        "python -m train.actions",
        "Pose sequences from an action label (PSGAN): data, training, sampling, evaluation.",
        COMMANDS,
        argv,
        command_line=command_line,
    )
