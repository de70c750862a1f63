"""Training checkpoints: a plain dict of ``state_dict`` s plus step, resolved config, the prepared data's
metadata and a format version (nanoGPT style), written atomically and loaded strictly.

On disk (``torch.save``)::

    format_version  int, CHECKPOINT_FORMAT_VERSION
    step            int, optimizer steps done
    config          dict, the resolved FitConfig (train.config.config_to_dict)
    data_meta       dict, the prepared dataset's PreparedMeta.to_json() (canvas, rendering, statistics)
    generator, discriminator, optimizer_g, optimizer_d   state_dicts
    elapsed_s       float, training wall time summed over all invocations, seconds
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.config import FitConfig, config_from_dict, config_to_dict
from train.dataset import PreparedMeta
from train.models import GlobalGenerator, build_generator

CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of this format, or whose weights do not fit the model."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint. State dicts are as saved (tensors on ``map_location``)."""

    path: Path
    format_version: int
    step: int
    config: FitConfig
    data_meta: PreparedMeta
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    optimizer_g: dict[str, Any]
    optimizer_d: dict[str, Any]
    elapsed_s: float


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    step: int,
    config: FitConfig,
    data_meta: PreparedMeta,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    elapsed_s: float,
) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same directory, then ``os.replace``, so a
    crash never leaves a half-written ``path``. Creates the parent directory. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "step": int(step),
        "config": config_to_dict(config),
        "data_meta": data_meta.to_json(),
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "optimizer_g": optimizer_g.state_dict(),
        "optimizer_d": optimizer_d.state_dict(),
        "elapsed_s": float(elapsed_s),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


_KEYS = (
    "format_version",
    "step",
    "config",
    "data_meta",
    "generator",
    "discriminator",
    "optimizer_g",
    "optimizer_d",
)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: (a ValueError) if the file is not a checkpoint (corrupt, truncated, another kind of
            file), has another format version, or holds an invalid config or data metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with: python -m train.fit DIR --out RUN")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes can raise almost any exception type
        raise CheckpointError(
            f"not a checkpoint: {path} could not be read ({type(error).__name__}: {error}); "
            "it is corrupt or another kind of file: delete it to start over"
        ) from error
    if not isinstance(data, dict) or not all(key in data for key in _KEYS):
        raise CheckpointError(f"not a checkpoint: {path} does not hold the keys {', '.join(_KEYS)}")
    if data["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {data['format_version']}, this code reads "
            f"{CHECKPOINT_FORMAT_VERSION}; use the code version that wrote it"
        )
    try:
        config = config_from_dict(data["config"])
        data_meta = PreparedMeta.from_json(data["data_meta"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: stored config or data metadata is invalid: {error}") from None
    return Checkpoint(
        path=path,
        format_version=data["format_version"],
        step=int(data["step"]),
        config=config,
        data_meta=data_meta,
        generator=data["generator"],
        discriminator=data["discriminator"],
        optimizer_g=data["optimizer_g"],
        optimizer_d=data["optimizer_d"],
        elapsed_s=float(data.get("elapsed_s", 0.0)),
    )


def load_weights_strict(model: nn.Module, state_dict: dict[str, Any], *, what: str, expected: object) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with an error that names the config the weights
    were expected to fit.

    Raises:
        CheckpointError: on missing, unexpected or mis-shaped weights.
    """
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"the checkpoint's {what} weights do not fit a model built from {expected}: {error}"
        ) from None


def load_generator(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[GlobalGenerator, Checkpoint]:
    """The trained generator of a checkpoint, in eval mode on ``map_location``, and the checkpoint itself
    (for its config and ``data_meta``: canvas, rendering, statistics). For the exporter and the PyTorch
    inference backend.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint` and :func:`load_weights_strict`.
    """
    checkpoint = load_checkpoint(path, map_location)
    generator = build_generator(checkpoint.config.generator)
    load_weights_strict(
        generator, checkpoint.generator, what="generator", expected=checkpoint.config.generator
    )
    return generator.to(map_location).eval(), checkpoint
