"""The networks: pix2pixHD's global generator and multi-scale PatchGAN discriminator, with Everybody Dance
Now's temporal conditioning.

Papers followed:

- Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs" (pix2pixHD,
  CVPR 2018), Sec. 3.2 and the reference code ``models/networks.py``: ``GlobalGenerator``,
  ``NLayerDiscriminator``, ``MultiscaleDiscriminator``; instance normalization without affine parameters.
- Chan et al., "Everybody Dance Now" (ICCV 2019), Sec. 3.2: the generator sees the current stick figure and
  its own previous output; the discriminator judges a temporal pair of (stick figure, frame) couples.

All images at the public boundaries are float32 ``(B, 3, H, W)`` RGB in [0, 1]; the networks map them to
[-1, 1] inside, as the papers' code does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from train.config import DiscriminatorConfig, GeneratorConfig


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def _check_image(name: str, image: Tensor) -> None:
    if image.dtype != torch.float32 or image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(
            f"{name} must be float32 (B, 3, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}"
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
            self._check_inputs(stick_figure, previous_frame)
        x = stick_figure * 2 - 1
        if self.temporal:
            assert previous_frame is not None
            x = torch.cat([x, previous_frame * 2 - 1], dim=1)
        elif previous_frame is not None and torch.onnx.is_in_onnx_export():
            # Keep previous_frame as a graph input (the exporter drops unused ones) so that every exported
            # generator has the same two inputs; multiplied by 0 it does not change the result.
            x = x + 0 * previous_frame
        return (self.model(x) + 1) / 2

    def _check_inputs(self, stick_figure: Tensor, previous_frame: Tensor | None) -> None:
        _check_image("stick_figure", stick_figure)
        height, width = stick_figure.shape[-2:]
        multiple = self.size_multiple_px
        if height % multiple or width % multiple:
            raise ValueError(
                f"stick_figure is {height}x{width} (HxW) but this generator "
                f"(n_downsample={self.n_downsample}) needs H and W divisible by {multiple}; "
                "pad or resize the canvas"
            )
        if self.temporal:
            if previous_frame is None:
                raise ValueError(
                    "this generator is temporal: pass previous_frame (zeros for the first frame)"
                )
            _check_image("previous_frame", previous_frame)
            if previous_frame.shape != stick_figure.shape:
                raise ValueError(
                    f"previous_frame {tuple(previous_frame.shape)} must match "
                    f"stick_figure {tuple(stick_figure.shape)}"
                )


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


def build_discriminator(config: DiscriminatorConfig, *, temporal: bool = True) -> MultiscaleDiscriminator:
    """A freshly initialized (:func:`init_weights`) :class:`MultiscaleDiscriminator`; ``temporal`` must
    match the generator's."""
    discriminator = MultiscaleDiscriminator(
        12 if temporal else 6, config.ndf, config.n_layers, config.n_scales
    )
    discriminator.apply(init_weights)
    return discriminator
