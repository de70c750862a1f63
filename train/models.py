"""The networks: pix2pixHD's global generator, local enhancer and multi-scale PatchGAN discriminator, with
Everybody Dance Now's temporal conditioning, and Everybody Dance Now's face residual generator.

Papers followed:

- Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs" (pix2pixHD,
  CVPR 2018), Sec. 3.2 and the reference code ``models/networks.py``: ``GlobalGenerator``,
  ``LocalEnhancer``, ``NLayerDiscriminator``, ``MultiscaleDiscriminator``; instance normalization without
  affine parameters.
- Chan et al., "Everybody Dance Now" (ICCV 2019), Sec. 3.2: the generator sees the current stick figure and
  its own previous output; the discriminator judges a temporal pair of (stick figure, frame) couples.
  Sec. 3.3: the face GAN, a residual on the face crop from the crops of the stick figure and the frame.

All images at the public boundaries are float32 ``(B, 3, H, W)`` RGB in [0, 1]; the networks map them to
[-1, 1] inside, as the papers' code does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from train.config import DiscriminatorConfig, FaceConfig, FitConfig, GeneratorConfig


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def _check_image(name: str, image: Tensor) -> None:
    if image.dtype != torch.float32 or image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(
            f"{name} must be float32 (B, 3, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}"
        )


def _check_generator_inputs(
    generator: nn.Module, stick_figure: Tensor, previous_frame: Tensor | None
) -> None:
    """The checks of :meth:`GlobalGenerator.forward` (also :class:`LocalEnhancer`)."""
    _check_image("stick_figure", stick_figure)
    height, width = stick_figure.shape[-2:]
    multiple = generator.size_multiple_px
    if height % multiple or width % multiple:
        raise ValueError(
            f"stick_figure is {height}x{width} (HxW) but this generator "
            f"(n_downsample={generator.n_downsample}) needs H and W divisible by {multiple}; "
            "pad or resize the canvas"
        )
    if generator.temporal:
        if previous_frame is None:
            raise ValueError("this generator is temporal: pass previous_frame (zeros for the first frame)")
        _check_image("previous_frame", previous_frame)
        if previous_frame.shape != stick_figure.shape:
            raise ValueError(
                f"previous_frame {tuple(previous_frame.shape)} must match "
                f"stick_figure {tuple(stick_figure.shape)}"
            )


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


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator G1, conditioned on the previous output frame (Everybody Dance Now).

    Layers: reflection-padded c7s1-``ngf`` conv, ``n_downsample`` stride-2 3x3 convs doubling the channels,
    ``n_blocks`` residual blocks, ``n_downsample`` stride-2 transposed convs halving them, reflection-padded
    c7s1-3 conv and tanh; every conv but the last is followed by InstanceNorm2d (affine=False) and ReLU.

    Args:
        ngf: channels of the first layer.
        n_downsample: number of stride-2 downsamplings; H and W must be divisible by ``2**n_downsample``.
        n_blocks: residual blocks at the bottleneck.
        temporal: if True the input is ``concat(stick_figure, previous_frame)`` (6 channels); if False only
            the stick figure (3 channels) and ``previous_frame`` is ignored.
    """

    def __init__(
        self, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9, temporal: bool = True
    ) -> None:
        super().__init__()
        self.ngf, self.n_downsample, self.n_blocks, self.temporal = ngf, n_downsample, n_blocks, temporal
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(6 if temporal else 3, ngf, kernel_size=7),
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
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def size_multiple_px(self) -> int:
        """H and W of the inputs must be multiples of this many pixels."""
        return 2**self.n_downsample

    def forward(self, stick_figure: Tensor, previous_frame: Tensor | None = None) -> Tensor:
        """Generate the frame for ``stick_figure``.

        Args:
            stick_figure: float32 ``(B, 3, H, W)`` in [0, 1], the rendered pose.
            previous_frame: float32 ``(B, 3, H, W)`` in [0, 1], this generator's previous output; all zeros
                (black) for the first frame of a sequence. Required when ``temporal``, ignored otherwise.

        Returns:
            float32 ``(B, 3, H, W)`` in [0, 1] (``(tanh + 1) / 2``).

        Raises:
            ValueError: on a wrong shape or dtype, mismatched inputs, H or W not divisible by
                ``size_multiple_px``, or a missing ``previous_frame`` for a temporal generator.

        ONNX: export with ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter; the dynamo one
        needs ``onnxscript``). A non-temporal generator's graph keeps a ``previous_frame`` input too (unused:
        multiplied by zero), so every exported target takes the same two inputs.
        """
        # In a trace (ONNX export) shapes are constants and these checks only warn; the eager call checks.
        if not torch.jit.is_tracing():
            _check_generator_inputs(self, stick_figure, previous_frame)
        x = stick_figure * 2 - 1
        if self.temporal:
            assert previous_frame is not None
            x = torch.cat([x, previous_frame * 2 - 1], dim=1)
        elif previous_frame is not None and torch.onnx.is_in_onnx_export():
            # Keep previous_frame as a graph input (the exporter drops unused ones) so that every exported
            # generator has the same two inputs; multiplied by 0 it does not change the result.
            x = x + 0 * previous_frame
        return (self.model(x) + 1) / 2


