"""The generator networks that run a target, their architecture spec and registry, and the inference weights
file (``NAME.pt``: spec + state dict).

Papers followed:

- Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs" (pix2pixHD,
  CVPR 2018), Sec. 3.2 and the reference code ``models/networks.py``: ``GlobalGenerator``,
  ``LocalEnhancer``; instance normalization without affine parameters.
- Chan et al., "Everybody Dance Now" (ICCV 2019), Sec. 3.2: the generator sees the current stick figure and
  its own previous output. Sec. 3.3: the face GAN, a residual on the face crop from the crops of the stick
  figure and the frame.

Every generator takes the inputs of its :class:`realtime.model.inputs.GeneratorInputs` positionally, in that
order, each float32 ``(B, C, H, W)`` in [0, 1]; it maps them to [-1, 1] and concatenates them, so its first
layer has :attr:`GeneratorInputs.in_channels` input channels. A new architecture is one ``nn.Module`` class
plus one :func:`register_network` line. The discriminators and the training code live in ``train/``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from realtime.catalog import CANVAS_MULTIPLE_PX
from realtime.model.inputs import FACE_INPUTS, TEMPORAL_INPUTS, GeneratorInputs, InputRole

#: Format of the inference weights file (:func:`save_weights`).
WEIGHTS_FORMAT = "dance-live-inference-weights"
WEIGHTS_FORMAT_VERSION = 1


class WeightsError(ValueError):
    """A file that is not an inference weights file of this format, or whose weights do not fit its spec."""


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator's architecture: everything needed to build it before its weights are loaded.

    Attributes:
        kind: the registered architecture (:data:`NETWORKS`): "global" (:class:`GlobalGenerator`), "local"
            (:class:`LocalEnhancer`), "face" (:class:`FaceGenerator`) or "mobile" (:class:`MobileGenerator`).
        ngf: channels of the first layer (G1's for "local").
        n_downsample: stride-2 downsamplings; H and W must be multiples of ``2**n_downsample`` (one more for
            "local" and for ``downscale`` 2).
        n_blocks: residual blocks at the bottleneck.
        n_blocks_local: G2's residual blocks ("local" only).
        downscale: 1, or 2 for a global generator trained at half the canvas (a local stage followed it):
            it then runs at the full canvas through :class:`DownscaledGenerator`.
        inputs: the generator's inputs and output (:mod:`realtime.model.inputs`).
        background_hw: ``(H, W)`` in pixels of a learned background image that the generator composites its
            foreground over ("mobile" only; :class:`MobileGenerator`), or ``(0, 0)`` for none.
        blend_prior: the name of a per-frame input of four channels (RGB premultiplied by coverage, then
            coverage: :data:`realtime.model.appearance.APPEARANCE_PRIOR`) that the generator may copy where
            it covers the canvas (:func:`blend_with_prior`), or "" for none ("global" and "local").
        composite_over: the name of a ``per_target`` input of ``inputs`` with the output's channels (the
            background plate, :data:`realtime.model.plate.BACKGROUND_PLATE`) that the generator composites
            its foreground over with a predicted alpha (:func:`composite`), or "" for none ("global",
            "local" and "mobile"; not with a learned background). Files written before this field read as "".
            With both, the person is blended with the prior first, then composited over the plate.

    Raises:
        ValueError: for an unknown kind, sizes out of range, a background for another kind than "mobile", a
            ``blend_prior`` that is not one of the inputs, has not four channels, or is asked of a kind that
            cannot blend, or a ``composite_over`` that is not a per-target input of ``inputs`` with the
            output's channels, is given for the face generator, or comes with a learned background.
    """

    kind: str
    ngf: int = 64
    n_downsample: int = 4
    n_blocks: int = 9
    n_blocks_local: int = 0
    downscale: int = 1
    inputs: GeneratorInputs = field(default=TEMPORAL_INPUTS)
    background_hw: tuple[int, int] = (0, 0)
    blend_prior: str = ""
    composite_over: str = ""

    def __post_init__(self) -> None:
        if self.blend_prior:
            if self.kind not in COMPOSITING_KINDS:
                raise ValueError(
                    f"blend_prior needs generator kind one of {COMPOSITING_KINDS}, not {self.kind!r}"
                )
            if self.blend_prior not in self.inputs.names:
                raise ValueError(
                    f"blend_prior {self.blend_prior!r} is not one of the inputs {list(self.inputs.names)}"
                )
            if self.inputs.inputs[self.inputs.names.index(self.blend_prior)].channels != 4:
                raise ValueError(f"blend_prior {self.blend_prior!r} must have 4 channels (RGB and coverage)")
            if any(self.background_hw):
                raise ValueError(
                    f"blend_prior {self.blend_prior!r} needs the plate or no background, not a learned one"
                )
        background_hw = tuple(int(v) for v in self.background_hw)
        object.__setattr__(self, "background_hw", background_hw)
        if len(background_hw) != 2 or min(background_hw) < 0 or (0 in background_hw and any(background_hw)):
            raise ValueError(
                f"background_hw must be (H, W) > 0, or (0, 0) for none; got {self.background_hw}"
            )
        if any(background_hw) and self.kind != "mobile":
            raise ValueError(f"a learned background needs generator kind 'mobile', not {self.kind!r}")
        if self.kind not in NETWORKS:
            raise ValueError(f"unknown generator kind {self.kind!r}; registered: {sorted(NETWORKS)}")
        if self.ngf < 1 or not 1 <= self.n_downsample <= 6 or self.n_blocks < 0 or self.n_blocks_local < 0:
            raise ValueError(f"generator sizes out of range: {self}")
        if self.downscale not in (1, 2) or (self.downscale == 2 and self.kind != "global"):
            raise ValueError(f"downscale must be 1, or 2 for a global generator; got {self.downscale}")
        if self.composite_over:
            self._check_composite_over()

    def _check_composite_over(self) -> None:
        name = self.composite_over
        if self.kind not in COMPOSITING_KINDS:
            raise ValueError(
                f"composite_over={name!r}: generator kind {self.kind!r} cannot composite; one of "
                f"{list(COMPOSITING_KINDS)} can"
            )
        if any(self.background_hw):
            raise ValueError(
                f"composite_over={name!r} and a learned background (background_hw "
                f"{list(self.background_hw)}) are two backgrounds; keep one (set background_hw to [0, 0] or "
                "composite_over to '')"
            )
        per_target = {spec.name: spec for spec in self.inputs.with_role(InputRole.PER_TARGET)}
        spec = per_target.get(name)
        if spec is None or spec.channels != self.inputs.output.channels:
            raise ValueError(
                f"composite_over={name!r} must name a per-target input of the generator with "
                f"{self.inputs.output.channels} channels; its per-target inputs are "
                f"{[(s.name, s.channels) for s in per_target.values()]} (add it to generator.extra_inputs)"
            )

    @property
    def composite_index(self) -> int | None:
        """Position of the ``composite_over`` input among the inputs, or None without one."""
        return self.inputs.names.index(self.composite_over) if self.composite_over else None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["inputs"] = self.inputs.to_json()
        data["background_hw"] = list(self.background_hw)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratorSpec:
        """Raises ValueError for a malformed spec."""
        try:
            fields = dict(data)
            fields["inputs"] = GeneratorInputs.from_json(data["inputs"])
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed generator spec: {error}") from None


