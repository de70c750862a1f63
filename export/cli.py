"""The export command lines: ``python -m export onnx CHECKPOINT OUT.onnx`` (:mod:`export.onnx`) and
``python -m export tensorrt TARGET.onnx TARGET.plan`` (:mod:`export.tensorrt`).

Light on purpose: each command parses its arguments before it imports its library module (PyTorch, ONNX,
TensorRT), so that ``--help`` and argument errors answer at once (the pattern of :mod:`realtime.cli`); the
defaults and choices shown come from :mod:`realtime.catalog`, which the library modules use too. Each
``*_main(argv)`` is callable from Python.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from realtime.catalog import (
    DEFAULT_TENSORRT_MAX_BATCH,
    ONNX_VS_TORCH_ATOL,
    TENSORRT_PRECISIONS,
    TENSORRT_TIMING_CACHE_NAME,
)
from realtime.cli import Command, existing_file, positive_float, positive_int, run_command

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def build_onnx_parser() -> argparse.ArgumentParser:
    """``python -m export onnx``'s command line."""
    parser = argparse.ArgumentParser(
        prog="python -m export onnx",
        description="Export a training checkpoint's generator to ONNX and to PyTorch inference weights "
        "(OUT.pt) with its JSON sidecar (and, after a face stage, the face model as OUT.face.onnx and "
        "OUT.face.pt), and verify ONNX Runtime against PyTorch on random inputs (prints the maximum absolute "
        "error). A run trained with the student stage (train fit's default) exports both its models into one "
        "bundle: the teacher as OUT.onnx and the real-time student as OUT.student.onnx (+ OUT.student.pt), "
        "with one sidecar saying which is which; the server runs the student on a CPU and the teacher on a "
        "GPU (server.py --model overrides).",
    )
    parser.add_argument("checkpoint", type=existing_file, help="training checkpoint (RUN/checkpoint.pt)")
    parser.add_argument("out", type=Path, help="output .onnx file; the sidecar goes beside it as .json")
    parser.add_argument("--name", default=None, help="target name in the sidecar (default: the file stem)")
    parser.add_argument(
        "--atol",
        type=positive_float,
        default=ONNX_VS_TORCH_ATOL,
        help=f"allowed max |onnxruntime - torch| (default {ONNX_VS_TORCH_ATOL})",
    )
    parser.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="for a bundle with a real-time student: time the student on this CPU with 1 and 2 ONNX Runtime "
        "threads, fp32 and int8, and record the fastest at kept quality in the sidecar (int8 only where it "
        "is faster by 5%% with frames within 1 level of fp32's); takes a few seconds",
    )
    return parser


def onnx_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m export onnx``: prints what was written and the verification's error; exit code 2 for an
    unreadable checkpoint or a failed export. (``command_line`` is accepted for
    :func:`realtime.cli.run_command`.)"""
    del command_line
    args = build_onnx_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    from export.onnx import ExportError, export_onnx
    from train.checkpoint import CheckpointError

    try:
        report = export_onnx(args.checkpoint, args.out, name=args.name, atol=args.atol, tune=args.tune)
    except (CheckpointError, ExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.onnx_path} and {report.sidecar_path}; "
        f"max |onnxruntime - torch| = {report.max_abs_error:.3g} (tolerance {args.atol:.3g})"
    )
    if report.face_onnx_path is not None:
        print(
            f"wrote the face model {report.face_onnx_path}; "
            f"max |onnxruntime - torch| = {report.face_max_abs_error:.3g} (tolerance {args.atol:.3g})"
        )
    if report.student_onnx_path is not None:
        print(
            f"wrote the real-time student {report.student_onnx_path} (the teacher is {report.onnx_path}); "
            f"max |onnxruntime - torch| = {report.student_max_abs_error:.3g} (tolerance {args.atol:.3g})"
        )
    if report.tuning is not None:
        chosen = report.tuning.chosen
        print(f"the student on this CPU, measured (chosen: {chosen.threads} thread(s), {chosen.precision}):")
        print(report.tuning.table())
    return 0


def build_tensorrt_parser() -> argparse.ArgumentParser:
    """``python -m export tensorrt``'s command line."""
    parser = argparse.ArgumentParser(
        prog="python -m export tensorrt",
        description="Build TARGET.plan (and TARGET.face.plan) from TARGET.onnx on this GPU with TensorRT "
        "10/11: an fp16 graph with instance normalization in fp32 (checked against fp32 in ONNX Runtime), a "
        "strongly typed network, batch 1..N, a reused timing cache; the engine is checked against ONNX "
        "Runtime and the build (TensorRT version, GPU, precision) is recorded in TARGET.json.",
    )
    parser.add_argument("onnx", type=existing_file, help="TARGET.onnx written by python -m export onnx")
    parser.add_argument("plan", type=Path, help="TARGET.plan to write (same stem)")
    parser.add_argument("--precision", choices=TENSORRT_PRECISIONS, default=TENSORRT_PRECISIONS[0])
    parser.add_argument(
        "--max-batch", type=positive_int, default=DEFAULT_TENSORRT_MAX_BATCH, help="profile's largest batch"
    )
    parser.add_argument(
        "--timing-cache", type=Path, default=None, help=f"default: {TENSORRT_TIMING_CACHE_NAME} beside"
    )
    parser.add_argument(
        "--atol", type=positive_float, default=None, help="TensorRT vs ONNX Runtime tolerance"
    )
    return parser


def tensorrt_main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m export tensorrt``: prints what was built and the verification's errors; exit code 2 without
    TensorRT or CUDA, without a sidecar, or for a failed build or verification. (``command_line`` is accepted
    for :func:`realtime.cli.run_command`.)"""
    del command_line
    args = build_tensorrt_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    from export.tensorrt import FP16_VS_FP32_ATOL, TensorRTExportError, export_tensorrt
    from realtime.model.backends import BackendError
    from realtime.model.bundle import BundleError

    try:
        report = export_tensorrt(
            args.onnx, args.plan, precision=args.precision, max_batch=args.max_batch,
            timing_cache=args.timing_cache, atol=args.atol,
        )  # fmt: skip
    except (BackendError, BundleError, TensorRTExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.plan_path} ({report.precision}); max |tensorrt - onnxruntime| = "
          f"{report.tensorrt_vs_onnxruntime_error:.3g}; record {report.record}")  # fmt: skip
    if report.fp16_vs_fp32_error is not None:
        print(
            f"fp16 graph: max |fp16 - fp32| = {report.fp16_vs_fp32_error:.3g} (tolerance {FP16_VS_FP32_ATOL})"
        )
    if report.face_plan_path is not None:
        print(f"wrote {report.face_plan_path}; max |tensorrt - onnxruntime| = "
              f"{report.face_tensorrt_vs_onnxruntime_error:.3g}")  # fmt: skip
    return 0


#: ``python -m export``'s commands, in the order they run.
COMMANDS = {
    "onnx": Command(onnx_main, "a training checkpoint -> NAME.onnx, NAME.pt and the sidecar, verified"),
    "tensorrt": Command(tensorrt_main, "NAME.onnx -> NAME.plan on this GPU (TensorRT), verified"),
}


def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
    """``python -m export COMMAND ...``: runs one of :data:`COMMANDS` (:func:`realtime.cli.run_command`)."""
    return run_command(
        "python -m export",
        "Turn a training checkpoint into the engines the live server runs.",
        COMMANDS,
        argv,
        command_line=command_line,
    )