def downsample_half(image: Tensor) -> Tensor:
    """Halve H and W the way pix2pixHD's local enhancer feeds its global generator: 3x3 average pooling,
    stride 2, padding 1, ``count_include_pad=False``. ``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``."""
    return F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)


class LocalEnhancer(nn.Module):
    """pix2pixHD's coarse-to-fine generator {G1, G2} with one local enhancer (Wang et al. 2018, Sec. 3.2),
    conditioned on the previous output frame (Everybody Dance Now).

    G1 is a :class:`GlobalGenerator` without its output layer (reflection pad, c7s1-3 conv, tanh), run on the
    input downsampled by :func:`downsample_half`; its ``ngf``-channel output is added to G2's front end
    (reflection-padded c7s1-``ngf/2`` conv and a stride-2 3x3 conv to ``ngf`` channels, on the full-size
    input), then G2's ``n_blocks_local`` residual blocks, a stride-2 transposed conv to ``ngf/2`` channels and
    the c7s1-3 output conv with tanh. Keys of G1's layers are ``global_model.N.*``, the same ``N`` as in
    :class:`GlobalGenerator` (``model.N.*``), so :meth:`load_global` copies a trained G1 strictly.

    Args:
        ngf: G1's ``ngf`` (even); G2's first layer has ``ngf // 2`` channels.
        n_downsample, n_blocks: G1's (see :class:`GlobalGenerator`).
        n_blocks_local: G2's residual blocks.
        temporal: as in :class:`GlobalGenerator`.
    """

    def __init__(
        self, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9, n_blocks_local: int = 3,
        temporal: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if ngf % 2:
            raise ValueError(f"the local enhancer needs an even ngf (G2 has ngf / 2 channels), got {ngf}")
        self.ngf, self.n_downsample, self.temporal = ngf, n_downsample, temporal
        global_generator = GlobalGenerator(ngf, n_downsample, n_blocks, temporal)
        self.global_model = nn.Sequential(*list(global_generator.model)[:-_GLOBAL_OUTPUT_LAYERS])
        local_ngf = ngf // 2
        self.local_front = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(6 if temporal else 3, local_ngf, kernel_size=7),
            _norm(local_ngf),
            nn.ReLU(inplace=True),
            nn.Conv2d(local_ngf, ngf, kernel_size=3, stride=2, padding=1),
            _norm(ngf),
            nn.ReLU(inplace=True),
        )
        self.local_back = nn.Sequential(
            *[ResnetBlock(ngf) for _ in range(n_blocks_local)],
            nn.ConvTranspose2d(ngf, local_ngf, kernel_size=3, stride=2, padding=1, output_padding=1),
            _norm(local_ngf),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(local_ngf, 3, kernel_size=7),
            nn.Tanh(),
        )

    @property
    def size_multiple_px(self) -> int:
        """H and W of the inputs must be multiples of this many pixels (G1 sees them halved)."""
        return 2 ** (self.n_downsample + 1)

    def forward(self, stick_figure: Tensor, previous_frame: Tensor | None = None) -> Tensor:
        """As :meth:`GlobalGenerator.forward` (same inputs, output and errors), at the full resolution."""
        if not torch.jit.is_tracing():
            _check_generator_inputs(self, stick_figure, previous_frame)
        x = stick_figure * 2 - 1
        if self.temporal:
            assert previous_frame is not None
            x = torch.cat([x, previous_frame * 2 - 1], dim=1)
        elif previous_frame is not None and torch.onnx.is_in_onnx_export():
            x = x + 0 * previous_frame  # keep previous_frame as a graph input (see GlobalGenerator)
        coarse = self.global_model(downsample_half(x))
        return (self.local_back(self.local_front(x) + coarse) + 1) / 2

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
                kept[f"global_model.{index}.{rest}"] = value
            else:
                dropped.append(key)
        try:
            self.global_model.load_state_dict(
                {k.removeprefix("global_model."): v for k, v in kept.items()}, strict=True
            )
        except RuntimeError as error:
            raise ValueError(
                f"the global generator's weights do not fit this local enhancer's G1: {error}"
            ) from None
        expected_dropped = {f"model.{n_kept + 1}.weight", f"model.{n_kept + 1}.bias"}
        if set(dropped) != expected_dropped:
            raise ValueError(f"unexpected global generator output layers {sorted(dropped)}")