#: Generator kinds that can composite over a per-target input (``GeneratorSpec.composite_over``).
COMPOSITING_KINDS = ("global", "local", "mobile")


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def composite(raw: Tensor, background: Tensor) -> tuple[Tensor, Tensor]:
    """A predicted foreground composited over a background with a predicted soft alpha: vid2vid's
    foreground-background prior (Wang et al., NeurIPS 2018, Sec. 3.2, eq. 4) and Balakrishnan et al.'s
    separate foreground and background merged by a mask (CVPR 2018, Sec. 3.4).

    Args:
        raw: float32 ``(B, C + 1, H, W)``, unbounded: the foreground's ``C`` channels before tanh, then the
            alpha logit.
        background: float32 ``(B or 1, C, H, W)`` in [0, 1] (the background plate, or a learned image).

    Returns:
        ``(frame, alpha)``: float32 ``(B, C, H, W)`` in [0, 1], ``background + alpha * (foreground -
        background)`` with ``foreground = (tanh + 1) / 2``; and ``alpha = sigmoid(logit)``, ``(B, 1, H, W)``
        in [0, 1] (1: the person, 0: the background).
    """
    alpha = torch.sigmoid(raw[:, -1:])
    return alpha_over((torch.tanh(raw[:, :-1]) + 1) / 2, alpha, background), alpha


