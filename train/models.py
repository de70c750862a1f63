"""The training side of the networks: pix2pixHD's multi-scale PatchGAN discriminator, pix2pixHD's
initialization, and builders of every network from the training configuration. The generators themselves
(global generator, local enhancer, face residual generator) live with the runtime in
:mod:`realtime.model.nets`
and are re-exported here.

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

from realtime.model.inputs import GeneratorInputs
from realtime.model.nets import (
    DownscaledGenerator,
    FaceGenerator,
    GeneratorSpec,
    GlobalGenerator,
    LocalEnhancer,
    MobileGenerator,
    ResnetBlock,
    downsample_half,
    face_spec,
)
from train.config import DiscriminatorConfig, FaceConfig, FitConfig, GeneratorConfig

__all__ = [
    "DownscaledGenerator", "FaceGenerator", "GlobalGenerator", "LocalEnhancer", "MainGenerator",
    "MobileGenerator", "MultiscaleDiscriminator", "NLayerDiscriminator", "ResnetBlock", "build_discriminator",
    "build_face_discriminator", "build_face_generator", "build_generator", "build_local_enhancer",
    "build_main_generator", "downsample_half", "generator_inputs", "generator_spec", "init_weights",
]  # fmt: skip


#: A run's main generator: the global stage's (pix2pixHD's global generator or the light CPU generator) or
#: the local enhancer.
MainGenerator = GlobalGenerator | MobileGenerator | LocalEnhancer


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


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


def generator_inputs(config: GeneratorConfig) -> GeneratorInputs:
    """The main generator's inputs for a config: the stick figure, the previous frame when ``temporal``, then
    ``extra_inputs`` in order (each declared in :mod:`realtime.model.inputs`).

    Raises:
        KeyError: for an extra input that is not declared.
    """
    names = ["stick_figure", *(["previous_frame"] if config.temporal else []), *config.extra_inputs]
    return GeneratorInputs.of(names)


def generator_spec(config: FitConfig, kind: str, downscale: int = 1) -> GeneratorSpec:
    """The architecture of a run's main generator of stage ``kind`` "global" or "local". The global stage's
    network is ``config.generator.kind`` ("global": pix2pixHD's, "mobile": :class:`MobileGenerator`).

    Raises:
        ValueError: for another ``kind``.
    """
    g = config.generator
    if kind == "global":
        return _global_stage_spec(g, downscale)
    if kind != "local":
        raise ValueError(f"main generator kind must be 'global' or 'local', got {kind!r}")
    return GeneratorSpec(
        "local", g.ngf, g.n_downsample, g.n_blocks, config.local.n_blocks, downscale, generator_inputs(g),
        blend_prior=g.blend_prior, composite_over=g.composite_over,
    )  # fmt: skip


def _global_stage_spec(config: GeneratorConfig, downscale: int = 1) -> GeneratorSpec:
    """The global stage's network (``config.kind``: "global" or "mobile") at ``downscale``."""
    return GeneratorSpec(
        config.kind, config.ngf, config.n_downsample, config.n_blocks, 0, downscale,
        generator_inputs(config), config.background_hw, config.blend_prior, config.composite_over,
    )  # fmt: skip


def build_generator(config: GeneratorConfig) -> GlobalGenerator | MobileGenerator:
    """A freshly initialized (:func:`init_weights`) global-stage generator from its config: a
    :class:`GlobalGenerator` (``kind`` "global") or a :class:`MobileGenerator` (``kind`` "mobile")."""
    spec = _global_stage_spec(config)
    generator = MobileGenerator(spec) if config.kind == "mobile" else GlobalGenerator(spec)
    generator.apply(init_weights)
    return generator


def build_local_enhancer(config: FitConfig) -> LocalEnhancer:
    """A freshly initialized (:func:`init_weights`) :class:`LocalEnhancer` from a run's config (G1 from
    ``config.generator``, G2 from ``config.local``); :meth:`LocalEnhancer.load_global` loads a trained G1."""
    enhancer = LocalEnhancer(generator_spec(config, "local"))
    enhancer.apply(init_weights)
    return enhancer


def build_main_generator(config: FitConfig, kind: str) -> MainGenerator:
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
    face = FaceGenerator(face_spec(config.ngf, config.n_downsample, config.n_blocks))
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
