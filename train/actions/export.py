"""Export a trained PSGAN generator as the runtime artifact the live code loads without this package:
``actions.onnx`` (the generator, noise given as inputs) and its sidecar ``actions.json``.

The ONNX graph (opset 17, ONNX's ``GRU`` operator, one sequence per run, any length)::

    inputs   label           int64 (1,)                           index into "labels" of the sidecar
             step_noise      float32 (1, T, step_noise_dim)       standard normal, T >= 2 frames
             sequence_noise  float32 (1, sequence_noise_dim)      standard normal
    output   keypoints       float32 (1, T, NUM_JOINTS, 2)        the normalized joint space
                                                                  (train.actions.sequences)

The sidecar (``ACTIONS_ARTIFACT_FORMAT_VERSION``) holds: ``format_version``, ``labels`` (class-index order),
``fps`` (the training frame rate, of every output frame), ``num_frames`` (the training length: sequences up
to a few times longer stay plausible), ``step_noise_dim``, ``sequence_noise_dim``, ``canvas_side_px`` and
``reference_stats`` (:func:`train.actions.sequences.canonical_stats` as
:meth:`realtime.pose.normalize.BodyStats.to_json`: the body and canvas that normalized coordinates times
``canvas_side_px`` are pixels of), ``joints`` (the joint names in order), the checkpoint's ``sha256``,
``step`` and ``data``. The reader is :mod:`realtime.model.actions`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.pose.skeleton import Joint
from train.actions.checkpoint import load_actions_checkpoint
from train.actions.models import PoseSequenceGenerator
from train.actions.sequences import ACTION_LABELS, CANONICAL_CANVAS_PX, canonical_stats

#: Format version of the sidecar written by :func:`export_actions` (read by realtime.model.actions).
ACTIONS_ARTIFACT_FORMAT_VERSION = 1
_OPSET = 17


class _NoiseInputGenerator(nn.Module):
    """The generator with its noise as inputs (ONNX has no seeded random source we want to rely on)."""

    def __init__(self, generator: PoseSequenceGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(
        self, label: torch.Tensor, step_noise: torch.Tensor, sequence_noise: torch.Tensor
    ) -> torch.Tensor:
        return self.generator(
            label, step_noise.shape[1], step_noise=step_noise, sequence_noise=sequence_noise
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_actions(run: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a run's generator as ONNX (``out``, e.g. ``realtime/targets/actions.onnx``) and its sidecar
    (``out`` with the suffix ``.json``), then check the ONNX model against PyTorch on one sequence.

    Args:
        run: the run folder or its ``checkpoint.pt`` (``python -m train.actions fit``).
        out: the ``.onnx`` file to write (its folder is created).

    Returns:
        the two paths written.

    Raises:
        FileNotFoundError, train.checkpoint.CheckpointError: for a missing or bad checkpoint.
        ValueError: if ``out`` does not end in ``.onnx``.
        RuntimeError: if ONNX Runtime's output differs from PyTorch's by more than 1e-4.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"the artifact must be an .onnx file, got {out}")
    checkpoint = load_actions_checkpoint(run)
    generator = checkpoint.build_generator()
    config = checkpoint.config.generator
    wrapper = _NoiseInputGenerator(generator).eval()
    rng = torch.Generator().manual_seed(0)
    example = (
        torch.tensor([0], dtype=torch.int64),
        torch.randn(1, checkpoint.num_frames, config.step_noise_dim, generator=rng),
        torch.randn(1, config.sequence_noise_dim, generator=rng),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on the generator's argument checks and on GRU batch sizes (batch is fixed at 1).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example,
            str(out),
            input_names=["label", "step_noise", "sequence_noise"],
            output_names=["keypoints"],
            dynamic_axes={"step_noise": {1: "frames"}, "keypoints": {1: "frames"}},
            opset_version=_OPSET,
            dynamo=False,
        )
    _check_onnx(out, wrapper, checkpoint.num_frames * 3, config.step_noise_dim, config.sequence_noise_dim)
    sidecar = out.with_suffix(".json")
    sidecar.write_text(
        json.dumps(
            {
                "format_version": ACTIONS_ARTIFACT_FORMAT_VERSION,
                "labels": list(ACTION_LABELS),
                "fps": checkpoint.fps,
                "num_frames": checkpoint.num_frames,
                "step_noise_dim": config.step_noise_dim,
                "sequence_noise_dim": config.sequence_noise_dim,
                "space": "normalized joint space (train.actions.sequences): canvas sides of a square canvas",
                "canvas_side_px": CANONICAL_CANVAS_PX,
                "reference_stats": canonical_stats().to_json(),
                "joints": [j.name for j in Joint],
                "checkpoint_sha256": _sha256(checkpoint.path),
                "step": checkpoint.step,
                "data": checkpoint.data,
            },
            indent=2,
        )
        + "\n"
    )
    return out, sidecar


def _check_onnx(path: Path, model: nn.Module, frames: int, step_dim: int, sequence_dim: int) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    inputs = {
        "label": np.array([len(ACTION_LABELS) - 1], np.int64),
        "step_noise": rng.standard_normal((1, frames, step_dim)).astype(np.float32),
        "sequence_noise": rng.standard_normal((1, sequence_dim)).astype(np.float32),
    }
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, inputs)
    with torch.no_grad():
        want = model(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    error = float(np.abs(got - want).max())
    if got.shape != want.shape or error > 1e-4:
        raise RuntimeError(
            f"{path}: ONNX output {got.shape} differs from PyTorch's {want.shape} by {error:g}"
        )