def alpha_over(foreground: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """``background + alpha * (foreground - background)``: float32 ``(B, C, H, W)`` foreground in [0, 1] over
    ``(B or 1, C, H, W)`` with ``alpha`` ``(B, 1, H, W)`` in [0, 1] (1: the foreground)."""
    return background + alpha * (foreground - background)


def _check_image(name: str, image: Tensor, channels: int) -> None:
    if image.dtype != torch.float32 or image.dim() != 4 or image.shape[1] != channels:
        raise ValueError(
            f"{name} must be float32 (B, {channels}, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}"
        )


def check_generator_inputs(inputs: GeneratorInputs, multiple_px: int, tensors: tuple[Tensor, ...]) -> None:
    """The checks of every generator's ``forward``: count, dtype, channels, matching size, and H and W
    multiples of ``multiple_px``.

    Raises:
        ValueError: naming the first input that is wrong.
    """
    if len(tensors) != len(inputs.inputs):
        raise ValueError(
            f"this generator takes {len(inputs.inputs)} inputs {list(inputs.names)}, got {len(tensors)}"
        )
    first = tensors[0]
    for spec, tensor in zip(inputs.inputs, tensors, strict=True):
        _check_image(spec.name, tensor, spec.channels)
        if tensor.shape[0] != first.shape[0] or tensor.shape[-2:] != first.shape[-2:]:
            raise ValueError(
                f"{spec.name} {tuple(tensor.shape)} must match {inputs.inputs[0].name} {tuple(first.shape)} "
                "in batch, H and W"
            )
    height, width = first.shape[-2:]
    if height % multiple_px or width % multiple_px:
        raise ValueError(
            f"the inputs are {height}x{width} (HxW) but this generator needs H and W divisible by "
            f"{multiple_px}; prepare the target again with a canvas whose sides are multiples of it "
            f"(python -m train prepare chooses multiples of {CANVAS_MULTIPLE_PX} unless --size forces one)"
            + ("" if CANVAS_MULTIPLE_PX % multiple_px == 0 else ", or give the generator fewer downsamplings")
        )


def concat_inputs(tensors: tuple[Tensor, ...]) -> Tensor:
    """The inputs mapped from [0, 1] to [-1, 1] and concatenated along channels, as pix2pixHD feeds them."""
    return torch.cat([t * 2 - 1 for t in tensors], dim=1) if len(tensors) > 1 else tensors[0] * 2 - 1


class ResnetBlock(nn.Module):
    """pix2pixHD residual block: ``x + (reflect-pad, conv3x3, IN, ReLU, reflect-pad, conv3x3, IN)(x)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def global_layers(
    in_channels: int,
    ngf: int,
    n_downsample: int,
    n_blocks: int,
    out_channels: int = 3,
    *,
    activation: bool = True,
) -> list[nn.Module]:
    """pix2pixHD's G1 as a layer list: reflection-padded c7s1-``ngf`` conv, ``n_downsample`` stride-2 3x3
    convs doubling the channels, ``n_blocks`` residual blocks, ``n_downsample`` stride-2 transposed convs
    halving them, reflection-padded c7s1-``out_channels`` conv (3: RGB; one more for a prior blend's weight,
    one more for a composite's alpha logit: :meth:`SpecGenerator.output_channels`) and tanh; every conv but
    the last is followed by InstanceNorm2d (affine=False) and ReLU. Without ``activation`` an identity takes
    the tanh's place (same layer indices, so the state dict keys are unchanged): a compositing generator
    applies its own activations (:meth:`SpecGenerator.finish`)."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, ngf, kernel_size=7),
        _norm(ngf),
        nn.ReLU(inplace=True),
    ]
    for i in range(n_downsample):
        c = ngf * 2**i
        layers += [
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1),
            _norm(2 * c),
            nn.ReLU(inplace=True),
        ]
    layers += [ResnetBlock(ngf * 2**n_downsample) for _ in range(n_blocks)]
    for i in range(n_downsample, 0, -1):
        c = ngf * 2**i
        layers += [
            nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
            _norm(c // 2),
            nn.ReLU(inplace=True),
        ]
    layers += [
        nn.ReflectionPad2d(3),
        nn.Conv2d(ngf, out_channels, kernel_size=7),
        nn.Tanh() if activation else nn.Identity(),
    ]
    return layers


def blend_with_prior(raw: Tensor, prior: Tensor) -> tuple[Tensor, Tensor]:
    """A generator's output blended with an appearance prior it may copy.

    ``out = rgb * (1 - share) + w * prior_rgb`` with ``share = w * coverage``, where ``rgb = (raw[:, :3] + 1)
    / 2`` is the generated image, ``w = (raw[:, 3:4] + 1) / 2`` in [0, 1] the network's per-pixel trust in the
    prior, and the prior's RGB is premultiplied by its coverage (so that a soft part edge blends softly). A
    skip connection for appearance, like the U-Net of Balakrishnan et al. (CVPR 2018), without changing the
    encoder-decoder: where the warped reference is right, the network only has to say so.

    Args:
        raw: float32 ``(B, 4, H, W)`` in [-1, 1] (tanh outputs).
        prior: float32 ``(B, 4, H, W)`` in [0, 1]: RGB premultiplied by coverage, then coverage.

    Returns:
        ``(out, share)``: float32 ``(B, 3, H, W)`` in [0, 1], and the copied share ``(B, 1, H, W)`` in [0, 1].
    """
    share = (raw[:, 3:4] + 1) / 2 * prior[:, 3:4]
    return (raw[:, :3] + 1) / 2 * (1 - share) + (raw[:, 3:4] + 1) / 2 * prior[:, :3], share


#: Layers at the end of :func:`global_layers` that the local enhancer drops: reflection pad, conv, tanh.
GLOBAL_OUTPUT_LAYERS = 3


class SpecGenerator(nn.Module):
    """What every generator built from a :class:`GeneratorSpec` has: its ``spec``, its declared ``inputs``
    (:class:`realtime.model.inputs.GeneratorInputs`), whether it is temporal, and the multiple of pixels that
    H and W must be (``2**n_downsample`` unless a subclass says otherwise).

    A generator that composites (``spec.composite_over``) keeps, in training mode only, the alpha of its last
    call in :attr:`last_alpha` (float32 ``(B, 1, H, W)`` in [0, 1], with its graph) for the alpha's mask
    loss; in eval mode :attr:`last_alpha` stays None."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.inputs = spec.inputs
        self.n_downsample = spec.n_downsample
        self.composite_index = spec.composite_index
        self.last_alpha: Tensor | None = None
        self._prior_index = spec.inputs.names.index(spec.blend_prior) if spec.blend_prior else -1

    @property
    def output_channels(self) -> int:
        """Channels of the last layer of a global or local generator: RGB, a prior blend's weight, a
        composite's alpha logit."""
        return 3 + int(self._prior_index >= 0) + int(self.composite_index is not None)

    def finish(self, raw: Tensor, inputs: tuple[Tensor, ...]) -> Tensor:
        """The output, float32 ``(B, 3, H, W)`` in [0, 1], from the last layer's ``raw``
        ``(B, output_channels, H, W)``: tanh outputs mapped to [0, 1], blended with the prior
        (:func:`blend_with_prior`) when the generator blends, then composited over the ``composite_over``
        input (:func:`composite`, the person's tanh and the alpha's sigmoid applied here) when it
        composites. With both, the alpha is at least the prior's copied share (trust times coverage): trained
        on a short recording, the alpha alone faded raised arms into the plate in poses the recording never
        showed (issue 18, docs/RESULTS.md)."""
        if self.composite_index is None:
            head = raw
        else:
            head = torch.tanh(raw[:, :-1])
        if self._prior_index < 0:
            person, share = (head + 1) / 2, None
        else:
            person, share = blend_with_prior(head, inputs[self._prior_index])
        if self.composite_index is None:
            return person
        alpha = torch.sigmoid(raw[:, -1:])
        if share is not None:
            # Where the network copies the warped reference, that is the person by construction: the alpha
            # is at least the copied share, so that a limb in a pose never shown is not faded into the plate.
            alpha = torch.maximum(alpha, share)
        return self._keep_alpha(alpha_over(person, alpha, inputs[self.composite_index]), alpha)

    def _composite(self, raw: Tensor, background: Tensor) -> Tensor:
        """:func:`composite` of the last layer's output ``raw`` over ``background``, keeping the alpha in
        training mode (:attr:`last_alpha`)."""
        return self._keep_alpha(*composite(raw, background))

    def _keep_alpha(self, frame: Tensor, alpha: Tensor) -> Tensor:
        if self.training and not torch.jit.is_tracing():
            self.last_alpha = alpha
        return frame

    @property
    def temporal(self) -> bool:
        return self.inputs.temporal

    @property
    def size_multiple_px(self) -> int:
        """H and W of the inputs must be multiples of this many pixels."""
        return 2**self.n_downsample


class GlobalGenerator(SpecGenerator):
    """pix2pixHD's global generator G1 (:func:`global_layers`) over the concatenated inputs of its spec
    (Everybody Dance Now: the stick figure and the previous output frame).

    Args:
        spec: the architecture (``kind`` "global"); H and W must be divisible by ``2**n_downsample``.
    """

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        self.model = nn.Sequential(
            *global_layers(
                spec.inputs.in_channels, spec.ngf, spec.n_downsample, spec.n_blocks, self.output_channels,
                activation=self.composite_index is None,
            )
        )  # fmt: skip

    def forward(self, *inputs: Tensor) -> Tensor:
        """Generate the frame.

        Args:
            inputs: the spec's inputs in order, each float32 ``(B, C_i, H, W)`` in [0, 1] (Everybody Dance
                Now's: the stick figure, and the previous output, all zeros for a sequence's first frame).

        Returns:
            float32 ``(B, 3, H, W)`` in [0, 1] (``(tanh + 1) / 2``; with ``spec.composite_over``, the
            foreground composited over that input with the predicted alpha, :func:`composite`).

        Raises:
            ValueError: on a wrong count, shape or dtype, mismatched inputs, or H or W not divisible by
                ``size_multiple_px``.

        ONNX: export with ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter; the dynamo one
        needs ``onnxscript``), with the spec's names as input names.
        """
        # In a trace (ONNX export) shapes are constants and these checks only warn; the eager call checks.
        if not torch.jit.is_tracing():
            check_generator_inputs(self.inputs, self.size_multiple_px, inputs)
        return self.finish(self.model(concat_inputs(inputs)), inputs)


def downsample_half(image: Tensor) -> Tensor:
    """Halve H and W the way pix2pixHD's local enhancer feeds its global generator: 3x3 average pooling,
    stride 2, padding 1, ``count_include_pad=False``. ``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``."""
    return F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)


