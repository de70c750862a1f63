"""The generator's inputs and output, declared once (docs/architecture.md, "Generator inputs").

Every generator input is a float32 image tensor ``(B, C, H, W)`` in [0, 1] at the target canvas, with a
name, a channel count and a role:

- ``per_frame``: made from the current (normalized) pose, like the stick figure. Each has a *producer*
  that the live pipeline, the offline tool, the training dataset and the evaluation all call, so a model sees
  at run time exactly what it was trained on.
- ``state``: the generator's own previous output (Everybody Dance Now's temporal conditioning, Chan et al.
  2019, Sec. 3.2): zeros for a sequence's first frame, then the last generated frame.
- ``per_target``: fixed for a target (a background plate). Each has a *target producer*, run once per
  target on its training frames (:class:`TargetFrames`) when the data is prepared (or on first use, for one
  declared later; :func:`train.dataset.load_target_inputs`); the result travels with
  the checkpoint into the bundle (``NAME.target_inputs.npz`` beside the sidecar), is loaded once per target
  (:class:`realtime.model.pipeline.Target`) and fed every frame, as FasterLivePortrait prepares its source
  once and runs per frame. Per-frame producers see them in :attr:`FrameContext.per_target`.
- ``target_data``: fixed for a target like a ``per_target`` input, made, stored, bundled and loaded the same
  way, but never fed to the generator: data that a per-frame producer reads (the reference appearance's
  images and keypoints, from which the warped appearance prior is made every frame). A per-frame input
  names the target data its producer reads (``declare_input(..., needs=...)``), and a model that takes the
  input carries that data (:attr:`GeneratorInputs.target_data`). Its value is a float32 array of any shape
  whose first axis has ``channels`` entries (finite; not limited to [0, 1]: keypoints are in pixels).

A model's :class:`GeneratorInputs` is an ordered selection of declared inputs. Its order is the order in
which the generator concatenates its input channels and the order of the exported graph's inputs. Models
size their first layer from :attr:`GeneratorInputs.in_channels`, the dataset yields batches keyed by the
names, export names the ONNX inputs from them, the sidecar records the whole declaration, and the pipeline
feeds them by name; :func:`assemble_inputs` is the one place that puts a generator's inputs together
(pipeline, evaluation and training alike). Adding an input is: :func:`declare_input` it with a producer, list
its name in the training config (``generator.extra_inputs``), train.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class InputRole(str, enum.Enum):
    """Where an input's value comes from (see the module docstring)."""

    PER_FRAME = "per_frame"
    STATE = "state"
    PER_TARGET = "per_target"
    TARGET_DATA = "target_data"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a generator: float32 ``(B, channels, H, W)`` in [0, 1] (``target_data``: float32
    ``(channels, ...)``, see the module docstring).

    Attributes:
        name: the tensor's name in batches, engines and sidecars (a Python identifier).
        channels: channel count (>= 1); for ``target_data``, the size of the value's first axis.
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
    """What a per-frame producer sees: one batch of normalized poses and their stick figures, and the target's
    per-target inputs.

    Attributes:
        joints_px: float32 ``(B, NUM_JOINTS, 2)``, joint x, y in canvas pixels (NaN where missing).
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1].
        stick_figure: float32 ``(B, 3, H, W)`` in [0, 1], the stick figure already drawn for these poses.
        per_target: the target's ``per_target`` inputs and ``target_data`` by name, float32 ``(1, C, H, W)``
            in [0, 1] (target data: ``(1, C, ...)``) on the context's device (the same for every item of the
            batch); empty for a model without any.
        frame_indices: int64 ``(B,)``, the poses' frame indices in the target's prepared video when they are
            the target's own training frames (training), else None (live, offline, evaluation). A producer
            that draws on the target's frames (the appearance prior) uses them to avoid the frame itself,
            so that the network learns pose transfer rather than recall (Balakrishnan et al. 2018, Sec. 3.5).
    """

    joints_px: torch.Tensor
    confidence: torch.Tensor
    stick_figure: torch.Tensor
    per_target: Mapping[str, torch.Tensor] = field(default_factory=dict)
    frame_indices: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self.stick_figure.shape[0])

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return int(self.stick_figure.shape[-2]), int(self.stick_figure.shape[-1])