#: Layers at the end of GlobalGenerator.model that the local enhancer drops: reflection pad, conv, tanh.
_GLOBAL_OUTPUT_LAYERS = 3


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
        self.temporal = generator.temporal

    @property
    def size_multiple_px(self) -> int:
        return 2 * self.generator.size_multiple_px

    def forward(self, stick_figure: Tensor, previous_frame: Tensor | None = None) -> Tensor:
        """As :meth:`GlobalGenerator.forward`: float32 ``(B, 3, H, W)`` in [0, 1] in and out."""
        small_previous = None if previous_frame is None else downsample_half(previous_frame)
        small = self.generator(downsample_half(stick_figure), small_previous)
        return F.interpolate(small, size=stick_figure.shape[-2:], mode="bilinear", align_corners=False)


class FaceGenerator(nn.Module):
    """Everybody Dance Now's face residual generator (Chan et al. 2019, Sec. 3.3): a small pix2pixHD global
    generator from ``concat(stick crop, generated crop)`` (6 channels) to a residual in [-1, 1] added to the
    generated crop. Its output layer starts at zero, so an untrained face stage changes nothing.

    Args:
        ngf, n_downsample, n_blocks: as :class:`GlobalGenerator`; crops must be multiples of
            ``2**n_downsample`` pixels.
    """

    def __init__(self, ngf: int = 32, n_downsample: int = 2, n_blocks: int = 3) -> None:
        super().__init__()
        self.n_downsample = n_downsample
        body = GlobalGenerator(ngf, n_downsample, n_blocks, temporal=True)  # 6 input channels
        self.model = body.model

    @property
    def size_multiple_px(self) -> int:
        return 2**self.n_downsample

    def zero_output(self) -> None:
        """Set the output layer to zero (the residual is then exactly 0)."""
        output_conv = self.model[-2]  # before the tanh
        assert isinstance(output_conv, nn.Conv2d)
        nn.init.zeros_(output_conv.weight)
        nn.init.zeros_(output_conv.bias)

    def forward(self, stick_crop: Tensor, frame_crop: Tensor) -> Tensor:
        """The face residual.

        Args:
            stick_crop: float32 ``(B, 3, S, S)`` in [0, 1], the face crop of the stick figure.
            frame_crop: float32 ``(B, 3, S, S)`` in [0, 1], the same crop of the generated frame.

        Returns:
            float32 ``(B, 3, S, S)`` in [-1, 1]; the corrected crop is ``clamp(frame_crop + residual, 0, 1)``
            (:meth:`refine`).

        Raises:
            ValueError: on wrong shapes or dtypes, mismatched inputs, or S not a multiple of
                ``size_multiple_px``.
        """
        if not torch.jit.is_tracing():
            _check_image("stick_crop", stick_crop)
            _check_image("frame_crop", frame_crop)
            if stick_crop.shape != frame_crop.shape:
                raise ValueError(
                    f"stick_crop {tuple(stick_crop.shape)} and frame_crop {tuple(frame_crop.shape)} differ"
                )
            height, width = stick_crop.shape[-2:]
            if height % self.size_multiple_px or width % self.size_multiple_px:
                raise ValueError(
                    f"face crops are {height}x{width} but this face generator needs multiples of "
                    f"{self.size_multiple_px} pixels"
                )
        x = torch.cat([stick_crop * 2 - 1, frame_crop * 2 - 1], dim=1)
        return self.model(x)

    def refine(self, stick_crop: Tensor, frame_crop: Tensor) -> Tensor:
        """The corrected face crop ``clamp(frame_crop + residual, 0, 1)``, float32 ``(B, 3, S, S)``."""
        return (frame_crop + self(stick_crop, frame_crop)).clamp(0.0, 1.0)