class LocalEnhancer(SpecGenerator):
    """pix2pixHD's coarse-to-fine generator {G1, G2} with one local enhancer (Wang et al. 2018, Sec. 3.2).

    G1 is a :class:`GlobalGenerator` without its output layer (reflection pad, c7s1-3 conv, tanh), run on the
    input downsampled by :func:`downsample_half`; its ``ngf``-channel output is added to G2's front end
    (reflection-padded c7s1-``ngf/2`` conv and a stride-2 3x3 conv to ``ngf`` channels, on the full-size
    input), then G2's ``n_blocks_local`` residual blocks, a stride-2 transposed conv to ``ngf/2`` channels and
    the c7s1-3 output conv with tanh. Keys of G1's layers are ``global_model.N.*``, the same ``N`` as in
    :class:`GlobalGenerator` (``model.N.*``), so :meth:`load_global` copies a trained G1 strictly.

    Args:
        spec: the architecture (``kind`` "local", even ``ngf``).

    Raises:
        ValueError: for an odd ``ngf``.
    """

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        ngf = spec.ngf
        if ngf % 2:
            raise ValueError(f"the local enhancer needs an even ngf (G2 has ngf / 2 channels), got {ngf}")
        in_channels = spec.inputs.in_channels
        g1 = global_layers(
            in_channels, ngf, spec.n_downsample, spec.n_blocks, self.output_channels,
            activation=self.composite_index is None,
        )  # fmt: skip
        self.global_model = nn.Sequential(*g1[:-GLOBAL_OUTPUT_LAYERS])
        local_ngf = ngf // 2
        self.local_front = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, local_ngf, kernel_size=7),
            _norm(local_ngf),
            nn.ReLU(inplace=True),
            nn.Conv2d(local_ngf, ngf, kernel_size=3, stride=2, padding=1),
            _norm(ngf),
            nn.ReLU(inplace=True),
        )
        self.local_back = nn.Sequential(
            *[ResnetBlock(ngf) for _ in range(spec.n_blocks_local)],
            nn.ConvTranspose2d(ngf, local_ngf, kernel_size=3, stride=2, padding=1, output_padding=1),
            _norm(local_ngf),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(local_ngf, self.output_channels, kernel_size=7),
            nn.Tanh() if self.composite_index is None else nn.Identity(),  # else applied in finish
        )

    @property
    def size_multiple_px(self) -> int:
        """H and W of the inputs must be multiples of this many pixels (G1 sees them halved)."""
        return 2 ** (self.n_downsample + 1)

    def forward(self, *inputs: Tensor) -> Tensor:
        """As :meth:`GlobalGenerator.forward` (same inputs, output and errors), at the full resolution."""
        if not torch.jit.is_tracing():
            check_generator_inputs(self.inputs, self.size_multiple_px, inputs)
        x = concat_inputs(inputs)
        coarse = self.global_model(downsample_half(x))
        return self.finish(self.local_back(self.local_front(x) + coarse), inputs)

    def load_global(self, global_state: dict[str, Tensor]) -> None:
        """Copy a trained :class:`GlobalGenerator`'s weights (its ``state_dict``) into G1, strictly: every
        layer but G1's output layer must be present and fit.

        Raises:
            ValueError: if the weights are missing layers, have extra ones, or do not fit.
        """
        n_kept = len(self.global_model)
        kept, dropped = {}, []
        for key, value in global_state.items():
            prefix, index, rest = key.split(".", 2)
            if prefix != "model":
                raise ValueError(f"not a GlobalGenerator state dict: unexpected key {key!r}")
            if int(index) < n_kept:
                kept[f"{index}.{rest}"] = value
            else:
                dropped.append(key)
        try:
            self.global_model.load_state_dict(kept, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"the global generator's weights do not fit this local enhancer's G1: {error}"
            ) from None
        expected_dropped = {f"model.{n_kept + 1}.weight", f"model.{n_kept + 1}.bias"}
        if set(dropped) != expected_dropped:
            raise ValueError(f"unexpected global generator output layers {sorted(dropped)}")


