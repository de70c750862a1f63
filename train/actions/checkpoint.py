"""The action models' checkpoint: a plain dict of ``state_dict`` s plus step, resolved config, the data's
frame rate and length and a format version (nanoGPT style, as :mod:`train.checkpoint`), written atomically
and loaded strictly. On disk (``torch.save``)::

    format_version   int, ACTIONS_CHECKPOINT_FORMAT_VERSION (1)
    kind             str, "psgan"
    step             int, PSGAN optimizer steps done
    config           dict, the resolved ActionsConfig (train.actions.config.actions_config_to_dict)
    data             str, what it trained on: "synthetic" or the path of a sequence file
    fps              float, frames per second of the training sequences (and of sampled ones)
    num_frames       int, frames per training sequence
    generator, discriminator, classifier, optimizer_g, optimizer_d   state_dicts
    classifier_steps int, optimizer steps the classifier was trained for (0: untrained)
    elapsed_s        float, training wall time summed over all invocations, seconds
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from train.actions.config import ActionsConfig, actions_config_from_dict, actions_config_to_dict
from train.actions.models import ActionClassifier, PoseSequenceDiscriminator, PoseSequenceGenerator
from train.checkpoint import CheckpointError, load_weights_strict, save_atomic

ACTIONS_CHECKPOINT_FORMAT_VERSION = 1
_KEYS = (
    "format_version", "kind", "step", "config", "data", "fps", "num_frames", "generator", "discriminator",
    "classifier", "optimizer_g", "optimizer_d", "classifier_steps", "elapsed_s",
)  # fmt: skip


@dataclass(frozen=True)
class ActionsCheckpoint:
    """A loaded action-model checkpoint (fields as in the module docstring; state dicts on the CPU)."""

    path: Path
    step: int
    config: ActionsConfig
    data: str
    fps: float
    num_frames: int
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    classifier: dict[str, Any]
    optimizer_g: dict[str, Any]
    optimizer_d: dict[str, Any]
    classifier_steps: int
    elapsed_s: float

    def build_generator(self) -> PoseSequenceGenerator:
        """The generator with its weights (strictly loaded), in eval mode.

        Raises:
            CheckpointError: if the weights do not fit the stored config.
        """
        model = PoseSequenceGenerator(self.config.generator)
        load_weights_strict(model, self.generator, what="generator", expected=self.config.generator)
        return model.eval()

    def build_classifier(self) -> ActionClassifier:
        """The action classifier with its weights (strictly loaded), in eval mode.

        Raises:
            CheckpointError: if the weights do not fit the stored config.
        """
        model = ActionClassifier(self.config.classifier)
        load_weights_strict(model, self.classifier, what="classifier", expected=self.config.classifier)
        return model.eval()

    def build_discriminator(self) -> PoseSequenceDiscriminator:
        """The discriminator with its weights (strictly loaded), in train mode.

        Raises:
            CheckpointError: if the weights do not fit the stored config.
        """
        model = PoseSequenceDiscriminator(self.config.discriminator)
        load_weights_strict(
            model, self.discriminator, what="discriminator", expected=self.config.discriminator
        )
        return model


def save_actions_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (temporary file in the same directory, then ``os.replace``).

    Args:
        path: the file to write (its folder is created).
        payload: every key of the module docstring but ``format_version`` and ``kind``; ``config`` an
            :class:`ActionsConfig`, the networks and optimizers as objects with ``state_dict()``.

    Raises:
        ValueError: if a key is missing.
    """
    missing = [k for k in _KEYS if k not in payload and k not in ("format_version", "kind")]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data: dict[str, Any] = {"format_version": ACTIONS_CHECKPOINT_FORMAT_VERSION, "kind": "psgan"}
    for key in _KEYS[2:]:
        value = payload[key]
        if key == "config":
            value = actions_config_to_dict(value)
        elif hasattr(value, "state_dict"):
            value = value.state_dict()
        data[key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_atomic(data, path)


def load_actions_checkpoint(path: str | os.PathLike[str]) -> ActionsCheckpoint:
    """Read a checkpoint of :func:`save_actions_checkpoint` (``torch.load(weights_only=True)``); ``path`` may
    be the run folder (its ``checkpoint.pt``).

    Raises:
        FileNotFoundError: if there is no such file.
        CheckpointError: (a ValueError) for a file that is not such a checkpoint, another format version or
            an invalid config.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no action checkpoint at {path}; train one with: python -m train.actions fit synthetic --out RUN"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes can raise almost any exception type
        raise CheckpointError(
            f"not a checkpoint: {path} could not be read ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(data, dict) or data.get("kind") != "psgan" or not all(k in data for k in _KEYS):
        raise CheckpointError(f"not an action (PSGAN) checkpoint: {path} lacks the keys {', '.join(_KEYS)}")
    if data["format_version"] != ACTIONS_CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has action checkpoint format {data['format_version']}, this code reads "
            f"{ACTIONS_CHECKPOINT_FORMAT_VERSION}; use the code version that wrote it"
        )
    try:
        config = actions_config_from_dict(data["config"])
    except ValueError as error:
        raise CheckpointError(f"{path}: stored config is invalid: {error}") from None
    return ActionsCheckpoint(
        path=path,
        step=int(data["step"]),
        config=config,
        data=str(data["data"]),
        fps=float(data["fps"]),
        num_frames=int(data["num_frames"]),
        generator=data["generator"],
        discriminator=data["discriminator"],
        classifier=data["classifier"],
        optimizer_g=data["optimizer_g"],
        optimizer_d=data["optimizer_d"],
        classifier_steps=int(data["classifier_steps"]),
        elapsed_s=float(data["elapsed_s"]),
    )
