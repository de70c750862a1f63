"""Export a training checkpoint's generator to ONNX, verified: ``python -m export.onnx CHECKPOINT OUT.onnx``.

Writes ``OUT.onnx`` and its sidecar ``OUT.json`` (DESIGN.md, "Target bundle"), then runs ONNX Runtime and
PyTorch on the same random inputs and fails if they differ by more than :data:`ONNX_VS_TORCH_ATOL`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realtime.bundle import (
    INPUT_PREVIOUS_FRAME,
    INPUT_STICK_FIGURE,
    OUTPUT_FRAME,
    TargetBundle,
    bundle_for_checkpoint,
    write_bundle,
)

log = logging.getLogger(__name__)

ONNX_OPSET = 17
#: Largest allowed absolute difference between ONNX Runtime and PyTorch outputs (values in [0, 1]), fp32.
ONNX_VS_TORCH_ATOL = 1e-4
#: Batch sizes of the random inputs compared during verification (the batch axis is dynamic).
VERIFY_BATCH_SIZES = (1, 2)


class ExportError(RuntimeError):
    """An export that failed or did not verify."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured (``max_abs_error``: ONNX Runtime vs PyTorch)."""

    onnx_path: Path
    sidecar_path: Path
    max_abs_error: float
    bundle: TargetBundle


def export_onnx(
    checkpoint_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    atol: float = ONNX_VS_TORCH_ATOL,
    seed: int = 0,
) -> ExportReport:
    """Export, write the sidecar, and verify against PyTorch.

    The graph takes ``stick_figure`` and ``previous_frame`` and returns ``frame``, each float32
    ``(batch, 3, H, W)`` in [0, 1]; the batch axis is dynamic.

    Raises:
        train.checkpoint.CheckpointError: for an unreadable checkpoint.
        ExportError: if the export fails or ONNX Runtime differs from PyTorch by more than ``atol``.
    """
    import onnx
    import onnxruntime as ort

    from train.checkpoint import load_generator

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output must end in .onnx, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    generator, _ = load_generator(checkpoint_path)
    generator.eval()
    bundle = bundle_for_checkpoint(checkpoint_path, name or out.stem)
    shape = (1, 3, bundle.canvas_height, bundle.canvas_width)
    example = (torch.rand(shape), torch.rand(shape))
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
                generator,
                example,
                str(tmp),
                input_names=[INPUT_STICK_FIGURE, INPUT_PREVIOUS_FRAME],
                output_names=[OUTPUT_FRAME],
                dynamic_axes={
                    n: {0: "batch"} for n in (INPUT_STICK_FIGURE, INPUT_PREVIOUS_FRAME, OUTPUT_FRAME)
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # the exporter raises many unrelated types; report them all the same way
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export of {checkpoint_path} failed: {exc}") from exc

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    rng = torch.Generator().manual_seed(seed)
    max_error = 0.0
    for batch in VERIFY_BATCH_SIZES:
        stick = torch.rand((batch, *shape[1:]), generator=rng)
        prev = torch.rand((batch, *shape[1:]), generator=rng)
        with torch.inference_mode():
            expected = generator(stick, prev).numpy()
        got = session.run(
            [OUTPUT_FRAME], {INPUT_STICK_FIGURE: stick.numpy(), INPUT_PREVIOUS_FRAME: prev.numpy()}
        )
        max_error = max(max_error, float(np.abs(got[0] - expected).max()))
    if not max_error <= atol:
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"ONNX Runtime differs from PyTorch by {max_error:.3g} > {atol:.3g}; nothing written"
        )
    os.replace(tmp, out)
    sidecar = write_bundle(out, bundle)
    log.info("exported %s (max |onnxruntime - torch| = %.3g)", out, max_error)
    return ExportReport(out, sidecar, max_error, bundle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.onnx",
        description="Export a training checkpoint's generator to ONNX with its JSON sidecar, and verify ONNX "
        "Runtime against PyTorch on random inputs (prints the maximum absolute error).",
    )
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (RUN/checkpoint.pt)")
    parser.add_argument("out", type=Path, help="output .onnx file; the sidecar goes beside it as .json")
    parser.add_argument("--name", default=None, help="target name in the sidecar (default: the file stem)")
    parser.add_argument(
        "--atol",
        type=float,
        default=ONNX_VS_TORCH_ATOL,
        help=f"allowed max |onnxruntime - torch| (default {ONNX_VS_TORCH_ATOL})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.checkpoint import CheckpointError

    try:
        report = export_onnx(args.checkpoint, args.out, name=args.name, atol=args.atol)
    except (CheckpointError, ExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.onnx_path} and {report.sidecar_path}; "
        f"max |onnxruntime - torch| = {report.max_abs_error:.3g} (tolerance {args.atol:.3g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