class DownscaledGenerator(nn.Module):
    """A generator trained at half the canvas (a global stage followed by a local stage), run at the full
    canvas: inputs downsampled by :func:`downsample_half` (as the local enhancer feeds G1), the output
    upsampled bilinearly back to the input size. For exporting and inspecting a global stage on its own.

    Args:
        generator: a :class:`GlobalGenerator` trained on half-size inputs.
    """

    def __init__(self, generator: GlobalGenerator) -> None:
        super().__init__()
        self.generator = generator
        self.inputs = generator.inputs
        self.spec = dataclasses.replace(generator.spec, downscale=2)

    @property
    def temporal(self) -> bool:
        return self.inputs.temporal

    @property
    def size_multiple_px(self) -> int:
        return 2 * self.generator.size_multiple_px

    def forward(self, *inputs: Tensor) -> Tensor:
        """As :meth:`GlobalGenerator.forward`: ``(B, C_i, H, W)`` in [0, 1] in, ``(B, 3, H, W)`` out."""
        small = self.generator(*(downsample_half(t) for t in inputs))
        return F.interpolate(small, size=inputs[0].shape[-2:], mode="bilinear", align_corners=False)


class FaceGenerator(GlobalGenerator):
    """Everybody Dance Now's face residual generator (Chan et al. 2019, Sec. 3.3): a small pix2pixHD global
    generator (the layers of :class:`GlobalGenerator`, its output not mapped to [0, 1]) from
    ``concat(stick crop, generated crop)`` (:data:`realtime.model.inputs.FACE_INPUTS`) to a residual in [-1,
    1] added to the generated crop. Its output layer can start at zero (:meth:`zero_output`), so an untrained
    face stage changes nothing.

    Args:
        spec: the architecture (``kind`` "face"); crops must be multiples of ``2**n_downsample`` pixels.
    """

    def zero_output(self) -> None:
        """Set the output layer to zero (the residual is then exactly 0)."""
        output_conv = self.model[-2]  # before the tanh
        assert isinstance(output_conv, nn.Conv2d) and output_conv.bias is not None
        nn.init.zeros_(output_conv.weight)
        nn.init.zeros_(output_conv.bias)

    def forward(self, *inputs: Tensor) -> Tensor:
        """The face residual.

        Args:
            inputs: ``stick_crop, frame_crop``: float32 ``(B, 3, S, S)`` in [0, 1], the face crops of the
                stick figure and of the generated frame.

        Returns:
            float32 ``(B, 3, S, S)`` in [-1, 1]; the corrected crop is ``clamp(frame_crop + residual, 0, 1)``
            (:meth:`refine`).

        Raises:
            ValueError: on wrong shapes or dtypes, mismatched inputs, or S not a multiple of
                ``size_multiple_px``.
        """
        if not torch.jit.is_tracing():
            check_generator_inputs(self.inputs, self.size_multiple_px, inputs)
        return self.model(concat_inputs(inputs))

    def refine(self, stick_crop: Tensor, frame_crop: Tensor) -> Tensor:
        """The corrected face crop ``clamp(frame_crop + residual, 0, 1)``, float32 ``(B, 3, S, S)``."""
        return (frame_crop + self(stick_crop, frame_crop)).clamp(0.0, 1.0)