@dataclass(frozen=True)
class TargetFrames:
    """What a target producer sees: the target's training frames (never its held-out ones), NumPy only.

    Attributes:
        frames: uint8 ``(N, H, W, 3)`` RGB frames on the target canvas (may be a memory map).
        masks: uint8 ``(N, H, W)`` person segmentation, 0-255.
        joints_px: float32 ``(N, NUM_JOINTS, 2)`` joint x, y in canvas pixels.
        confidence: float32 ``(N, NUM_JOINTS)`` in [0, 1].
        frame_range: the prepared video's frames these are (``range(0, train_end)``).

    Raises:
        ValueError: if the arrays disagree in frame count or shape, or there are no frames.
    """

    frames: np.ndarray
    masks: np.ndarray
    joints_px: np.ndarray
    confidence: np.ndarray
    frame_range: range

    def __post_init__(self) -> None:
        n = len(self.frame_range)
        if n < 1 or self.frames.ndim != 4 or self.frames.shape[0] != n or self.frames.shape[-1] != 3:
            raise ValueError(
                f"frames must be uint8 (N, H, W, 3) with N = len({self.frame_range}) >= 1, "
                f"got {self.frames.shape}"
            )
        if self.masks.shape != self.frames.shape[:3] or self.joints_px.shape[:1] != (n,):
            raise ValueError(
                f"masks {self.masks.shape} and joints {self.joints_px.shape} must match frames "
                f"{self.frames.shape}"
            )
        if self.confidence.shape != self.joints_px.shape[:2]:
            raise ValueError(f"confidence {self.confidence.shape} must match joints {self.joints_px.shape}")

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


#: A per-frame producer: the context in, float32 ``(B, channels, H, W)`` in [0, 1] out, on the context's
#: device.
Producer = Callable[[FrameContext], torch.Tensor]
#: A target producer (``per_target`` inputs): the target's training frames in, float32 ``(channels, H, W)``
#: in [0, 1] out.
TargetProducer = Callable[[TargetFrames], np.ndarray]

_DECLARED: dict[str, TensorSpec] = {}
_PRODUCERS: dict[str, Producer] = {}
_TARGET_PRODUCERS: dict[str, TargetProducer] = {}
_NEEDS: dict[str, tuple[str, ...]] = {}
_TARGET_ROLES = (InputRole.PER_TARGET, InputRole.TARGET_DATA)


def declare_input(
    spec: TensorSpec,
    producer: Producer | TargetProducer | None = None,
    *,
    needs: Sequence[str] = (),
    replace: bool = False,
) -> TensorSpec:
    """Declare a generator input, or target data (once per process; idempotent for the same spec, producer
    and needs).

    Args:
        spec: the input.
        producer: required for a ``per_frame`` input (a :data:`Producer`) and a ``per_target`` input or
            ``target_data`` (a :data:`TargetProducer`), forbidden for a ``state`` input.
        needs: for a ``per_frame`` input, the names of the ``target_data`` its producer reads from
            :attr:`FrameContext.per_target` (declared already); a model that takes the input carries them.
        replace: allow redeclaring a name with another spec or producer (tests).

    Returns:
        ``spec``.

    Raises:
        ValueError: if a ``per_frame``, ``per_target`` or ``target_data`` spec has no producer (or a state
            input has one), ``needs`` names something that is not declared ``target_data`` (or is given for
            another role), or the name is declared already with another spec, producer or needs and
            ``replace`` is False.
    """
    if (spec.role is not InputRole.STATE) != (producer is not None):
        raise ValueError(
            f"{spec.name}: a per_frame, per_target or target_data spec needs a producer, and a state input "
            "has none"
        )
    needs = tuple(needs)
    if needs and spec.role is not InputRole.PER_FRAME:
        raise ValueError(f"{spec.name}: only a per_frame input's producer reads target data (needs)")
    for name in needs:
        if name not in _DECLARED or _DECLARED[name].role is not InputRole.TARGET_DATA:
            raise ValueError(f"{spec.name} needs {name!r}, which is not declared as target_data")
    if not replace and spec.name in _DECLARED:
        known = _PRODUCERS.get(spec.name, _TARGET_PRODUCERS.get(spec.name))
        if _DECLARED[spec.name] != spec or known is not producer or _NEEDS.get(spec.name, ()) != needs:
            raise ValueError(f"generator input {spec.name!r} is declared already as {_DECLARED[spec.name]}")
        return spec
    forget_input(spec.name)
    _DECLARED[spec.name] = spec
    if spec.role is InputRole.PER_FRAME:
        _PRODUCERS[spec.name] = producer  # type: ignore[assignment]
        _NEEDS[spec.name] = needs
    elif spec.role in _TARGET_ROLES:
        _TARGET_PRODUCERS[spec.name] = producer  # type: ignore[assignment]
    return spec


def forget_input(name: str) -> None:
    """Remove a declared input (tests that declare their own). Unknown names are ignored."""
    _DECLARED.pop(name, None)
    _PRODUCERS.pop(name, None)
    _TARGET_PRODUCERS.pop(name, None)
    _NEEDS.pop(name, None)