class NLayerDiscriminator(nn.Module):
    """pix2pixHD's PatchGAN at one scale: 4x4 convs, LeakyReLU(0.2), InstanceNorm except on the first layer.

    ``n_layers`` stride-2 convs (channels ``ndf``, doubling, capped at 512), one stride-1 conv, and a stride-1
    conv to one channel (the patch prediction, unbounded: LSGAN).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        pad = 2  # ceil((4 - 1) / 2), as in pix2pixHD
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=pad), nn.LeakyReLU(0.2))]
        channels = ndf
        for i in range(1, n_layers + 1):
            previous, channels = channels, min(channels * 2, 512)
            stride = 2 if i < n_layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(previous, channels, 4, stride=stride, padding=pad),
                    _norm(channels),
                    nn.LeakyReLU(0.2),
                )
            )
        blocks.append(nn.Sequential(nn.Conv2d(channels, 1, 4, stride=1, padding=pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Returns the ``n_layers + 2`` feature maps; the last, ``(B, 1, h, w)``, is the patch prediction."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator: ``n_scales`` independent :class:`NLayerDiscriminator` s, scale
    ``k`` seeing the input average-pooled ``k`` times (3x3, stride 2, padding 1, count_include_pad=False).

    Its input is Everybody Dance Now's temporal pair ``concat(stick_prev, stick, frame_prev, frame)``
    (12 channels, each group of 3 in [0, 1]), or ``concat(stick, frame)`` (6 channels) when not temporal.

    Args:
        in_channels: 12 (temporal) or 6.
        ndf: channels of each scale's first layer.
        n_layers: stride-2 layers per scale.
        n_scales: number of scales.
    """

    def __init__(self, in_channels: int = 12, ndf: int = 64, n_layers: int = 3, n_scales: int = 2) -> None:
        super().__init__()
        if in_channels not in (6, 12):
            raise ValueError(f"in_channels must be 12 (temporal pair) or 6 (single pair), got {in_channels}")
        self.in_channels, self.n_layers = in_channels, n_layers
        self.scales = nn.ModuleList(NLayerDiscriminator(in_channels, ndf, n_layers) for _ in range(n_scales))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """Judge ``x``: float32 ``(B, in_channels, H, W)`` in [0, 1].

        Returns:
            one list per scale (full resolution first) of that scale's ``n_layers + 2`` feature maps; the
            last map of each, float32 ``(B, 1, h, w)``, is the unbounded patch prediction (real ~ 1).

        Raises:
            ValueError: on a wrong channel count, dtype or rank.
        """
        if x.dtype != torch.float32 or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected float32 (B, {self.in_channels}, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        x = x * 2 - 1
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs


def init_weights(module: nn.Module) -> None:
    """pix2pixHD's initialization (``weights_init``): conv and transposed-conv weights ~ N(0, 0.02).
    Use as ``model.apply(init_weights)``; draws from torch's global RNG."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)


def build_generator(config: GeneratorConfig) -> GlobalGenerator:
    """A freshly initialized (:func:`init_weights`) :class:`GlobalGenerator` from its config."""
    generator = GlobalGenerator(config.ngf, config.n_downsample, config.n_blocks, config.temporal)
    generator.apply(init_weights)
    return generator


def build_local_enhancer(config: FitConfig) -> LocalEnhancer:
    """A freshly initialized (:func:`init_weights`) :class:`LocalEnhancer` from a run's config (G1 from
    ``config.generator``, G2 from ``config.local``); :meth:`LocalEnhancer.load_global` loads a trained G1."""
    g = config.generator
    enhancer = LocalEnhancer(g.ngf, g.n_downsample, g.n_blocks, config.local.n_blocks, g.temporal)
    enhancer.apply(init_weights)
    return enhancer


def build_main_generator(config: FitConfig, kind: str) -> GlobalGenerator | LocalEnhancer:
    """A freshly initialized main generator of ``kind`` "global" or "local" for ``config``.

    Raises:
        ValueError: for another ``kind``.
    """
    if kind == "global":
        return build_generator(config.generator)
    if kind == "local":
        return build_local_enhancer(config)
    raise ValueError(f"main generator kind must be 'global' or 'local', got {kind!r}")


def build_face_generator(config: FaceConfig) -> FaceGenerator:
    """A :class:`FaceGenerator` initialized as pix2pixHD (:func:`init_weights`) but with a zero output layer,
    so the face stage starts from the main generator's frames unchanged."""
    face = FaceGenerator(config.ngf, config.n_downsample, config.n_blocks)
    face.apply(init_weights)
    face.zero_output()
    return face


def build_face_discriminator(config: FaceConfig) -> MultiscaleDiscriminator:
    """The face stage's PatchGAN on ``concat(stick crop, face crop)`` (6 channels), initialized."""
    discriminator = MultiscaleDiscriminator(6, config.ndf, config.n_layers, config.n_scales)
    discriminator.apply(init_weights)
    return discriminator


def build_discriminator(config: DiscriminatorConfig, *, temporal: bool = True) -> MultiscaleDiscriminator:
    """A freshly initialized (:func:`init_weights`) :class:`MultiscaleDiscriminator`; ``temporal`` must
    match the generator's."""
    discriminator = MultiscaleDiscriminator(
        12 if temporal else 6, config.ndf, config.n_layers, config.n_scales
    )
    discriminator.apply(init_weights)
    return discriminator