#: Architecture kind -> class; :func:`build_network` builds from a spec through it.
NETWORKS: dict[str, Callable[[GeneratorSpec], nn.Module]] = {}


def register_network(kind: str, factory: Callable[[GeneratorSpec], nn.Module]) -> None:
    """Register an architecture under ``kind`` (one line per architecture).

    Raises:
        ValueError: if ``kind`` is taken by another factory.
    """
    if NETWORKS.get(kind, factory) is not factory:
        raise ValueError(f"generator kind {kind!r} is registered already")
    NETWORKS[kind] = factory


register_network("global", GlobalGenerator)
register_network("local", LocalEnhancer)
register_network("face", FaceGenerator)


def face_spec(ngf: int = 32, n_downsample: int = 2, n_blocks: int = 3) -> GeneratorSpec:
    """The face generator's spec (inputs :data:`realtime.model.inputs.FACE_INPUTS`)."""
    return GeneratorSpec("face", ngf, n_downsample, n_blocks, inputs=FACE_INPUTS)


def build_network(spec: GeneratorSpec) -> nn.Module:
    """An untrained network of ``spec`` (PyTorch's default initialization), wrapped in
    :class:`DownscaledGenerator` when ``spec.downscale`` is 2. Its state dict keys are those of the
    unwrapped network, so :func:`load_weights` and training checkpoints share them."""
    if spec.downscale == 2:
        return DownscaledGenerator(GlobalGenerator(dataclasses.replace(spec, downscale=1)))
    return NETWORKS[spec.kind](spec)


