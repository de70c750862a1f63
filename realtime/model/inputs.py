"""The generator's inputs and output, declared once (DESIGN.md, "Generator inputs").

Every generator input is a float32 image tensor ``(B, C, H, W)`` in [0, 1] at the target canvas, with a
name, a channel count and a role:

- ``per_frame``: made from the current (normalized) pose, like the stick figure. Each has a *producer*
  that the live pipeline, the offline tool, the training dataset and the evaluation all call, so a model sees
  at run time exactly what it was trained on.
- ``state``: the generator's own previous output (Everybody Dance Now's temporal conditioning, Chan et al.
  2019, Sec. 3.2): zeros for a sequence's first frame, then the last generated frame.
- ``per_target``: fixed for a target (a reference appearance, a background plate). Declared here so that the
  sidecar can record it; no bundled model uses one yet, and building a model with one raises.

A model's :class:`GeneratorInputs` is an ordered selection of declared inputs. Its order is the order in
which the generator concatenates its input channels and the order of the exported graph's inputs. Models
size their first layer from :attr:`GeneratorInputs.in_channels`, the dataset yields batches keyed by the
names, export names the ONNX inputs from them, the sidecar records the whole declaration, and the pipeline
feeds them by name. Adding an input is: :func:`declare_input` it with a producer, list its name in the
training config (``generator.extra_inputs``), train.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


class InputRole(str, enum.Enum):
    """Where an input's value comes from (see the module docstring)."""

    PER_FRAME = "per_frame"
    STATE = "state"
    PER_TARGET = "per_target"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a generator: float32 ``(B, channels, H, W)`` in [0, 1].

    Attributes:
        name: the tensor's name in batches, engines and sidecars (a Python identifier).
        channels: channel count (>= 1).
        role: where the value comes from (:class:`InputRole`); an output's role is ``per_frame``.
        description: one line for people.

    Raises:
        ValueError: for an empty or non-identifier name, or ``channels < 1``.
    """

    name: str
    channels: int
    role: InputRole = InputRole.PER_FRAME
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"a tensor name must be an identifier, got {self.name!r}")
        if int(self.channels) < 1:
            raise ValueError(f"{self.name}: channels must be >= 1, got {self.channels}")
        object.__setattr__(self, "role", InputRole(self.role))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": int(self.channels),
            "role": self.role.value,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        """Raises ValueError (or KeyError/TypeError) for a malformed entry."""
        return cls(
            str(data["name"]), int(data["channels"]), InputRole(data["role"]), data.get("description", "")
        )


#: The stick figure of the current normalized pose (:func:`realtime.pose.render.rasterize_stick_figure`).
STICK_FIGURE = TensorSpec("stick_figure", 3, InputRole.PER_FRAME, "stick figure of the normalized pose, RGB")
#: The generator's previous output (zeros for a sequence's first frame).
PREVIOUS_FRAME = TensorSpec("previous_frame", 3, InputRole.STATE, "the previous generated frame, RGB")
#: The main generator's output.
FRAME = TensorSpec("frame", 3, InputRole.PER_FRAME, "the generated frame, RGB")

#: The face generator's tensors (Everybody Dance Now's face GAN, Sec. 3.3): the stick figure's and the
#: generated frame's face crops in, each ``(B, 3, S, S)`` in [0, 1]; the residual out, in [-1, 1].
FACE_STICK_FIGURE = TensorSpec("face_stick_figure", 3, InputRole.PER_FRAME, "face crop of the stick figure")
FACE_FRAME = TensorSpec("face_frame", 3, InputRole.PER_FRAME, "face crop of the generated frame")
FACE_RESIDUAL = TensorSpec("face_residual", 3, InputRole.PER_FRAME, "residual in [-1, 1] added to the crop")


@dataclass(frozen=True)
class FrameContext:
    """What a per-frame producer sees: one batch of normalized poses and their stick figures.

    Attributes:
        joints_px: float32 ``(B, NUM_JOINTS, 2)``, joint x, y in canvas pixels (NaN where missing).
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1].
        stick_figure: float32 ``(B, 3, H, W)`` in [0, 1], the stick figure already drawn for these poses.
    """

    joints_px: torch.Tensor
    confidence: torch.Tensor
    stick_figure: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.stick_figure.shape[0])

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return int(self.stick_figure.shape[-2]), int(self.stick_figure.shape[-1])


#: A per-frame producer: the context in, float32 ``(B, channels, H, W)`` in [0, 1] out, on the context's
#: device.
Producer = Callable[[FrameContext], torch.Tensor]

_DECLARED: dict[str, TensorSpec] = {}
_PRODUCERS: dict[str, Producer] = {}


def declare_input(spec: TensorSpec, producer: Producer | None = None, *, replace: bool = False) -> TensorSpec:
    """Declare a generator input (once per process; idempotent for the same spec and producer).

    Args:
        spec: the input.
        producer: required for a ``per_frame`` input, forbidden for the others.
        replace: allow redeclaring a name with another spec or producer (tests).

    Returns:
        ``spec``.

    Raises:
        ValueError: if a ``per_frame`` input has no producer (or another role has one), or the name is
            declared already with another spec or producer and ``replace`` is False.
    """
    if (spec.role is InputRole.PER_FRAME) != (producer is not None):
        raise ValueError(
            f"{spec.name}: a per_frame input needs a producer, and only a per_frame input has one"
        )
    if not replace and spec.name in _DECLARED:
        if _DECLARED[spec.name] != spec or _PRODUCERS.get(spec.name) is not producer:
            raise ValueError(f"generator input {spec.name!r} is declared already as {_DECLARED[spec.name]}")
        return spec
    _DECLARED[spec.name] = spec
    if producer is not None:
        _PRODUCERS[spec.name] = producer
    else:
        _PRODUCERS.pop(spec.name, None)
    return spec


def forget_input(name: str) -> None:
    """Remove a declared input (tests that declare their own). Unknown names are ignored."""
    _DECLARED.pop(name, None)
    _PRODUCERS.pop(name, None)


def declared_input(name: str) -> TensorSpec:
    """The declared input called ``name``.

    Raises:
        KeyError: with the declared names, if there is none.
    """
    if name not in _DECLARED:
        raise KeyError(f"no generator input {name!r} is declared; declared: {sorted(_DECLARED)}")
    return _DECLARED[name]


declare_input(STICK_FIGURE, lambda context: context.stick_figure)
declare_input(PREVIOUS_FRAME)


@dataclass(frozen=True)
class GeneratorInputs:
    """A generator's ordered inputs and its output.

    Attributes:
        inputs: the inputs, in channel-concatenation and graph-input order.
        output: the generated tensor (its name is the graph's output name).

    Raises:
        ValueError: for no inputs, duplicate names, or a state input whose channels differ from the output's
            (a state input is fed the previous output).
    """

    inputs: tuple[TensorSpec, ...]
    output: TensorSpec = FRAME

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.inputs]
        if not names:
            raise ValueError("a generator needs at least one input")
        if len(set(names)) != len(names) or self.output.name in names:
            raise ValueError(f"generator tensor names must be unique, got {names} -> {self.output.name}")
        for spec in self.inputs:
            if spec.role is InputRole.STATE and spec.channels != self.output.channels:
                raise ValueError(
                    f"state input {spec.name} has {spec.channels} channels but the output "
                    f"{self.output.name} has {self.output.channels}"
                )

    @classmethod
    def of(cls, names: Sequence[str], output: TensorSpec = FRAME) -> GeneratorInputs:
        """The declared inputs ``names`` in that order.

        Raises:
            KeyError: for a name that is not declared (:func:`declare_input`).
        """
        return cls(tuple(declared_input(name) for name in names), output)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def in_channels(self) -> int:
        """Channels of the concatenated input (the first layer's input channels)."""
        return sum(spec.channels for spec in self.inputs)

    @property
    def temporal(self) -> bool:
        """Whether the generator is conditioned on its previous output."""
        return any(spec.role is InputRole.STATE for spec in self.inputs)

    def with_role(self, role: InputRole) -> tuple[TensorSpec, ...]:
        return tuple(spec for spec in self.inputs if spec.role is role)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [spec.to_json() for spec in self.inputs], "output": self.output.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratorInputs:
        """Raises ValueError (or KeyError/TypeError) for a malformed declaration."""
        return cls(
            tuple(TensorSpec.from_json(entry) for entry in data["inputs"]),
            TensorSpec.from_json(data["output"]),
        )


#: The inputs of Everybody Dance Now's temporal generator, and of one without the previous frame.
TEMPORAL_INPUTS = GeneratorInputs((STICK_FIGURE, PREVIOUS_FRAME))
SINGLE_FRAME_INPUTS = GeneratorInputs((STICK_FIGURE,))
#: The face generator's inputs and output.
FACE_INPUTS = GeneratorInputs((FACE_STICK_FIGURE, FACE_FRAME), FACE_RESIDUAL)


def produce_frame_inputs(spec: GeneratorInputs, context: FrameContext) -> dict[str, torch.Tensor]:
    """The ``per_frame`` inputs of ``spec`` for one batch of poses, by name.

    Returns:
        float32 ``(B, channels, H, W)`` tensors in [0, 1] on the context's device.

    Raises:
        KeyError: if an input of ``spec`` is not declared in this process (declare it first).
        ValueError: if a producer returns the wrong shape or dtype.
    """
    out = {}
    batch, (height, width) = context.batch, context.canvas_hw
    for item in spec.with_role(InputRole.PER_FRAME):
        if item.name not in _PRODUCERS:
            raise KeyError(f"generator input {item.name!r} has no producer in this process; declare it first")
        value = _PRODUCERS[item.name](context)
        if value.dtype != torch.float32 or tuple(value.shape) != (batch, item.channels, height, width):
            raise ValueError(
                f"the producer of {item.name} returned {value.dtype} {tuple(value.shape)}, expected float32 "
                f"{(batch, item.channels, height, width)}"
            )
        out[item.name] = value
    return out


def check_buildable(spec: GeneratorInputs) -> None:
    """Raises ValueError if ``spec`` uses a role that nothing in this project feeds yet (``per_target``)."""
    per_target = spec.with_role(InputRole.PER_TARGET)
    if per_target:
        raise ValueError(
            f"per_target inputs {[s.name for s in per_target]} are declared but not fed by the dataset or "
            "the pipeline yet"
        )
