"""Part warp: each body part of a source image moved by its own affine transform onto a target pose.

The per-part warping of Balakrishnan et al., "Synthesizing Images of Humans in Unseen Poses" (CVPR 2018)
and of Yang et al., "Disentangled Human Action Video Generation via Decoupled Learning" (eq. 1:
``F_t = max_i T_i(F_c * L_i)``), with hand-made part masks (Yang et al. locate the parts "with simple
geometric shapes" inside the person mask) instead of a learned segmentation.

One public op, :func:`warp_body_parts`, with an ``impl=`` switch like :mod:`kernels.rasterize`: ``"ref"``
(plain PyTorch with ``affine_grid``/``grid_sample``; the specification), ``"cpu"`` and ``"cuda"`` (one
source, ``kernels/part_warp.cu``), ``"auto"``. The op is a leaf: the part table comes in as tensors
(``realtime/pose/render.py`` binds the skeleton's :data:`~realtime.pose.skeleton.BODY_PARTS`).

The model, per image (pixel ``(i, j)`` has its center at ``x = j + 0.5, y = i + 0.5``; a joint is present
when its confidence is ``>= confidence_threshold`` and its coordinates are finite):

1. **Transforms.** For part ``p`` with joints ``part_joints[p]``, the joints present in both poses give
   point pairs ``s_k -> d_k``. With 3 or more pairs that are not (nearly) collinear
   (``det(S) > 1e-4 trace(S)^2`` for their scatter matrix ``S``), ``T_p`` is the least-squares affine map.
   With 2 pairs (a limb), or collinear ones, ``T_p`` rotates and translates the source axis onto the
   target's and stretches along the axis by the length ratio, keeping the width across the axis (the
   least-squares rotation and scale of the pairs, the scale applied only along the source's principal
   axis): a foreshortened limb gets shorter, not thinner. If all source points coincide (a zero-length
   limb) ``T_p`` is the translation of the means. The part is **skipped** (contributes nothing) when fewer
   than 2 pairs are present, or when ``|det T_p| <= 1e-6`` (e.g. a zero-length target limb).
2. **Part masks.** The segments ``part_segments[p]`` between present source joints cut the person into
   parts: a source pixel belongs to the part of its nearest segment (ties: the earlier segment in table
   order) if that distance is ``<= radius_px`` (compared squared, in float32), else to none. Part
   ``p``'s mask is ``person_mask * [label == p]``. The labels depend only on the source pose, so a
   skipped part's pixels are dropped rather than given to another part.
3. **Warp and merge.** ``W_p = T_p(image * mask_p)``: the output pixel ``q`` takes the masked image sampled
   at ``T_p^{-1}(q)`` with bilinear interpolation and zero padding, exactly ``grid_sample(...,
   align_corners=False, padding_mode="zeros")``. The output is ``max(0, max_p W_p)`` over the parts that
   are not skipped; it is meant for non-negative images (the 0 is the empty parts' value in eq. 1).

Joints off the canvas are fine (parts partly or wholly off the canvas lose those pixels); a source and a
target canvas have the same size.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from kernels import _build

OP_NAME = "warp_body_parts"
#: pycuda argument formats of the CUDA kernels ("P" pointer, "i" int32, "f" float32), in signature order.
CUDA_ARG_FORMATS = {
    "part_fit_kernel": "PPPPiifPiiPP",
    "part_labels_kernel": "PPifPPPifiiP",
    "part_warp_kernel": "PPPPPiiiiP",
}
#: Scatter matrices flatter than this (det / trace^2) count as collinear: the limb rule applies.
COLLINEAR_RATIO = 1e-4
#: Transforms with ``|det| <=`` this squash the part to (nearly) nothing: the part is skipped.
MIN_ABS_DET = 1e-6


def warp_body_parts(
    image: torch.Tensor,
    person_mask: torch.Tensor,
    source_joints_px: torch.Tensor,
    source_confidence: torch.Tensor,
    target_joints_px: torch.Tensor,
    target_confidence: torch.Tensor,
    part_joints: torch.Tensor,
    part_segments: torch.Tensor,
    *,
    radius_px: float,
    confidence_threshold: float = 0.5,
    impl: str = "auto",
) -> torch.Tensor:
    """Warp each body part of ``image`` from the source pose to the target pose and merge by max.

    The model (transforms, part masks, sampling, edge cases) is in the module docstring.

    Args:
        image: float32 ``(B, C, H, W)``, non-negative (e.g. RGB in [0, 1]), in the source pose.
        person_mask: float32 ``(B, H, W)`` in [0, 1]: the person in ``image``.
        source_joints_px, target_joints_px: float32 ``(B, J, 2)`` joint x, y in pixels of the canvas.
        source_confidence, target_confidence: float32 ``(B, J)`` in [0, 1].
        part_joints: int32/int64 ``(P, K)`` joint indices of each part's transform, padded with -1.
        part_segments: int32/int64 ``(P, S, 2)`` joint index pairs of each part's segments, padded with -1.
            Both tables' values are checked (and the segments compacted) once per table tensor, not per call
            (on a GPU that waits for the device): pass the same tensors every call and do not modify them.
        radius_px: how far from its segments (pixels, > 0) a part reaches.
        confidence_threshold: joints below it in [0, 1] are missing.
        impl: ``"auto"``, ``"ref"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        float32 ``(B, C, H, W)`` on the device of ``image``: the parts in the target pose, 0 elsewhere.

    Raises:
        ValueError: on wrong shapes, dtypes, devices, indices, ``radius_px``, threshold or ``impl``.
        kernels._build.KernelBuildError: if a compiled implementation cannot be built or loaded.
    """
    _check_inputs(
        image, person_mask, source_joints_px, source_confidence, target_joints_px, target_confidence,
        part_joints, part_segments, radius_px, confidence_threshold,
    )  # fmt: skip
    chosen = _build.choose_impl(OP_NAME, impl, image.device)
    seg_a, seg_b, seg_part = _TABLES.get((part_segments,), "flat", lambda: _flat_segments(part_segments))
    radius_sq = squared_radius(radius_px)
    if chosen == "ref":
        _, inverse, active = fit_part_transforms(
            source_joints_px, source_confidence, target_joints_px, target_confidence, part_joints,
            confidence_threshold=confidence_threshold,
        )  # fmt: skip
        return _warp_ref(
            image, person_mask, source_joints_px, source_confidence, seg_a, seg_b, seg_part, inverse, active,
            radius_sq=radius_sq, confidence_threshold=confidence_threshold,
        )  # fmt: skip
    batch, channels, height, width = image.shape
    num_parts = part_joints.shape[0]
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    if out.numel() == 0:
        return out
    device = image.device
    buffers = _Buffers(
        image=image.contiguous(),
        mask=person_mask.contiguous(),
        src=source_joints_px.contiguous(),
        src_conf=source_confidence.contiguous(),
        dst=target_joints_px.contiguous(),
        dst_conf=target_confidence.contiguous(),
        part_joints=part_joints.to(torch.int32).contiguous(),
        seg_a=seg_a,
        seg_b=seg_b,
        seg_part=seg_part,
        inverse=torch.empty(batch, num_parts, 6, dtype=torch.float32, device=device),
        active=torch.empty(batch, num_parts, dtype=torch.int32, device=device),
        labels=torch.empty(batch, height, width, dtype=torch.int32, device=device),
        out=out,
    )
    if chosen == "cpu":
        _warp_cpu(buffers, radius_sq, confidence_threshold)
    else:
        _warp_cuda(buffers, radius_sq, confidence_threshold)
    return out


@dataclass
class _Buffers:
    """The contiguous inputs, scratch and output of a compiled call (see part_warp.cu for layouts)."""

    image: torch.Tensor
    mask: torch.Tensor
    src: torch.Tensor
    src_conf: torch.Tensor
    dst: torch.Tensor
    dst_conf: torch.Tensor
    part_joints: torch.Tensor
    seg_a: torch.Tensor
    seg_b: torch.Tensor
    seg_part: torch.Tensor
    inverse: torch.Tensor
    active: torch.Tensor
    labels: torch.Tensor
    out: torch.Tensor


def squared_radius(radius_px: float) -> float:
    """``radius_px`` squared in float32, as every implementation compares squared distances with it.

    Computed on the host without a tensor: the product of two float32 values is exact in float64, so
    rounding it to float32 once gives float32 multiplication's result.
    """
    r = _round_f32(float(radius_px))
    return _round_f32(r * r)


def _round_f32(value: float) -> float:
    """``value`` rounded to the nearest float32 (as a Python float)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def present_joints(joints_px: torch.Tensor, confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """bool ``(B, J)``: confidence ``>= threshold`` and both coordinates finite."""
    return (confidence >= threshold) & torch.isfinite(joints_px).all(dim=-1)


def fit_part_transforms(
    source_joints_px: torch.Tensor,
    source_confidence: torch.Tensor,
    target_joints_px: torch.Tensor,
    target_confidence: torch.Tensor,
    part_joints: torch.Tensor,
    *,
    confidence_threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each part's source -> target transform (step 1 of the module docstring), shared by all impls.

    Computed in float64 on the joints' device (a few dozen small batched ops).

    Returns:
        ``(forward, inverse, active)``: float64 ``(B, P, 2, 3)`` pixel-space affine maps ``[A | t]``
        (``x' = A x + t``) from source to target and from target to source, and bool ``(B, P)``, False for
        skipped parts (their maps are the identity).
    """
    src_ok = present_joints(source_joints_px, source_confidence, confidence_threshold)
    dst_ok = present_joints(target_joints_px, target_confidence, confidence_threshold)
    idx = part_joints.to(device=source_joints_px.device, dtype=torch.int64)
    take = idx.clamp_min(0)
    weight = (src_ok[:, take] & dst_ok[:, take] & (idx >= 0)).to(torch.float64)  # (B, P, K)
    w = weight[..., None]
    s = torch.where(w > 0, source_joints_px[:, take].to(torch.float64), 0.0)  # (B, P, K, 2)
    d = torch.where(w > 0, target_joints_px[:, take].to(torch.float64), 0.0)
    count = weight.sum(-1)  # (B, P)
    s_mean = s.sum(-2) / count.clamp_min(1.0)[..., None]
    d_mean = d.sum(-2) / count.clamp_min(1.0)[..., None]
    sc = (s - s_mean[..., None, :]) * w  # centered, zero where absent
    dc = (d - d_mean[..., None, :]) * w
    scatter = sc.transpose(-1, -2) @ sc  # (B, P, 2, 2): sum of s' s'^T
    cross = dc.transpose(-1, -2) @ sc  # sum of d' s'^T
    trace = scatter[..., 0, 0] + scatter[..., 1, 1]
    det = _det2(scatter)
    eye = torch.eye(2, dtype=torch.float64, device=s.device).expand_as(scatter)
    general = (count >= 3) & (det > COLLINEAR_RATIO * trace * trace)
    a_general = cross @ _inv2(torch.where(general[..., None, None], scatter, eye))
    # Limb rule: least-squares rotation + scale z = re + i im of the pairs (as complex numbers), the
    # scale applied along the source's principal axis u only (the width along v is kept).
    sum_sq = trace.clamp_min(1e-300)
    re = (sc[..., 0] * dc[..., 0] + sc[..., 1] * dc[..., 1]).sum(-1) / sum_sq
    im = (sc[..., 0] * dc[..., 1] - sc[..., 1] * dc[..., 0]).sum(-1) / sum_sq
    scale = torch.hypot(re, im)
    rot_c = torch.where(scale > 0, re / scale.clamp_min(1e-300), 1.0)
    rot_s = torch.where(scale > 0, im / scale.clamp_min(1e-300), 0.0)
    phi = 0.5 * torch.atan2(2.0 * scatter[..., 0, 1], scatter[..., 0, 0] - scatter[..., 1, 1])
    u = torch.stack([torch.cos(phi), torch.sin(phi)], dim=-1)  # (B, P, 2)
    v = torch.stack([-u[..., 1], u[..., 0]], dim=-1)
    rotation = torch.stack([torch.stack([rot_c, -rot_s], -1), torch.stack([rot_s, rot_c], -1)], -2)
    stretch = scale[..., None, None] * u[..., :, None] * u[..., None, :] + v[..., :, None] * v[..., None, :]
    a_limb = rotation @ stretch
    a_limb = torch.where((trace > 0)[..., None, None], a_limb, eye)  # coincident points: translation
    a = torch.where(general[..., None, None], a_general, a_limb)
    t = d_mean - (a @ s_mean[..., None])[..., 0]
    det_a = _det2(a)
    active = (
        (count >= 2)
        & (det_a.abs() > MIN_ABS_DET)
        & torch.isfinite(a).all((-1, -2))
        & torch.isfinite(t).all(-1)
    )
    a = torch.where(active[..., None, None], a, eye)
    t = torch.where(active[..., None], t, 0.0)
    a_inv = _inv2(a)
    t_inv = -(a_inv @ t[..., None])[..., 0]
    return torch.cat([a, t[..., None]], -1), torch.cat([a_inv, t_inv[..., None]], -1), active


def _det2(m: torch.Tensor) -> torch.Tensor:
    """Determinants of ``(..., 2, 2)`` matrices in closed form (LAPACK's batched LU costs milliseconds)."""
    return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]


def _inv2(m: torch.Tensor) -> torch.Tensor:
    """Inverses of invertible ``(..., 2, 2)`` matrices in closed form."""
    adjugate = torch.stack(
        [torch.stack([m[..., 1, 1], -m[..., 0, 1]], -1), torch.stack([-m[..., 1, 0], m[..., 0, 0]], -1)], -2
    )
    return adjugate / _det2(m)[..., None, None]


#: Checks and compacted segment lists of the part tables, once per table tensors (boolean-mask indexing and
#: ``int(t.min())`` wait for the GPU: not per frame).
_TABLES = _build.TableCache()


def _check_part_indices(part_joints: torch.Tensor, part_segments: torch.Tensor, num_joints: int) -> None:
    """Raises ValueError unless the tables hold joint indices in ``[0, num_joints)`` or -1. Reads their values
    (a host synchronization for device tables): called once per table by :data:`_TABLES`."""
    for name, t in (("part_joints", part_joints), ("part_segments", part_segments)):
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= num_joints):
            raise ValueError(f"{name} must hold joint indices in [0, {num_joints}) or -1 (padding)")


def _flat_segments(part_segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """int32 ``(N,)`` joint a, joint b and part index of every real (non-padding) segment, in table order.
    Boolean-mask indexing: a host synchronization for device tables (called once per table through
    :data:`_TABLES` by :func:`warp_body_parts`)."""
    num_parts, per_part = part_segments.shape[:2]
    flat = part_segments.reshape(-1, 2).to(torch.int32)
    part = torch.arange(num_parts, dtype=torch.int32, device=flat.device).repeat_interleave(per_part)
    keep = (flat >= 0).all(-1)
    return flat[keep, 0].contiguous(), flat[keep, 1].contiguous(), part[keep].contiguous()


def part_labels_ref(
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    seg_a: torch.Tensor,
    seg_b: torch.Tensor,
    seg_part: torch.Tensor,
    *,
    height: int,
    width: int,
    radius_sq: float,
    confidence_threshold: float,
) -> torch.Tensor:
    """int64 ``(B, H, W)``: each source pixel's part (step 2 of the module docstring), -1 for none.

    Distances are compared squared, against ``radius_sq`` (:func:`squared_radius`), as the kernels do.
    """
    device = joints_px.device
    present = present_joints(joints_px, confidence, confidence_threshold)
    joints = torch.where(present[..., None], joints_px, torch.zeros_like(joints_px))
    a, b = seg_a.long(), seg_b.long()
    seg_ok = present[:, a] & present[:, b]  # (B, N)
    ax, ay = joints[:, a, 0, None, None], joints[:, a, 1, None, None]  # (B, N, 1, 1)
    dx, dy = joints[:, b, 0, None, None] - ax, joints[:, b, 1, None, None] - ay
    px = (torch.arange(width, device=device, dtype=torch.float32) + 0.5).view(1, 1, 1, -1)
    py = (torch.arange(height, device=device, dtype=torch.float32) + 0.5).view(1, 1, -1, 1)
    length_sq = dx * dx + dy * dy
    t = ((px - ax) * dx + (py - ay) * dy) / length_sq.clamp_min(1e-12)
    t = torch.where(length_sq > 0, t.clamp(0.0, 1.0), torch.zeros_like(t))
    ex, ey = px - (ax + t * dx), py - (ay + t * dy)
    dist = ex * ex + ey * ey  # squared, (B, N, H, W)
    dist = torch.where(seg_ok[..., None, None], dist, torch.full_like(dist, float("inf")))
    if dist.shape[1] == 0:
        return torch.full((joints.shape[0], height, width), -1, dtype=torch.int64, device=device)
    nearest = dist.amin(dim=1)
    which = dist.argmin(dim=1)  # the first minimum: ties go to the earlier segment
    return torch.where(nearest <= radius_sq, seg_part.long()[which], torch.full_like(which, -1))


def _warp_ref(
    image: torch.Tensor,
    person_mask: torch.Tensor,
    source_joints_px: torch.Tensor,
    source_confidence: torch.Tensor,
    seg_a: torch.Tensor,
    seg_b: torch.Tensor,
    seg_part: torch.Tensor,
    inverse: torch.Tensor,
    active: torch.Tensor,
    *,
    radius_sq: float,
    confidence_threshold: float,
) -> torch.Tensor:
    """The reference (any device): labels, masked parts, ``affine_grid`` + ``grid_sample``, max."""
    batch, channels, height, width = image.shape
    num_parts = inverse.shape[1]
    if num_parts == 0 or image.numel() == 0:
        return torch.zeros_like(image)
    labels = part_labels_ref(
        source_joints_px, source_confidence, seg_a, seg_b, seg_part,
        height=height, width=width, radius_sq=radius_sq, confidence_threshold=confidence_threshold,
    )  # fmt: skip
    parts = torch.arange(num_parts, device=image.device).view(1, -1, 1, 1)
    masks = ((labels[:, None] == parts) & active[..., None, None]).to(image.dtype) * person_mask[:, None]
    masked = (image[:, None] * masks[:, :, None]).reshape(batch * num_parts, channels, height, width)
    # Pixel space (x in [0, W]) to grid_sample's normalized space (x_n = 2 x / W - 1), both ways.
    to_norm = torch.tensor(
        [[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64, device=image.device,
    )  # fmt: skip
    inv3 = torch.cat([inverse, inverse.new_tensor([0.0, 0.0, 1.0]).expand(batch, num_parts, 1, 3)], -2)
    from_norm = torch.tensor(
        [[width / 2.0, 0.0, width / 2.0], [0.0, height / 2.0, height / 2.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64, device=image.device,
    )  # fmt: skip
    theta = (to_norm @ inv3 @ from_norm)[..., :2, :]
    grid = F.affine_grid(
        theta.reshape(-1, 2, 3).to(image.dtype),
        [batch * num_parts, channels, height, width],
        align_corners=False,
    )
    warped = F.grid_sample(masked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.reshape(batch, num_parts, channels, height, width).amax(dim=1).clamp_min(0.0)


_cpu_fn: Any = None


def _warp_cpu(x: _Buffers, radius_sq: float, threshold: float) -> None:
    global _cpu_fn
    if _cpu_fn is None:
        fn = _build.load_cpu_library("part_warp").part_warp_cpu
        p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        fn.argtypes = [p, p, p, p, p, p, i, i, f, p, i, p, p, p, i, f, i, i, i, i, p, p, p, p]
        fn.restype = None
        _cpu_fn = fn
    batch, channels, height, width = x.image.shape
    num_parts, max_joints = x.part_joints.shape
    _cpu_fn(
        x.image.data_ptr(), x.mask.data_ptr(), x.src.data_ptr(), x.src_conf.data_ptr(), x.dst.data_ptr(),
        x.dst_conf.data_ptr(), batch, x.src.shape[1], threshold, x.part_joints.data_ptr(), max_joints,
        x.seg_a.data_ptr(), x.seg_b.data_ptr(), x.seg_part.data_ptr(), x.seg_a.shape[0], radius_sq, num_parts,
        channels, height, width, x.inverse.data_ptr(), x.active.data_ptr(), x.labels.data_ptr(),
        x.out.data_ptr(),
    )  # fmt: skip


_cuda_fns: dict[int, tuple[Any, Any, Any]] = {}


def _warp_cuda(x: _Buffers, radius_sq: float, threshold: float) -> None:
    index = x.out.device.index if x.out.device.index is not None else torch.cuda.current_device()
    fns = _cuda_fns.get(index)
    if fns is None:
        module = _build.load_cuda_module("part_warp", index)
        prepared = []
        for name in ("part_fit_kernel", "part_labels_kernel", "part_warp_kernel"):
            function = module.get_function(name)
            function.prepare(CUDA_ARG_FORMATS[name])
            prepared.append(function)
        fns = _cuda_fns[index] = (prepared[0], prepared[1], prepared[2])
    fit_fn, label_fn, warp_fn = fns
    batch, channels, height, width = x.image.shape
    num_parts, max_joints = x.part_joints.shape
    num_joints = x.src.shape[1]
    device = x.out.device
    if num_parts > 0:
        fit_args = (
            x.src.data_ptr(), x.src_conf.data_ptr(), x.dst.data_ptr(), x.dst_conf.data_ptr(), batch,
            num_joints, threshold, x.part_joints.data_ptr(), num_parts, max_joints, x.inverse.data_ptr(),
            x.active.data_ptr(),
        )  # fmt: skip
        _build.launch_on_current_stream(
            fit_fn, ((batch * num_parts + 63) // 64, 1, 1), (64, 1, 1), fit_args, device
        )
    block = (16, 16, 1)
    grid = ((width + 15) // 16, (height + 15) // 16, batch)
    label_args = (
        x.src.data_ptr(), x.src_conf.data_ptr(), num_joints, threshold, x.seg_a.data_ptr(),
        x.seg_b.data_ptr(), x.seg_part.data_ptr(), x.seg_a.shape[0], radius_sq, height, width,
        x.labels.data_ptr(),
    )  # fmt: skip
    _build.launch_on_current_stream(label_fn, grid, block, label_args, device)
    warp_args = (
        x.image.data_ptr(), x.mask.data_ptr(), x.labels.data_ptr(), x.inverse.data_ptr(), x.active.data_ptr(),
        num_parts, channels, height, width, x.out.data_ptr(),
    )  # fmt: skip
    _build.launch_on_current_stream(warp_fn, grid, block, warp_args, device)


def _check_inputs(
    image: torch.Tensor,
    person_mask: torch.Tensor,
    source_joints_px: torch.Tensor,
    source_confidence: torch.Tensor,
    target_joints_px: torch.Tensor,
    target_confidence: torch.Tensor,
    part_joints: torch.Tensor,
    part_segments: torch.Tensor,
    radius_px: float,
    confidence_threshold: float,
) -> None:
    tensors = {
        "image": image, "person_mask": person_mask, "source_joints_px": source_joints_px,
        "source_confidence": source_confidence, "target_joints_px": target_joints_px,
        "target_confidence": target_confidence, "part_joints": part_joints, "part_segments": part_segments,
    }  # fmt: skip
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    if person_mask.shape != (batch, height, width):
        raise ValueError(
            f"person_mask must be (B, H, W) = {(batch, height, width)}, got {tuple(person_mask.shape)}"
        )
    if source_joints_px.ndim != 3 or source_joints_px.shape[0] != batch or source_joints_px.shape[2] != 2:
        raise ValueError(
            f"source_joints_px must be (B, J, 2) with B = {batch}, got {tuple(source_joints_px.shape)}"
        )
    num_joints = source_joints_px.shape[1]
    if target_joints_px.shape != source_joints_px.shape:
        raise ValueError(
            f"target_joints_px must match source_joints_px {tuple(source_joints_px.shape)}, "
            f"got {tuple(target_joints_px.shape)}"
        )
    for name in ("source_confidence", "target_confidence"):
        if tensors[name].shape != (batch, num_joints):
            raise ValueError(
                f"{name} must be (B, J) = {(batch, num_joints)}, got {tuple(tensors[name].shape)}"
            )
    for name in (
        "image",
        "person_mask",
        "source_joints_px",
        "source_confidence",
        "target_joints_px",
        "target_confidence",
    ):
        if tensors[name].dtype != torch.float32:
            raise ValueError(f"{name} must be float32, got {tensors[name].dtype}")
    if part_joints.ndim != 2:
        raise ValueError(f"part_joints must be (P, K), got {tuple(part_joints.shape)}")
    if (
        part_segments.ndim != 3
        or part_segments.shape[0] != part_joints.shape[0]
        or part_segments.shape[2] != 2
    ):
        raise ValueError(
            f"part_segments must be (P, S, 2) with P = {part_joints.shape[0]}, "
            f"got {tuple(part_segments.shape)}"
        )
    for name in ("part_joints", "part_segments"):
        t = tensors[name]
        if t.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{name} must be int32 or int64, got {t.dtype}")
    _TABLES.get((part_joints, part_segments), ("range", num_joints),
                lambda: _check_part_indices(part_joints, part_segments, num_joints))  # fmt: skip
    devices = {t.device for t in tensors.values()}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(str(d) for d in devices)}")
    if not radius_px > 0:
        raise ValueError(f"radius_px must be > 0, got {radius_px}")
    if not 0.0 <= confidence_threshold <= 1.0:
        raise ValueError(f"confidence_threshold must be in [0, 1], got {confidence_threshold}")