def declared_inputs(role: InputRole | None = None) -> tuple[TensorSpec, ...]:
    """Every input declared in this process (of ``role`` when given), in declaration order."""
    return tuple(spec for spec in _DECLARED.values() if role is None or spec.role is role)


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
    """A generator's ordered inputs and its output, and the target data its inputs' producers read.

    Attributes:
        inputs: the inputs, in channel-concatenation and graph-input order.
        output: the generated tensor (its name is the graph's output name).
        target_data: ``target_data`` specs that producers of ``inputs`` read (never fed to the network);
            stored, bundled and loaded with the ``per_target`` inputs.

    Raises:
        ValueError: for no inputs, duplicate names, a state input whose channels differ from the output's
            (a state input is fed the previous output), a ``target_data`` spec among the inputs or another
            role among ``target_data``.
    """

    inputs: tuple[TensorSpec, ...]
    output: TensorSpec = FRAME
    target_data: tuple[TensorSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_data", tuple(self.target_data))
        names = [spec.name for spec in self.inputs]
        if not names:
            raise ValueError("a generator needs at least one input")
        everything = [*names, self.output.name, *(spec.name for spec in self.target_data)]
        if len(set(everything)) != len(everything):
            raise ValueError(f"generator tensor names must be unique, got {everything}")
        for spec in self.inputs:
            if spec.role is InputRole.TARGET_DATA:
                raise ValueError(f"{spec.name} is target data, not a generator input: list it in target_data")
            if spec.role is InputRole.STATE and spec.channels != self.output.channels:
                raise ValueError(
                    f"state input {spec.name} has {spec.channels} channels but the output "
                    f"{self.output.name} has {self.output.channels}"
                )
        for spec in self.target_data:
            if spec.role is not InputRole.TARGET_DATA:
                raise ValueError(f"{spec.name} ({spec.role.value}) listed as target_data")

    @classmethod
    def of(cls, names: Sequence[str], output: TensorSpec = FRAME) -> GeneratorInputs:
        """The declared inputs ``names`` in that order, with the target data their producers read.

        Raises:
            KeyError: for a name that is not declared (:func:`declare_input`).
        """
        inputs = tuple(declared_input(name) for name in names)
        needed = dict.fromkeys(need for name in names for need in _NEEDS.get(name, ()))
        return cls(inputs, output, tuple(declared_input(name) for name in needed))

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

    @property
    def target_values(self) -> tuple[TensorSpec, ...]:
        """Everything a target carries for this generator: its ``per_target`` inputs, then its target data
        (what the prepared data, the checkpoint and ``NAME.target_inputs.npz`` store)."""
        return (*self.with_role(InputRole.PER_TARGET), *self.target_data)

    def with_role(self, role: InputRole) -> tuple[TensorSpec, ...]:
        if role is InputRole.TARGET_DATA:
            return self.target_data
        return tuple(spec for spec in self.inputs if spec.role is role)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "inputs": [spec.to_json() for spec in self.inputs],
            "output": self.output.to_json(),
        }
        if self.target_data:
            data["target_data"] = [spec.to_json() for spec in self.target_data]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratorInputs:
        """Raises ValueError (or KeyError/TypeError) for a malformed declaration."""
        return cls(
            tuple(TensorSpec.from_json(entry) for entry in data["inputs"]),
            TensorSpec.from_json(data["output"]),
            tuple(TensorSpec.from_json(entry) for entry in data.get("target_data", ())),
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


def produce_target_input(spec: TensorSpec, frames: TargetFrames) -> np.ndarray:
    """A ``per_target`` input (or ``target_data``) made by its target producer from the target's training
    frames.

    Returns:
        float32 ``(channels, H, W)`` in [0, 1] at the frames' canvas; for target data, float32
        ``(channels, ...)``, finite.

    Raises:
        KeyError: if ``spec`` is not a ``per_target`` input or target data with a producer in this process
            (declare it first).
        ValueError: if the producer returns the wrong shape or dtype, or values outside [0, 1] (or NaN).
    """
    if spec.role not in _TARGET_ROLES or spec.name not in _TARGET_PRODUCERS:
        raise KeyError(
            f"generator input {spec.name!r} has no target producer in this process; declare it first "
            "(declare_input with a per_target or target_data TensorSpec and its producer)"
        )
    value = np.asarray(_TARGET_PRODUCERS[spec.name](frames))
    if value.dtype != np.float32:
        raise ValueError(f"the target producer of {spec.name} returned {value.dtype}, expected float32")
    check_target_tensor(spec, value, frames.canvas_hw)
    if not np.isfinite(value).all():
        raise ValueError(f"the target producer of {spec.name} returned NaN or infinite values")
    if spec.role is InputRole.PER_TARGET and not (value.min() >= 0.0 and value.max() <= 1.0):
        raise ValueError(f"the target producer of {spec.name} returned values outside [0, 1]")
    return value


def target_value_shape(
    spec: TensorSpec, value_shape: Sequence[int], canvas_hw: tuple[int, int]
) -> tuple[int, ...]:
    """The shape a per-target value is stored and loaded with: ``(channels, H, W)`` for a ``per_target``
    input, and the value's own shape without a leading batch axis of 1 for target data.

    Raises:
        ValueError: as :func:`check_target_tensor`.
    """
    shape = tuple(int(v) for v in value_shape)
    if spec.role is InputRole.TARGET_DATA:
        if len(shape) >= 2 and shape[0] == 1 and shape[1] == spec.channels:
            shape = shape[1:]
        if not shape or shape[0] != spec.channels:
            raise ValueError(
                f"target data {spec.name} has shape {shape}, expected ({spec.channels}, ...) (its first axis "
                f"has {spec.channels} entries)"
            )
        return shape
    expected = (spec.channels, *canvas_hw)
    if shape not in (expected, (1, *expected)):
        raise ValueError(f"per-target input {spec.name} has shape {shape}, expected {expected}")
    return expected


def check_target_tensor(
    spec: TensorSpec, value: torch.Tensor | np.ndarray, canvas_hw: tuple[int, int]
) -> None:
    """Check one per-target value: ``(channels, H, W)`` or ``(1, channels, H, W)`` at ``canvas_hw`` (target
    data: ``(channels, ...)`` or ``(1, channels, ...)``).

    Raises:
        ValueError: naming the input, the shape found and the one expected.
    """
    target_value_shape(spec, value.shape, canvas_hw)


def assemble_inputs(
    spec: GeneratorInputs,
    frame: FrameContext | Mapping[str, torch.Tensor],
    state: torch.Tensor,
    per_target: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """A generator's inputs by name, in ``spec``'s order: the one place where they are put together (the
    pipeline, the evaluation, the training unroll and the distillation teacher all call it).

    Args:
        spec: the generator's declared inputs.
        frame: a :class:`FrameContext` (its ``per_frame`` inputs are produced here,
            :func:`produce_frame_inputs`), or those inputs already produced, by name, float32
            ``(B, C, H, W)`` (a training batch's).
        state: the generator's previous output, float32 ``(B, 3, H, W)`` (zeros at a sequence's start), fed
            to every ``state`` input.
        per_target: the target's ``per_target`` inputs by name, float32 ``(1, C, H, W)`` or ``(B, C, H, W)``;
            None: the context's (``frame.per_target``). One of batch 1 is broadcast over the batch
            (``expand``, no copy).

    Returns:
        ``{name: float32 (B, C, H, W)}`` for every input of ``spec``, the same tensors as given where no
        broadcast was needed (nothing is copied).

    Raises:
        KeyError: naming an input that ``frame`` or ``per_target`` lacks.
        ValueError: as :func:`produce_frame_inputs`, or for a per-target tensor of the wrong shape.
    """
    if isinstance(frame, FrameContext):
        produced: Mapping[str, torch.Tensor] = produce_frame_inputs(spec, frame)
        targets = frame.per_target if per_target is None else per_target
    else:
        produced, targets = frame, {} if per_target is None else per_target
    batch, hw = int(state.shape[0]), tuple(state.shape[-2:])
    out = {}
    for item in spec.inputs:
        if item.role is InputRole.STATE:
            out[item.name] = state
        elif item.role is InputRole.PER_FRAME:
            if item.name not in produced:
                raise KeyError(f"no per-frame input {item.name!r} among {sorted(produced)}")
            out[item.name] = produced[item.name]
        else:
            if item.name not in targets:
                raise KeyError(
                    f"no per-target input {item.name!r} among {sorted(targets)}; a target's per-target "
                    "inputs come with its bundle (export it again: python -m export.onnx) or its prepared "
                    "data (train.dataset.load_target_inputs)"
                )
            value = targets[item.name]
            if (
                value.dim() != 4
                or value.shape[0] not in (1, batch)
                or tuple(value.shape[1:]) != (item.channels, *hw)
            ):
                raise ValueError(
                    f"per-target input {item.name} has shape {tuple(value.shape)}, expected "
                    f"(1 or {batch}, {item.channels}, {hw[0]}, {hw[1]})"
                )
            out[item.name] = value if value.shape[0] == batch else value.expand(batch, -1, -1, -1)
    return out
