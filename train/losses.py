"""Training losses of pix2pixHD (Wang et al., CVPR 2018, Sec. 3.2 and ``models/pix2pixHD_model.py``) as used
by Everybody Dance Now (Chan et al., ICCV 2019, Sec. 3.2), and PG2's pose-mask L1 (Ma et al., "Pose Guided
Person Image Generation", NeurIPS 2017, Sec. 3.1, Eq. 2). The VGG perceptual term is
:class:`train.vgg.VGGPerceptualLoss`.

Discriminator outputs are in the format of :meth:`train.models.MultiscaleDiscriminator.forward`: one list per
scale of feature maps, the last of which is the patch prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

ScaleOutputs = Sequence[Sequence[Tensor]]


def lsgan_loss(outputs: ScaleOutputs, target_is_real: bool) -> Tensor:
    """Least-squares GAN loss (Mao et al., ICCV 2017), pix2pixHD's ``GANLoss(use_lsgan=True)``: the mean
    squared error of each scale's patch prediction to 1 (real) or 0 (fake), averaged over scales.

    Args:
        outputs: per scale, the discriminator's feature maps; only the last, ``(B, 1, h, w)``, is used.
        target_is_real: whether the target is 1 (real) or 0 (fake).

    Returns:
        a float32 scalar >= 0; 0 for perfect predictions.

    Raises:
        ValueError: if ``outputs`` is empty.
    """
    if not outputs:
        raise ValueError("lsgan_loss needs the outputs of at least one discriminator scale")
    target = 1.0 if target_is_real else 0.0
    losses = [F.mse_loss(scale[-1], torch.full_like(scale[-1], target)) for scale in outputs]
    return torch.stack(losses).mean()


def feature_matching_loss(fake_outputs: ScaleOutputs, real_outputs: ScaleOutputs) -> Tensor:
    """pix2pixHD's discriminator feature-matching loss (Sec. 3.2, Eq. 4): L1 between the intermediate
    feature maps (all but the patch prediction) of the discriminator on fake and on real inputs, each layer
    weighted ``4 / (n_layers + 1)`` and each scale ``1 / n_scales``. Real features are detached.

    Args:
        fake_outputs, real_outputs: per scale, the discriminator's ``n_layers + 2`` feature maps; same
            structure and shapes.

    Returns:
        a float32 scalar >= 0; 0 when the features are identical.

    Raises:
        ValueError: if the two structures differ.
    """
    if len(fake_outputs) != len(real_outputs) or not fake_outputs:
        raise ValueError(
            f"need equal, non-zero numbers of scales, got {len(fake_outputs)} and {len(real_outputs)}"
        )
    scale_weight = 1.0 / len(fake_outputs)
    total = fake_outputs[0][0].new_zeros(())
    for fake, real in zip(fake_outputs, real_outputs, strict=True):
        if len(fake) != len(real) or len(fake) < 2:
            raise ValueError(
                f"each scale needs >= 2 equal numbers of feature maps, got {len(fake)} and {len(real)}"
            )
        layer_weight = 4.0 / (len(fake) - 1)  # len - 1 = n_layers + 1 intermediate maps
        for fake_map, real_map in zip(fake[:-1], real[:-1], strict=True):
            total = total + scale_weight * layer_weight * F.l1_loss(fake_map, real_map.detach())
    return total


def l1_loss(generated: Tensor, real: Tensor) -> Tensor:
    """Mean absolute error between images of the same shape (any range; frames here are in [0, 1]).

    Raises:
        ValueError: if the shapes differ.
    """
    if generated.shape != real.shape:
        raise ValueError(f"l1_loss: shapes differ, {tuple(generated.shape)} vs {tuple(real.shape)}")
    return F.l1_loss(generated, real)


def pose_mask_l1_loss(generated: Tensor, real: Tensor, mask: Tensor) -> Tensor:
    """PG2's pose-mask L1 (Ma et al. 2017, Eq. 2): ``mean(|(generated - real) * (1 + mask)|)``, so pixels of
    the person count up to twice as much as the background.

    Args:
        generated, real: float32 ``(B, C, H, W)`` images (here in [0, 1]).
        mask: float32 ``(B, 1, H, W)`` (or ``(B, C, H, W)``) in [0, 1], 1 on the person (the prepared body
            mask divided by 255).

    Returns:
        a float32 scalar >= 0.

    Raises:
        ValueError: if the image shapes differ or the mask does not broadcast over them.
    """
    if generated.shape != real.shape:
        raise ValueError(f"pose_mask_l1_loss: shapes differ, {tuple(generated.shape)} vs {tuple(real.shape)}")
    if (
        mask.dim() != 4
        or mask.shape[0] != generated.shape[0]
        or mask.shape[1] not in (1, generated.shape[1])
        or mask.shape[2:] != generated.shape[2:]
    ):
        raise ValueError(
            f"mask must be (B, 1, H, W) matching the images {tuple(generated.shape)}, got {tuple(mask.shape)}"
        )
    return ((generated - real) * (1 + mask)).abs().mean()
