"""The skeleton-bound image ops: the kernels of ``kernels/`` with this project's skeleton tables.

``kernels/`` holds leaf ops that take their tables as tensors; this module binds them to
:mod:`realtime.pose.skeleton` (limbs, colors, :data:`~realtime.pose.skeleton.BODY_PARTS`), caching the tables
as tensors per device, so the rest of the project calls :func:`rasterize_stick_figure` and
:func:`warp_body_parts` with poses only. ``impl="auto"`` (the default) picks the CUDA kernel for CUDA tensors
and the compiled CPU build for CPU tensors (see :mod:`kernels.rasterize`).
"""

from __future__ import annotations

import math

import torch

from kernels import part_warp as _part_warp
from kernels import rasterize as _rasterize
from kernels.rasterize import RenderParams
from realtime.pose.skeleton import NUM_JOINTS, body_part_arrays, joint_colors, limb_arrays

__all__ = ["rasterize_stick_figure", "warp_body_parts", "body_part_labels", "default_part_radius_px"]

_limb_tables: dict[torch.device, tuple[torch.Tensor, ...]] = {}
_part_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _limbs_on(device: torch.device) -> tuple[torch.Tensor, ...]:
    tables = _limb_tables.get(device)
    if tables is None:
        parents, children, limb_rgb = limb_arrays()
        tables = tuple(
            torch.from_numpy(a).to(device)
            for a in (parents.astype("int32"), children.astype("int32"), limb_rgb, joint_colors())
        )
        _limb_tables[device] = tables
    return tables


def rasterize_stick_figure(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    *,
    height: int,
    width: int,
    params: RenderParams,
    impl: str = "auto",
) -> torch.Tensor:
    """Draw a batch of stick figures of the project's skeleton (:data:`realtime.pose.skeleton.LIMBS` order).

    Args:
        joints_px: float32 ``(B, NUM_JOINTS, 2)`` joint x, y in pixels of the output canvas (may lie off
            it; non-finite coordinates make a joint missing).
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1]; joints below ``params.confidence_threshold``
            are missing and neither they nor their limbs are drawn.
        height, width: canvas size in pixels (>= 1).
        params: thickness, radius and threshold.
        impl: ``"auto"``, ``"ref"``, ``"cpu"`` or ``"cuda"``
            (:func:`kernels.rasterize.rasterize_stick_figure`).

    Returns:
        float32 ``(B, 3, height, width)`` RGB in [0, 1] on the device of ``joints_px``.

    Raises:
        ValueError: on wrong shapes (not this skeleton's joints), dtypes, devices, sizes or ``impl``.
        kernels._build.KernelBuildError: if the chosen compiled kernel cannot be built or loaded.
    """
    if (
        not isinstance(joints_px, torch.Tensor)
        or joints_px.ndim != 3
        or joints_px.shape[1:] != (NUM_JOINTS, 2)
    ):
        shape = tuple(joints_px.shape) if isinstance(joints_px, torch.Tensor) else type(joints_px).__name__
        raise ValueError(f"joints_px must be (B, {NUM_JOINTS}, 2), got {shape}")
    parents, children, limb_rgb, joint_rgb = _limbs_on(joints_px.device)
    return _rasterize.rasterize_stick_figure(
        joints_px, confidence, parents, children, limb_rgb, joint_rgb,
        height=height, width=width, params=params, impl=impl,
    )  # fmt: skip


def default_part_radius_px(width: int, height: int) -> float:
    """The part warp's default reach: 8% of the canvas's linear size, the square root of its pixel count
    (20.5 px at 256x256; as much on a portrait canvas of about 256x256's pixels, where the person is as
    large or larger, as :meth:`kernels.rasterize.RenderParams.for_canvas` scales the stick figure)."""
    return 0.08 * math.sqrt(width * height)


def _parts_on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    tables = _part_tables.get(device)
    if tables is None:
        part_joints, part_segments = body_part_arrays()
        tables = _part_tables[device] = (
            torch.from_numpy(part_joints.astype("int32")).to(device),
            torch.from_numpy(part_segments.astype("int32")).to(device),
        )
    return tables


def body_part_labels(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    *,
    height: int,
    width: int,
    radius_px: float | None = None,
    confidence_threshold: float = 0.5,
) -> torch.Tensor:
    """Each pixel's body part in the pose ``joints_px``, as :func:`warp_body_parts` cuts a source image (step
    2 of :mod:`kernels.part_warp`: the nearest segment of a present part within ``radius_px``).

    Args:
        joints_px: float32 ``(B, NUM_JOINTS, 2)`` joint x, y in pixels.
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1].
        height, width: the canvas in pixels.
        radius_px: a part's reach from its segments; default :func:`default_part_radius_px`.
        confidence_threshold: joints below it are missing.

    Returns:
        int64 ``(B, height, width)``: the index into :data:`~realtime.pose.skeleton.BODY_PARTS`, -1 for none.

    Raises:
        ValueError: for joints that are not this skeleton's.
    """
    if (
        not isinstance(joints_px, torch.Tensor)
        or joints_px.ndim != 3
        or joints_px.shape[1:] != (NUM_JOINTS, 2)
    ):
        raise ValueError(f"joints_px must be (B, {NUM_JOINTS}, 2)")
    _, part_segments = _parts_on(joints_px.device)
    seg_a, seg_b, seg_part = _part_warp._flat_segments(part_segments)  # noqa: SLF001  (one label rule)
    if radius_px is None:
        radius_px = default_part_radius_px(width, height)
    return _part_warp.part_labels_ref(
        joints_px.float(), confidence.float(), seg_a, seg_b, seg_part, height=height, width=width,
        radius_sq=_part_warp.squared_radius(radius_px), confidence_threshold=confidence_threshold,
    )  # fmt: skip


def warp_body_parts(
    image: torch.Tensor,
    person_mask: torch.Tensor,
    source_joints_px: torch.Tensor,
    source_confidence: torch.Tensor,
    target_joints_px: torch.Tensor,
    target_confidence: torch.Tensor,
    *,
    radius_px: float | None = None,
    confidence_threshold: float = 0.5,
    impl: str = "auto",
) -> torch.Tensor:
    """Warp each of :data:`~realtime.pose.skeleton.BODY_PARTS` from the source to the target pose, merged by
    max.

    See :func:`kernels.part_warp.warp_body_parts` for the model and the edge cases.

    Args:
        image: float32 ``(B, C, H, W)``, non-negative, in the source pose.
        person_mask: float32 ``(B, H, W)`` in [0, 1].
        source_joints_px, target_joints_px: float32 ``(B, NUM_JOINTS, 2)`` pixels.
        source_confidence, target_confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1].
        radius_px: a part's reach from its segments in pixels; default :func:`default_part_radius_px`.
        confidence_threshold: joints below it are missing.
        impl: ``"auto"``, ``"ref"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        float32 ``(B, C, H, W)``: the parts in the target pose, 0 elsewhere.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or arguments.
        kernels._build.KernelBuildError: if the chosen compiled kernel cannot be built or loaded.
    """
    if not isinstance(source_joints_px, torch.Tensor) or source_joints_px.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"source_joints_px must be (B, {NUM_JOINTS}, 2)")
    tables = _parts_on(image.device)
    if radius_px is None:
        radius_px = default_part_radius_px(image.shape[-1], image.shape[-2])
    return _part_warp.warp_body_parts(
        image, person_mask, source_joints_px, source_confidence, target_joints_px, target_confidence,
        tables[0], tables[1], radius_px=radius_px, confidence_threshold=confidence_threshold, impl=impl,
    )  # fmt: skip
