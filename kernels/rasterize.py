"""Stick-figure rasterization: keypoints in, an anti-aliased RGB stick figure out.

One public op, :func:`rasterize_stick_figure`, with an ``impl=`` switch (after NVlabs/stylegan3's
``torch_utils/ops``): ``"ref"`` is the plain-PyTorch reference and the specification; ``"cuda"`` is the
CUDA kernel, which a later change adds; ``"auto"`` picks CUDA only for CUDA tensors with a loaded kernel.

Drawing model (what the reference computes, per image, in this order):

1. A black canvas.
2. Each limb of :data:`realtime.skeleton.LIMBS` whose two joints both have confidence
   ``>= confidence_threshold`` is a capsule (a segment with round caps) of width ``limb_thickness_px``,
   painted in the limb's color with coverage ``clamp(thickness/2 + 0.5 - d, 0, 1)``, where ``d`` is the
   distance in pixels from the pixel center to the segment: one pixel of linear anti-aliasing at the edge.
   Limbs are composited with "over" in :data:`LIMBS` order, so a later limb covers an earlier one.
3. Each joint with confidence ``>= confidence_threshold`` is a disc of radius ``joint_radius_px`` in the
   joint's color, with the same edge ramp, composited over the limbs in :class:`Joint` order.

Pixel ``(row i, column j)`` has its center at ``x = j + 0.5, y = i + 0.5``, so a joint at ``(0, 0)`` lies on
the image's top-left corner.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from realtime.skeleton import NUM_JOINTS, joint_colors, limb_arrays

log = logging.getLogger(__name__)

_IMPLS = ("auto", "ref", "cuda")
_logged_impl: set[str] = set()


@dataclass(frozen=True)
class RenderParams:
    """How a stick figure is drawn; part of a target bundle (the generator sees its training rendering).

    Attributes:
        limb_thickness_px: limb width in pixels (> 0).
        joint_radius_px: joint disc radius in pixels (>= 0; 0 draws no discs).
        confidence_threshold: joints below this confidence in [0, 1] are treated as missing.
    """

    limb_thickness_px: float = 4.0
    joint_radius_px: float = 3.0
    confidence_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not self.limb_thickness_px > 0:
            raise ValueError(f"limb_thickness_px must be > 0, got {self.limb_thickness_px}")
        if not self.joint_radius_px >= 0:
            raise ValueError(f"joint_radius_px must be >= 0, got {self.joint_radius_px}")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {self.confidence_threshold}")

    @classmethod
    def for_canvas(cls, width: int, height: int, confidence_threshold: float = 0.5) -> RenderParams:
        """Parameters scaled to a canvas: 4 px limbs and 3 px joints at a 256-pixel short side."""
        scale = min(width, height) / 256.0
        return cls(
            limb_thickness_px=round(4.0 * scale, 2),
            joint_radius_px=round(3.0 * scale, 2),
            confidence_threshold=confidence_threshold,
        )


def rasterize_stick_figure(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    *,
    height: int,
    width: int,
    params: RenderParams,
    impl: str = "auto",
) -> torch.Tensor:
    """Draw a batch of stick figures.

    Args:
        joints_px: float32 ``(B, NUM_JOINTS, 2)`` joint x, y in pixels of the output canvas. May lie off
            the canvas; non-finite coordinates of a missing joint are ignored.
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1]; joints below ``params.confidence_threshold`` are
            missing and neither they nor their limbs are drawn.
        height, width: canvas size in pixels (>= 1).
        params: thickness, radius and threshold (:class:`RenderParams`).
        impl: ``"auto"``, ``"ref"`` or ``"cuda"``.

    Returns:
        float32 ``(B, 3, height, width)`` RGB in [0, 1] on the device of ``joints_px``.

    Raises:
        ValueError: on wrong shapes, dtypes, devices, sizes or ``impl``.
        RuntimeError: if ``impl="cuda"`` and the CUDA kernel is not available.
    """
    _check_inputs(joints_px, confidence, height, width)
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if impl == "cuda":
        raise RuntimeError(
            "the CUDA stick-figure kernel is not built yet; "
            "use impl='ref' (or 'auto', which picks the reference)"
        )
    _log_impl_once("ref")
    return _rasterize_ref(joints_px, confidence, height=height, width=width, params=params)


def _log_impl_once(name: str) -> None:
    if name not in _logged_impl:
        _logged_impl.add(name)
        log.info("rasterize_stick_figure: using the %s implementation", name)


def _check_inputs(joints_px: torch.Tensor, confidence: torch.Tensor, height: int, width: int) -> None:
    if not isinstance(joints_px, torch.Tensor) or not isinstance(confidence, torch.Tensor):
        raise ValueError("joints_px and confidence must be torch tensors")
    if joints_px.ndim != 3 or joints_px.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"joints_px must be (B, {NUM_JOINTS}, 2), got {tuple(joints_px.shape)}")
    if confidence.shape != joints_px.shape[:2]:
        raise ValueError(f"confidence must be (B, {NUM_JOINTS}), got {tuple(confidence.shape)}")
    if joints_px.dtype != torch.float32 or confidence.dtype != torch.float32:
        raise ValueError(
            f"joints_px and confidence must be float32, got {joints_px.dtype}, {confidence.dtype}"
        )
    if joints_px.device != confidence.device:
        raise ValueError(f"joints_px on {joints_px.device} but confidence on {confidence.device}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"canvas must be at least 1x1, got {width}x{height}")


def _window(lo: float, hi: float, reach: float, size: int) -> tuple[int, int]:
    """Pixel index range ``[start, stop)`` whose centers can lie within ``reach`` of ``[lo, hi]``."""
    return max(0, math.floor(lo - reach)), min(size, math.ceil(hi + reach) + 1)


def _rasterize_ref(
    joints_px: torch.Tensor, confidence: torch.Tensor, *, height: int, width: int, params: RenderParams
) -> torch.Tensor:
    """The reference: plain PyTorch, any device. See the module docstring for the drawing model.

    Each limb and disc is evaluated only on the window of pixels it can cover (coverage is exactly 0
    further out), which gives the same image as evaluating every pixel, several times faster.
    """
    device = joints_px.device
    batch = joints_px.shape[0]
    parents, children, limb_rgb = (torch.from_numpy(a).to(device) for a in limb_arrays())
    joint_rgb = torch.from_numpy(joint_colors()).to(device)
    present = (confidence >= params.confidence_threshold) & torch.isfinite(joints_px).all(dim=-1)  # (B, J)
    joints = torch.where(present[..., None], joints_px, torch.zeros_like(joints_px))
    out = torch.zeros(batch, 3, height, width, device=device, dtype=torch.float32)

    def paint(color: torch.Tensor, ends: torch.Tensor, drawn: torch.Tensor, reach: float, alpha_fn) -> None:
        """Composite ``color`` over ``out`` with coverage ``alpha_fn(px, py)`` on the window around
        ``ends`` (B, K, 2) of the images in ``drawn`` (B,)."""
        if not bool(drawn.any()):
            return
        used = ends[drawn]
        x0, x1 = _window(used[..., 0].min().item(), used[..., 0].max().item(), reach, width)
        y0, y1 = _window(used[..., 1].min().item(), used[..., 1].max().item(), reach, height)
        if x0 >= x1 or y0 >= y1:
            return
        px = (torch.arange(x0, x1, device=device, dtype=torch.float32) + 0.5).view(1, 1, -1)
        py = (torch.arange(y0, y1, device=device, dtype=torch.float32) + 0.5).view(1, -1, 1)
        alpha = (alpha_fn(px, py) * drawn.view(-1, 1, 1).to(torch.float32))[:, None]  # (B, 1, h, w)
        region = out[:, :, y0:y1, x0:x1]
        out[:, :, y0:y1, x0:x1] = region * (1.0 - alpha) + color.view(1, 3, 1, 1) * alpha

    half = params.limb_thickness_px / 2.0
    for limb in range(parents.shape[0]):
        a = joints[:, parents[limb]]  # (B, 2)
        b = joints[:, children[limb]]
        drawn = present[:, parents[limb]] & present[:, children[limb]]  # (B,)
        ax, ay = a[:, 0].view(-1, 1, 1), a[:, 1].view(-1, 1, 1)
        dx, dy = (b[:, 0] - a[:, 0]).view(-1, 1, 1), (b[:, 1] - a[:, 1]).view(-1, 1, 1)
        length_sq = dx * dx + dy * dy

        def limb_alpha(px, py, ax=ax, ay=ay, dx=dx, dy=dy, length_sq=length_sq):
            t = ((px - ax) * dx + (py - ay) * dy) / length_sq.clamp_min(1e-12)
            t = torch.where(length_sq > 0, t.clamp(0.0, 1.0), torch.zeros_like(t))
            dist = torch.hypot(px - (ax + t * dx), py - (ay + t * dy))  # (B, h, w)
            return (half + 0.5 - dist).clamp(0.0, 1.0)

        paint(limb_rgb[limb], torch.stack([a, b], dim=1), drawn, half + 0.5, limb_alpha)

    radius = params.joint_radius_px
    if radius > 0:
        for joint in range(NUM_JOINTS):
            c = joints[:, joint]
            cx, cy = c[:, 0].view(-1, 1, 1), c[:, 1].view(-1, 1, 1)

            def disc_alpha(px, py, cx=cx, cy=cy):
                return (radius + 0.5 - torch.hypot(px - cx, py - cy)).clamp(0.0, 1.0)

            paint(joint_rgb[joint], c[:, None], present[:, joint], radius + 0.5, disc_alpha)
    return out
