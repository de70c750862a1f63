"""VGG19's convolutional part in plain PyTorch, loadable from torchvision's ``vgg19`` state dict, and
pix2pixHD's VGG perceptual loss.

torchvision is not installable here and weights cannot be downloaded at run time, so the network is defined
here with torchvision's layer indices (``features.N.weight``, ``features.N.bias``), and its weights come from
a local file: on a machine with torchvision, ``torch.save(torchvision.models.vgg19(weights="IMAGENET1K_V1")
.state_dict(), "vgg19.pth")``, then ``python -m train fit ... --vgg-weights vgg19.pth``.

Papers followed: Simonyan & Zisserman, "Very Deep Convolutional Networks" (ICLR 2015), configuration E;
Wang et al., pix2pixHD (CVPR 2018), ``models/networks.py``: ``Vgg19`` (slices ending at relu1_1, relu2_1,
relu3_1, relu4_1, relu5_1) and ``VGGLoss`` (L1 between the features of the generated and the real image,
weights 1/32, 1/16, 1/8, 1/4, 1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

#: VGG19 (configuration E): output channels of each 3x3 conv, "M" for a 2x2 max pool.
VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip
#: ``features`` indices (exclusive ends) of pix2pixHD's five slices: relu1_1, relu2_1, relu3_1, relu4_1,
#: relu5_1.
PIX2PIXHD_SLICE_ENDS = (2, 7, 12, 21, 30)
#: pix2pixHD's weights of the five slices' L1 terms.
PIX2PIXHD_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
#: torchvision's ImageNet normalization, which its VGG weights expect (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(ValueError):
    """A VGG weights file that is missing, unreadable or not torchvision's ``vgg19`` state dict."""


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` (37 layers: 16 convs with ReLU, 5 max pools), same key names.

    The ReLUs are not in place, so intermediate features can be kept.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)

    def slices(self, image: Tensor, ends: tuple[int, ...] = PIX2PIXHD_SLICE_ENDS) -> list[Tensor]:
        """Features of an ImageNet-normalized ``(B, 3, H, W)`` batch after each ``features[:end]``."""
        outputs, start, x = [], 0, image
        for end in ends:
            for layer in list(self.features)[start:end]:
                x = layer(x)
            outputs.append(x)
            start = end
        return outputs


def load_vgg19_features(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> VGG19Features:
    """A :class:`VGG19Features` with the weights of a torchvision ``vgg19`` state dict saved at ``path``
    (``features.*`` keys loaded strictly; its ``classifier.*`` keys, if any, are not needed and skipped).

    Raises:
        VGGWeightsError: if the file is missing, unreadable, or not such a state dict.
    """
    path = Path(path)
    how = (
        "save one where torchvision is installed with torch.save(torchvision.models.vgg19("
        'weights="IMAGENET1K_V1").state_dict(), PATH)'
    )
    if not path.is_file():
        raise VGGWeightsError(f"no VGG19 weights file at {path}; {how}, or leave loss.vgg_weights empty")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes can raise almost any exception type
        raise VGGWeightsError(
            f"cannot read VGG19 weights {path} ({type(error).__name__}: {error}); {how}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise VGGWeightsError(f"{path} is not a state dict of tensors; {how}")
    unexpected = [key for key in state if not key.startswith(("features.", "classifier."))]
    if unexpected:
        raise VGGWeightsError(
            f"{path} is not torchvision's vgg19 state dict (keys {unexpected[:3]}...); {how}"
        )
    model = VGG19Features()
    features = {key: value for key, value in state.items() if key.startswith("features.")}
    try:
        model.load_state_dict(features, strict=True)
    except RuntimeError as error:
        raise VGGWeightsError(f"{path} does not fit VGG19's layers: {error}; {how}") from None
    return model.to(map_location).eval().requires_grad_(False)


class VGGPerceptualLoss(nn.Module):
    """pix2pixHD's ``VGGLoss``: ``sum_i w_i * L1(phi_i(generated), phi_i(real))`` over the five slices of
    :data:`PIX2PIXHD_SLICE_ENDS` with weights :data:`PIX2PIXHD_LAYER_WEIGHTS`, real features detached.

    Unlike pix2pixHD (which feeds its [-1, 1] images as they are), inputs in [0, 1] are normalized with
    ImageNet's mean and standard deviation, which torchvision's weights expect. The network is frozen.

    Args:
        features: a loaded :class:`VGG19Features` (:func:`load_vgg19_features`).
    """

    def __init__(self, features: VGG19Features) -> None:
        super().__init__()
        self.vgg = features.eval().requires_grad_(False)
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, generated: Tensor, real: Tensor) -> Tensor:
        """Perceptual distance of float32 ``(B, 3, H, W)`` images in [0, 1] (H, W >= 16); a scalar >= 0.

        Raises:
            ValueError: if the shapes differ or are not ``(B, 3, H, W)``.
        """
        if generated.shape != real.shape or generated.dim() != 4 or generated.shape[1] != 3:
            raise ValueError(
                f"VGG loss needs two (B, 3, H, W) images of one shape, got {tuple(generated.shape)} and "
                f"{tuple(real.shape)}"
            )
        fake_features = self.vgg.slices((generated - self.mean) / self.std)
        with torch.no_grad():
            real_features = self.vgg.slices((real - self.mean) / self.std)
        total = generated.new_zeros(())
        for weight, fake, target in zip(PIX2PIXHD_LAYER_WEIGHTS, fake_features, real_features, strict=True):
            total = total + weight * F.l1_loss(fake, target.detach())
        return total
