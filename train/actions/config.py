"""Typed, frozen configuration of the action models (PSGAN and the action classifier), loaded from a YAML
file plus ``key=value`` overrides, as :mod:`train.config` does for the target models.

Defaults are small, for a 2-core CPU: ``train/configs/actions.yaml`` holds them as a file to edit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from train.actions.choreography import ChoreographyConfig
from train.config import CONFIG_DIR, config_sources

DEFAULT_ACTIONS_CONFIG_PATH = CONFIG_DIR / "actions.yaml"
#: Adversarial losses of :class:`ActionsConfig` (``loss``): least squares (Mao et al., ICCV 2017) or the
#: original non-saturating one (Goodfellow et al. 2014).
GAN_LOSSES = ("lsgan", "bce")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class SequenceGeneratorConfig:
    """PSGAN's generator (:class:`train.actions.models.PoseSequenceGenerator`): a GRU from per-step noise,
    a per-sequence noise and a label embedding to joint offsets from the mean pose.

    ``step_noise_dim``, ``sequence_noise_dim``, ``label_dim``: input widths; ``hidden``: GRU width;
    ``layers``: stacked GRU layers.
    """

    step_noise_dim: int = 8
    sequence_noise_dim: int = 16
    label_dim: int = 16
    hidden: int = 128
    layers: int = 2

    def __post_init__(self) -> None:
        _require(
            min(self.step_noise_dim, self.sequence_noise_dim, self.label_dim, self.hidden, self.layers) >= 1,
            f"generator sizes must be >= 1, got {self}",
        )


@dataclass(frozen=True)
class SequenceDiscriminatorConfig:
    """PSGAN's discriminator (:class:`train.actions.models.PoseSequenceDiscriminator`): a GRU over poses and
    their velocities with a projection onto the label's embedding. ``hidden``: GRU width; ``layers``."""

    hidden: int = 128
    layers: int = 1

    def __post_init__(self) -> None:
        _require(self.hidden >= 1 and self.layers >= 1, f"discriminator sizes must be >= 1, got {self}")


@dataclass(frozen=True)
class ClassifierConfig:
    """The action classifier (:class:`train.actions.models.ActionClassifier`), trained on the real
    (training-split) sequences before PSGAN: ``channels`` of its 1D convolutions over time, ``steps`` of
    Adam at ``lr`` on batches of ``batch_size``."""

    channels: int = 64
    steps: int = 400
    lr: float = 2e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        _require(
            self.channels >= 1 and self.steps >= 0 and self.lr > 0 and self.batch_size >= 1,
            f"classifier needs channels >= 1, steps >= 0, lr > 0, batch_size >= 1, got {self}",
        )


@dataclass(frozen=True)
class ActionsConfig:
    """Everything ``python -m train.actions fit`` trains with.

    Attributes:
        data: the synthetic choreography (when the data is ``synthetic``; its ``num_frames`` and ``fps`` are
            also the training length and rate).
        generator, discriminator, classifier: the networks.
        loss: "lsgan" or "bce" (:data:`GAN_LOSSES`).
        steps: PSGAN optimizer steps (each one discriminator and one generator update).
        batch_size: sequences per step.
        lr_g, lr_d: Adam learning rates (betas 0.5, 0.999, as pix2pixHD).
        smooth_weight: weight of a generator term that matches the mean squared acceleration of the real
            batch (0: off).
        diversity_weight: weight of the mode-seeking term (MSGAN, Mao et al., CVPR 2019): each step makes a
            second sequence per label from other noise and the generator minimizes the inverse of the mean
            distance between the two (0: off, one sequence per step).
        max_minutes: stop (with a checkpoint) after this much training wall time; 0: no limit.
        checkpoint_every: steps between checkpoints.
        seed: torch's seed.
    """

    data: ChoreographyConfig = field(default_factory=ChoreographyConfig)
    generator: SequenceGeneratorConfig = field(default_factory=SequenceGeneratorConfig)
    discriminator: SequenceDiscriminatorConfig = field(default_factory=SequenceDiscriminatorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    loss: str = "lsgan"
    steps: int = 3000
    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    smooth_weight: float = 1.0
    diversity_weight: float = 0.2
    max_minutes: float = 0.0
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.loss in GAN_LOSSES, f"loss must be one of {GAN_LOSSES}, got {self.loss!r}")
        _require(
            self.steps >= 0 and self.batch_size >= 2 and self.checkpoint_every >= 1,
            f"steps >= 0, batch_size >= 2, checkpoint_every >= 1 needed, got {self.steps}, "
            f"{self.batch_size}, {self.checkpoint_every}",
        )
        _require(
            self.lr_g > 0
            and self.lr_d > 0
            and min(self.smooth_weight, self.diversity_weight, self.max_minutes) >= 0,
            "lr_g and lr_d must be > 0, smooth_weight, diversity_weight and max_minutes >= 0",
        )


def _merge(sources: Sequence[tuple[str, Any]]) -> ActionsConfig:
    merged = OmegaConf.structured(ActionsConfig)
    for description, node in sources:
        try:
            merged = OmegaConf.merge(merged, node)
        except OmegaConfBaseException as error:
            raise ValueError(f"{description}: {error}") from None
    try:
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ValueError(str(error)) from None
    assert isinstance(config, ActionsConfig)
    return config


def load_actions_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    base: ActionsConfig | None = None,
) -> ActionsConfig:
    """Defaults, then ``base`` (a resumed run's config, if given), then the YAML file at ``path`` (if given),
    then ``overrides`` like ``["steps=500"]``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unknown key, a value of the wrong type or range, or an override without ``=``.
    """
    return _merge(config_sources(base, path, overrides, str(DEFAULT_ACTIONS_CONFIG_PATH)))


def actions_config_to_dict(config: ActionsConfig) -> dict[str, Any]:
    """The config as plain data (tuples as lists), for checkpoints."""
    return OmegaConf.to_container(OmegaConf.structured(config))  # type: ignore[return-value]


def actions_config_from_dict(data: dict[str, Any]) -> ActionsConfig:
    """The inverse of :func:`actions_config_to_dict`.

    Raises:
        ValueError: for keys or values this code does not accept.
    """
    return _merge([("stored config", OmegaConf.create(data))])


def actions_config_keys() -> tuple[str, ...]:
    """Every dotted key of :class:`ActionsConfig` (for ``--help``), derived from the dataclasses."""

    def walk(cls: type, prefix: str) -> list[str]:
        keys = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):
                keys += walk(type(default), f"{prefix}{f.name}.")
            else:
                keys.append(prefix + f.name)
        return keys

    return tuple(walk(ActionsConfig, ""))