def _unwrapped(module: nn.Module) -> nn.Module:
    return module.generator if isinstance(module, DownscaledGenerator) else module


def save_weights(path: str | os.PathLike[str], module: nn.Module) -> Path:
    """Write the inference weights file of a generator built from a spec (it has ``.spec``): the spec and
    the state dict (CPU tensors), nothing of training (no optimizer, no discriminator). Atomic.

    Raises:
        ValueError: if ``module`` has no ``spec`` attribute.
    """
    spec = getattr(module, "spec", None)
    if not isinstance(spec, GeneratorSpec):
        raise ValueError(f"{type(module).__name__} has no GeneratorSpec; build it with realtime.model.nets")
    state = {k: v.detach().cpu() for k, v in _unwrapped(module).state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_FORMAT_VERSION,
        "spec": spec.to_json(),
        "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Build the network an inference weights file describes and load its weights strictly; eval mode.

    Raises:
        FileNotFoundError: if the file is missing.
        WeightsError: for a file that is not an inference weights file (a training checkpoint says so, with
            the export command), another format version, a malformed spec, or weights that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes can raise almost any exception type
        raise WeightsError(f"{path} is not a weights file ({type(error).__name__}: {error})") from error
    if isinstance(data, dict) and "optimizer_g" in data:
        raise WeightsError(
            f"{path} is a training checkpoint, not an inference weights file; export it first: "
            f"python -m export onnx {path} NAME.onnx (writes NAME.onnx, NAME.pt and NAME.json)"
        )
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path} is not an inference weights file (format {WEIGHTS_FORMAT!r})")
    if data.get("format_version") != WEIGHTS_FORMAT_VERSION:
        raise WeightsError(
            f"{path} has weights format version {data.get('format_version')!r}, this code reads "
            f"{WEIGHTS_FORMAT_VERSION}; export the target again"
        )
    try:
        spec = GeneratorSpec.from_json(data["spec"])
    except (ValueError, KeyError) as error:
        raise WeightsError(f"{path}: {error}") from None
    module = build_network(spec)
    try:
        _unwrapped(module).load_state_dict(data["state_dict"], strict=True)
    except (RuntimeError, KeyError) as error:
        raise WeightsError(f"{path}: the weights do not fit {spec}: {error}") from None
    return module.to(map_location).eval()


