"""Stick-figure rasterization: keypoints in, an anti-aliased RGB stick figure out.

One public op, :func:`rasterize_stick_figure`, with an ``impl=`` switch (after NVlabs/stylegan3's
``torch_utils/ops``): ``"ref"`` is the plain-PyTorch reference and the specification; ``"cpu"`` is the C++
build and ``"cuda"`` the CUDA kernel of one source, ``kernels/rasterize.cu`` (the per-pixel functions are
``__host__ __device__``; see ``kernels/kernel_common.h``); ``"auto"`` picks CUDA for CUDA tensors, the CPU
build for CPU tensors where a C++ compiler exists, else the reference, and logs once which one runs. The
op is a leaf: the skeleton's limb and color tables come in as tensors (``realtime/pose/render.py`` binds
them).

Drawing model (what the reference computes, per image, in this order):

1. A black canvas.
2. Each limb ``l`` (``limb_parents[l]`` -> ``limb_children[l]``) whose two joints both have confidence
   ``>= confidence_threshold`` and finite coordinates is a capsule (a segment with round caps) of width
   ``limb_thickness_px``, painted in ``limb_colors[l]`` with coverage ``clamp(thickness/2 + 0.5 - d, 0, 1)``,
   where ``d`` is the distance in pixels from the pixel center to the segment: one pixel of linear
   anti-aliasing at the edge. Limbs are composited with "over" in table order, so a later limb covers an
   earlier one.
3. Each present joint is a disc of radius ``joint_radius_px`` in ``joint_colors[joint]``, with the same
   edge ramp, composited over the limbs in joint order.

Pixel ``(row i, column j)`` has its center at ``x = j + 0.5, y = i + 0.5``, so a joint at ``(0, 0)`` lies on
the image's top-left corner.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from kernels import _build

log = logging.getLogger(__name__)

OP_NAME = "rasterize_stick_figure"
#: pycuda argument formats of the CUDA kernels ("P" pointer, "i" int32, "f" float32), in signature order.
CUDA_ARG_FORMATS = {"rasterize_kernel": "PPiPPPiPfffiiP"}


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
        """Parameters scaled to a canvas: 4 px limbs and 3 px joints at 256x256, scaled with the canvas's
        linear size (the square root of its pixel count), so that a canvas of 256x256's pixel count in any
        aspect (a portrait 192x352 that a person fills) draws them as thick as 256x256 does."""
        scale = math.sqrt(width * height) / 256.0
        return cls(
            limb_thickness_px=round(4.0 * scale, 2),
            joint_radius_px=round(3.0 * scale, 2),
            confidence_threshold=confidence_threshold,
        )


def rasterize_stick_figure(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    limb_parents: torch.Tensor,
    limb_children: torch.Tensor,
    limb_colors: torch.Tensor,
    joint_colors: torch.Tensor,
    *,
    height: int,
    width: int,
    params: RenderParams,
    impl: str = "auto",
) -> torch.Tensor:
    """Draw a batch of stick figures of any skeleton (the drawing model is in the module docstring).

    Args:
        joints_px: float32 ``(B, J, 2)`` joint x, y in pixels of the output canvas. May lie off the canvas;
            non-finite coordinates make a joint missing.
        confidence: float32 ``(B, J)`` in [0, 1]; joints below ``params.confidence_threshold`` are missing
            and neither they nor their limbs are drawn.
        limb_parents, limb_children: int32 or int64 ``(L,)`` joint indices in ``[0, J)`` of each limb's ends,
            in drawing order. Their values are checked once per table tensor (not per call: on a GPU that
            check waits for the device), so pass the same tensors every call and do not modify them.
        limb_colors: float32 ``(L, 3)`` RGB in [0, 1].
        joint_colors: float32 ``(J, 3)`` RGB in [0, 1].
        height, width: canvas size in pixels (>= 1).
        params: thickness, radius and threshold (:class:`RenderParams`).
        impl: ``"auto"``, ``"ref"``, ``"cpu"`` or ``"cuda"`` (see the module docstring).

    Returns:
        float32 ``(B, 3, height, width)`` RGB in [0, 1] on the device of ``joints_px``.

    Raises:
        ValueError: on wrong shapes, dtypes, devices, indices, sizes or ``impl``.
        kernels._build.KernelBuildError: if ``impl`` names a compiled kernel (or ``"auto"`` chose one) that
            cannot be built or loaded; the message has the reason.
    """
    _check_inputs(
        joints_px, confidence, limb_parents, limb_children, limb_colors, joint_colors, height, width
    )
    chosen = _build.choose_impl(OP_NAME, impl, joints_px.device)
    if chosen == "ref":
        return _rasterize_ref(
            joints_px, confidence, limb_parents, limb_children, limb_colors, joint_colors,
            height=height, width=width, params=params,
        )  # fmt: skip
    args = (
        joints_px.contiguous(),
        confidence.contiguous(),
        limb_parents.to(torch.int32).contiguous(),
        limb_children.to(torch.int32).contiguous(),
        limb_colors.contiguous(),
        joint_colors.contiguous(),
    )
    out = torch.empty(joints_px.shape[0], 3, height, width, device=joints_px.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    if chosen == "cpu":
        _rasterize_cpu(*args, params=params, out=out)
    else:
        _rasterize_cuda(*args, params=params, out=out)
    return out


def _rasterize_cpu(
    joints: torch.Tensor,
    conf: torch.Tensor,
    parents: torch.Tensor,
    children: torch.Tensor,
    limb_rgb: torch.Tensor,
    joint_rgb: torch.Tensor,
    *,
    params: RenderParams,
    out: torch.Tensor,
) -> None:
    fn = _cpu_function()
    batch, num_joints = conf.shape
    _, _, height, width = out.shape
    fn(
        joints.data_ptr(), conf.data_ptr(), batch, num_joints, parents.data_ptr(), children.data_ptr(),
        limb_rgb.data_ptr(), parents.shape[0], joint_rgb.data_ptr(), params.limb_thickness_px / 2.0,
        params.joint_radius_px, params.confidence_threshold, height, width, out.data_ptr(),
    )  # fmt: skip


_cpu_fn: Any = None


def _cpu_function() -> Any:
    global _cpu_fn
    if _cpu_fn is None:
        fn = _build.load_cpu_library("rasterize").rasterize_cpu
        p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        fn.argtypes = [p, p, i, i, p, p, p, i, p, f, f, f, i, i, p]
        fn.restype = None
        _cpu_fn = fn
    return _cpu_fn


_cuda_fns: dict[int, Any] = {}


def _rasterize_cuda(
    joints: torch.Tensor,
    conf: torch.Tensor,
    parents: torch.Tensor,
    children: torch.Tensor,
    limb_rgb: torch.Tensor,
    joint_rgb: torch.Tensor,
    *,
    params: RenderParams,
    out: torch.Tensor,
) -> None:
    index = out.device.index if out.device.index is not None else torch.cuda.current_device()
    fn = _cuda_fns.get(index)
    if fn is None:
        fn = _build.load_cuda_module("rasterize", index).get_function("rasterize_kernel")
        fn.prepare(CUDA_ARG_FORMATS["rasterize_kernel"])
        _cuda_fns[index] = fn
    batch, num_joints = conf.shape
    _, _, height, width = out.shape
    block = (16, 16, 1)
    grid = ((width + 15) // 16, (height + 15) // 16, batch)
    args = (
        joints.data_ptr(), conf.data_ptr(), num_joints, parents.data_ptr(), children.data_ptr(),
        limb_rgb.data_ptr(), parents.shape[0], joint_rgb.data_ptr(), params.limb_thickness_px / 2.0,
        params.joint_radius_px, params.confidence_threshold, height, width, out.data_ptr(),
    )  # fmt: skip
    _build.launch_on_current_stream(fn, grid, block, args, out.device)


def _check_inputs(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    limb_parents: torch.Tensor,
    limb_children: torch.Tensor,
    limb_colors: torch.Tensor,
    joint_colors: torch.Tensor,
    height: int,
    width: int,
) -> None:
    tensors = (joints_px, confidence, limb_parents, limb_children, limb_colors, joint_colors)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise ValueError("joints_px, confidence and the limb and color tables must be torch tensors")
    if joints_px.ndim != 3 or joints_px.shape[2] != 2:
        raise ValueError(f"joints_px must be (B, J, 2), got {tuple(joints_px.shape)}")
    batch, num_joints = joints_px.shape[:2]
    if confidence.shape != (batch, num_joints):
        raise ValueError(f"confidence must be (B, J) = {(batch, num_joints)}, got {tuple(confidence.shape)}")
    if joints_px.dtype != torch.float32 or confidence.dtype != torch.float32:
        raise ValueError(
            f"joints_px and confidence must be float32, got {joints_px.dtype}, {confidence.dtype}"
        )
    num_limbs = limb_parents.shape[0] if limb_parents.ndim == 1 else -1
    if num_limbs < 0 or limb_children.shape != limb_parents.shape:
        raise ValueError(
            f"limb_parents and limb_children must be (L,), got {tuple(limb_parents.shape)} and "
            f"{tuple(limb_children.shape)}"
        )
    for name, t in (("limb_parents", limb_parents), ("limb_children", limb_children)):
        if t.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{name} must be int32 or int64, got {t.dtype}")
    _TABLES.get((limb_parents, limb_children), ("range", num_joints),
                lambda: _check_limb_indices(limb_parents, limb_children, num_joints))  # fmt: skip
    if limb_colors.shape != (num_limbs, 3) or joint_colors.shape != (num_joints, 3):
        raise ValueError(
            f"limb_colors must be (L, 3) = {(num_limbs, 3)} and joint_colors (J, 3) = {(num_joints, 3)}, "
            f"got {tuple(limb_colors.shape)} and {tuple(joint_colors.shape)}"
        )
    if limb_colors.dtype != torch.float32 or joint_colors.dtype != torch.float32:
        raise ValueError(f"colors must be float32, got {limb_colors.dtype}, {joint_colors.dtype}")
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(str(d) for d in devices)}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"canvas must be at least 1x1, got {width}x{height}")


#: Checks and int32 copies of the limb tables, once per table tensors (no host synchronization per frame).
_TABLES = _build.TableCache()


def _check_limb_indices(limb_parents: torch.Tensor, limb_children: torch.Tensor, num_joints: int) -> None:
    """Raises ValueError unless every limb end is a joint index in ``[0, num_joints)``. Reads the tables'
    values (a host synchronization for device tables): called once per table by :data:`_TABLES`."""
    for name, t in (("limb_parents", limb_parents), ("limb_children", limb_children)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_joints):
            raise ValueError(f"{name} must be joint indices in [0, {num_joints}), got {t.tolist()}")


def _window(lo: float, hi: float, reach: float, size: int) -> tuple[int, int]:
    """Pixel index range ``[start, stop)`` whose centers can lie within ``reach`` of ``[lo, hi]``."""
    return max(0, math.floor(lo - reach)), min(size, math.ceil(hi + reach) + 1)


def _rasterize_ref(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    parents: torch.Tensor,
    children: torch.Tensor,
    limb_rgb: torch.Tensor,
    joint_rgb: torch.Tensor,
    *,
    height: int,
    width: int,
    params: RenderParams,
) -> torch.Tensor:
    """The reference: plain PyTorch, any device. See the module docstring for the drawing model.

    Each limb and disc is evaluated only on the window of pixels it can cover (coverage is exactly 0
    further out), which gives the same image as evaluating every pixel, several times faster.
    """
    device = joints_px.device
    batch = joints_px.shape[0]
    present = (confidence >= params.confidence_threshold) & torch.isfinite(joints_px).all(dim=-1)  # (B, J)
    joints = torch.where(present[..., None], joints_px, torch.zeros_like(joints_px))
    out = torch.zeros(batch, 3, height, width, device=device, dtype=torch.float32)

    def paint(
        color: torch.Tensor, ends: torch.Tensor, drawn: torch.Tensor, reach: float, alpha_fn: Any
    ) -> None:
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
        for joint in range(joints.shape[1]):
            c = joints[:, joint]
            cx, cy = c[:, 0].view(-1, 1, 1), c[:, 1].view(-1, 1, 1)

            def disc_alpha(px, py, cx=cx, cy=cy):
                return (radius + 0.5 - torch.hypot(px - cx, py - cy)).clamp(0.0, 1.0)

            paint(joint_rgb[joint], c[:, None], present[:, joint], radius + 0.5, disc_alpha)
    return out