class MobileGenerator(SpecGenerator):
    """A light generator for real time on a CPU: pix2pixHD's encoder / residual bottleneck / decoder
    (Wang et al. 2018, Sec. 3.2) made cheap the way GAN Compression (Li et al., CVPR 2020) found pix2pix
    generators keep their quality at a tenth of the multiply-adds: MobileNet's depthwise-separable
    convolutions (Howard et al. 2017, Sec. 3.1: a 3x3 depthwise conv then a 1x1 pointwise conv) in the
    residual blocks and the decoder, and few channels near the full resolution. Nothing runs at the full
    resolution but the input and output: the first conv has stride 2, and the last conv predicts 4 x 3
    channels at half the size that a pixel shuffle (ESPCN, Shi et al., CVPR 2016) rearranges into the
    full-size frame. U-Net's skip connections (Ronneberger et al. 2015), added rather than concatenated,
    carry each encoder level to the decoder level of the same size.

    Layers (every conv but the last followed by InstanceNorm2d without affine parameters and ReLU): a 3x3
    stride-2 conv to ``ngf`` channels at half the size; ``n_downsample - 1`` stride-2 3x3 convs doubling the
    channels; ``n_blocks`` residual blocks ``x + (dw3x3, pw1x1, IN, ReLU, dw3x3, pw1x1, IN)(x)``;
    ``n_downsample - 1`` times a nearest 2x upsampling and a separable conv halving the channels, plus the
    encoder's map of that size; a 3x3 conv to 12 channels, pixel shuffle to 3 channels at the full size,
    tanh. Convs pad with zeros (no Pad nodes in the graph). Every op exports to ONNX (opset 17) and runs in
    ONNX Runtime's CPU provider.

    With ``spec.background_hw`` set, vid2vid's foreground-background prior (Wang et al., NeurIPS 2018,
    Sec. 3.2, eq. 4, with a fixed camera's background learned once instead of hallucinated per frame): the
    last conv predicts a fourth, alpha channel (a sigmoid), and the frame is
    ``alpha * foreground + (1 - alpha) * background``, where ``background`` is a learned float32
    ``(1, 3, H_b, W_b)`` image in [0, 1] (clamped), resized bilinearly when the input has another size. The
    network's capacity then goes to the person; :meth:`init_background` starts it from data. With
    ``spec.composite_over`` instead (the two are exclusive), the same alpha composites the foreground over
    that per-target input, the target's background plate (:mod:`realtime.model.plate`), made from the data
    and fed with every frame rather than learned; and with ``spec.blend_prior`` the last conv predicts the
    prior's trust as well (:meth:`SpecGenerator.finish`, as the global generator does): the real-time student
    of a target with an appearance prior and a plate (``train.config.StudentConfig``).

    Args:
        spec: the architecture (``kind`` "mobile"); H and W must be divisible by ``2**n_downsample``.
    """

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        ngf = spec.ngf

        def separable(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_in, kernel_size=3, padding=1, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, kernel_size=1),
                _norm(c_out),
            ]

        def strided(c_in: int, c_out: int) -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                _norm(c_out),
                nn.ReLU(inplace=True),
            )

        self.stem = strided(spec.inputs.in_channels, ngf)
        self.down = nn.ModuleList(
            strided(ngf * 2**i, ngf * 2 ** (i + 1)) for i in range(spec.n_downsample - 1)
        )
        bottleneck = ngf * 2 ** (spec.n_downsample - 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(*separable(bottleneck, bottleneck), nn.ReLU(inplace=True),
                          *separable(bottleneck, bottleneck))
            for _ in range(spec.n_blocks)
        )  # fmt: skip
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                *separable(ngf * 2**i, ngf * 2 ** (i - 1)),
                nn.ReLU(inplace=True),
            )
            for i in range(spec.n_downsample - 1, 0, -1)
        )
        out_channels = spec.inputs.output.channels
        self.learned_background = any(spec.background_hw)
        predicted = out_channels + 1 if self.learned_background else self.output_channels
        self.output = nn.Sequential(
            nn.Conv2d(ngf, 4 * predicted, kernel_size=3, padding=1), nn.PixelShuffle(2)
        )
        if self.learned_background:
            self.background = nn.Parameter(torch.full((1, out_channels, *spec.background_hw), 0.5))

    @torch.no_grad()
    def init_background(self, frames: Tensor) -> None:
        """Start the learned background from the per-pixel median of ``frames``, float32 ``(N, 3, H_b, W_b)``
        in [0, 1] (frames of the target's video: where the person moves, the median is the empty room).

        Raises:
            ValueError: if the generator has no learned background or the frames do not fit it.
        """
        if not self.learned_background:
            raise ValueError("this generator has no learned background (spec.background_hw is (0, 0))")
        if frames.dim() != 4 or frames.shape[1:] != self.background.shape[1:]:
            expected = ", ".join(map(str, self.background.shape[1:]))
            raise ValueError(f"frames must be (N, {expected}), got {tuple(frames.shape)}")
        self.background.copy_(frames.to(self.background).median(dim=0, keepdim=True).values)

    def forward(self, *inputs: Tensor) -> Tensor:
        """As :meth:`GlobalGenerator.forward`: the spec's inputs, each float32 ``(B, C_i, H, W)`` in [0, 1],
        in; float32 ``(B, 3, H, W)`` in [0, 1] out; ValueError on a wrong count, shape or dtype, mismatched
        inputs, or H or W not divisible by ``size_multiple_px``."""
        if not torch.jit.is_tracing():
            check_generator_inputs(self.inputs, self.size_multiple_px, inputs)
        x = self.stem(concat_inputs(inputs))
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()
        for block in self.blocks:
            x = x + block(x)
        for layer in self.up:
            x = layer(x) + skips.pop()
        out = self.output(x)
        if not self.learned_background:
            return self.finish(out if self.composite_index is not None else torch.tanh(out), inputs)
        background = self.background.clamp(0.0, 1.0)
        if background.shape[-2:] != out.shape[-2:]:
            background = F.interpolate(background, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return self._composite(out, background)


register_network("mobile", MobileGenerator)
