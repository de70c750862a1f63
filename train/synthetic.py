"""The synthetic default target: an artist's wooden mannequin, its motion, its dataset and its evaluation.

A target that needs no real person: the demo runs out of the box, and any pose, seen or unseen, has an exact
ground-truth image (the mannequin rendered in that pose), so generalization can be measured on the poses of
real source videos. Four parts:

- :func:`render_mannequin`: a deterministic renderer from a pose on the project's skeleton to a shaded
  wooden mannequin (shirt, trousers, shoes, a head whose nose bump and painted eyes show where it faces) in
  a fixed room (wall, floor with a horizon line and converging floor boards), plus its silhouette mask.
- :func:`generate_motion`: seeded, smooth, varied dance-like motion from a joint-angle model with anatomical
  limits, stepping across the floor and toward and away from the camera, projected by a pinhole camera.
- :func:`write_synthetic_dataset` (``python -m train.synthetic --out DIR``): a prepared directory in exactly
  :mod:`train.prepare`'s format (:mod:`train.dataset`), to train the demo model with ``train.fit``.
- :func:`evaluate_synthetic` (``python -m train.evaluate --synthetic``): drive a trained mannequin model with
  the poses of real source videos, normalized as the offline retargeting does, and compare its output with
  the mannequin rendered in the same poses.

Depth order (the renderer's layering rule; documented here because it is part of the ground truth): each
body part is painted in order of a depth derived from the 2-D pose alone, far to near ("painter's
algorithm"), with anti-aliased edges composited "over". The body's yaw is read from the pose: the cosine
from the signed shoulder (and hip) width across the spine relative to the mannequin's known widths (positive
when the figure's left shoulder is on the image's right, i.e. it faces the camera), the sign of the sine
from the side of the spine the nose is on. A part on the figure's right side then sits at depth
``-sin(yaw) * lateral_offset`` (left side: ``+sin(yaw) * lateral_offset``), plus
``-cos(yaw) * forward_offset`` for arms, legs and head (they are in front of the torso when the figure faces
the camera, behind it when it faces away). So in profile the far arm is behind the torso and the near arm
in front of it; facing the camera both arms are in front of the torso; along a limb the distal part covers
the proximal one.

Everything is in pixels of the canvas unless a name says otherwise (``_m``: meters of the mannequin's body,
``_rad``: radians). Image axes: x to the right, y down; the renderer's depth: smaller is nearer.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from kernels.rasterize import RenderParams, rasterize_stick_figure
from realtime.normalize import body_stats
from realtime.skeleton import NUM_JOINTS, Joint, as_pose_arrays
from train.dataset import Crop, PreparedMeta, PreparedWriter

log = logging.getLogger(__name__)

#: ``source_video`` recorded in a synthetic dataset's ``meta.json``.
SYNTHETIC_SOURCE = "synthetic:mannequin"


# ---------------------------------------------------------------------------------------------------------
# The mannequin's body (shared by the motion generator and the renderer)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MannequinBody:
    """The mannequin's proportions in meters (a 1.75 m figure).

    Lengths place the joints (motion generator); widths and radii shape the rendered parts (renderer). The
    renderer converts meters to pixels with a per-frame scale estimated from the pose's bone lengths.
    """

    spine_m: float = 0.50  # mid-hip to neck
    shoulder_half_width_m: float = 0.19
    hip_half_width_m: float = 0.10
    upper_arm_m: float = 0.29
    forearm_m: float = 0.26
    thigh_m: float = 0.44
    shin_m: float = 0.43
    hip_height_m: float = 0.95  # standing, mid-hip above the floor
    # Head offsets from the neck, in the head's frame (right, up, forward).
    head_center_m: tuple[float, float, float] = (0.0, 0.19, 0.0)
    nose_m: tuple[float, float, float] = (0.0, 0.17, 0.10)
    eye_m: tuple[float, float, float] = (0.032, 0.205, 0.085)  # right eye; the left mirrors x
    ear_m: tuple[float, float, float] = (0.075, 0.19, 0.0)
    # Feet, relative to the ankle in the shin's frame (along the foot, along the shin).
    toe_m: tuple[float, float] = (0.15, 0.05)
    heel_m: tuple[float, float] = (-0.05, 0.06)
    # Rendered shapes: radii (capsule ends) and ellipse semi-axes.
    head_semi_axes_m: tuple[float, float] = (0.125, 0.10)  # along the head's up, across
    nose_radius_m: float = 0.028
    eye_radius_m: float = 0.013
    neck_radius_m: float = 0.048
    chest_top_below_neck_m: float = 0.11
    chest_bottom_below_neck_m: float = 0.30
    chest_min_half_width_m: float = 0.10
    pelvis_semi_length_m: float = 0.13
    pelvis_min_half_width_m: float = 0.11
    waist_radius_m: float = 0.095
    shoulder_ball_m: float = 0.058
    upper_arm_radii_m: tuple[float, float] = (0.052, 0.042)
    elbow_ball_m: float = 0.043
    forearm_radii_m: tuple[float, float] = (0.038, 0.030)
    wrist_ball_m: float = 0.030
    hand_semi_axes_m: tuple[float, float] = (0.085, 0.042)
    thigh_radii_m: tuple[float, float] = (0.078, 0.058)
    knee_ball_m: float = 0.058
    shin_radii_m: tuple[float, float] = (0.054, 0.042)
    shoe_radius_m: float = 0.042

    @property
    def height_m(self) -> float:
        """Floor to the top of the head."""
        return self.hip_height_m + self.spine_m + self.head_center_m[1] + self.head_semi_axes_m[0]


BODY = MannequinBody()


# ---------------------------------------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class MannequinStyle:
    """Colors (RGB, 0-255), lighting and the room.

    Attributes:
        wood, shirt, trousers, shoes, eyes: part colors.
        wall_top, wall_bottom, baseboard, floor_far, floor_near, board_line: the room.
        shadow_strength: how much the contact shadow darkens the floor, in [0, 1].
        light: direction towards the light (x right, y down, z towards the viewer); normalized on use.
        ambient, diffuse, specular, shininess: Lambert + Blinn-Phong terms.
        wall_line_y_frac: image height fraction of the wall-floor line (the horizon line of the room).
        vanishing_y_frac: image height fraction of the camera's horizon, where floor boards converge.
        board_spacing_frac: floor board spacing at the wall line as a fraction of the canvas width.
    """

    wood: RGB = (214, 168, 110)
    shirt: RGB = (38, 120, 160)
    trousers: RGB = (62, 62, 84)
    shoes: RGB = (128, 46, 36)
    eyes: RGB = (40, 28, 22)
    wall_top: RGB = (214, 218, 222)
    wall_bottom: RGB = (190, 196, 204)
    baseboard: RGB = (120, 124, 132)
    floor_far: RGB = (150, 146, 140)
    floor_near: RGB = (178, 174, 166)
    board_line: RGB = (128, 124, 118)
    shadow_strength: float = 0.35
    light: tuple[float, float, float] = (-0.45, -0.65, 0.75)
    ambient: float = 0.42
    diffuse: float = 0.62
    specular: float = 0.18
    shininess: float = 24.0
    wall_line_y_frac: float = 0.745
    vanishing_y_frac: float = 0.527
    board_spacing_frac: float = 0.09


DEFAULT_STYLE = MannequinStyle()


@dataclass(frozen=True)
class MannequinRender:
    """One rendered frame.

    Attributes:
        image: uint8 ``(H, W, 3)`` RGB: the mannequin over the room.
        mask: uint8 ``(H, W)`` the mannequin's silhouette coverage, 0-255 (anti-aliased; no shadow).
    """

    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class _Part:
    """One primitive to paint: a tapered capsule (``a`` to ``b``, radii ``ra``, ``rb``) or an ellipse
    (center ``a``, unit major axis ``b``, semi-axes ``ra`` along it and ``rb`` across); pixels."""

    kind: str  # "capsule" | "ellipse"
    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    color: RGB
    depth: float
    shaded: bool = True


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-6 else fallback


def _second_largest(values: list[float]) -> float:
    ordered = sorted(values, reverse=True)
    return ordered[1] if len(ordered) >= 3 else ordered[0]


def estimate_scale_px_per_m(
    joints_px: np.ndarray, present: np.ndarray, body: MannequinBody = BODY
) -> float | None:
    """Pixels per meter of the mannequin's body in one pose, from its 2-D bone lengths.

    Every bone seen (spine, shoulder and hip widths, arms, legs) gives a lower bound (foreshortening only
    shortens a bone in the image); the estimate is the second largest of these bounds (the largest when fewer
    than three), robust to one outlier.

    Returns:
        pixels per meter, or None if no bone is seen.
    """
    j = joints_px
    bones = [
        (Joint.MID_HIP, Joint.NECK, body.spine_m),
        (Joint.RIGHT_SHOULDER, Joint.LEFT_SHOULDER, 2 * body.shoulder_half_width_m),
        (Joint.RIGHT_HIP, Joint.LEFT_HIP, 2 * body.hip_half_width_m),
        (Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW, body.upper_arm_m),
        (Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW, body.upper_arm_m),
        (Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST, body.forearm_m),
        (Joint.LEFT_ELBOW, Joint.LEFT_WRIST, body.forearm_m),
        (Joint.RIGHT_HIP, Joint.RIGHT_KNEE, body.thigh_m),
        (Joint.LEFT_HIP, Joint.LEFT_KNEE, body.thigh_m),
        (Joint.RIGHT_KNEE, Joint.RIGHT_ANKLE, body.shin_m),
        (Joint.LEFT_KNEE, Joint.LEFT_ANKLE, body.shin_m),
    ]
    bounds = [float(np.hypot(*(j[p] - j[c]))) / m for p, c, m in bones if present[p] and present[c]]
    bounds = [b for b in bounds if b > 0]
    return _second_largest(bounds) if bounds else None


@dataclass(frozen=True)
class BodyOrientation:
    """The body's yaw read from a 2-D pose (see the module docstring's depth order).

    Attributes:
        cos_yaw: in [-1, 1]; 1 = facing the camera, -1 = facing away.
        sin_yaw: in [-1, 1]; positive = turned towards the image's right (the figure's right side is near).
        up: unit 2-D vector from the mid-hip towards the neck.
        across: unit 2-D vector perpendicular to ``up``, towards the image's right for an upright figure.
    """

    cos_yaw: float
    sin_yaw: float
    up: np.ndarray
    across: np.ndarray


def estimate_orientation(
    joints_px: np.ndarray, present: np.ndarray, px_per_m: float, body: MannequinBody = BODY
) -> BodyOrientation:
    """Read the body's yaw from shoulder and hip order and width and the nose's side (module docstring)."""
    j = joints_px
    up = np.array([0.0, -1.0])
    if present[Joint.NECK] and present[Joint.MID_HIP]:
        up = _unit((j[Joint.NECK] - j[Joint.MID_HIP]).astype(np.float64), up)
    across = np.array([-up[1], up[0]])
    cosines = []
    for right, left, half in (
        (Joint.RIGHT_SHOULDER, Joint.LEFT_SHOULDER, body.shoulder_half_width_m),
        (Joint.RIGHT_HIP, Joint.LEFT_HIP, body.hip_half_width_m),
    ):
        if present[right] and present[left]:
            cosines.append(float(np.dot(j[left] - j[right], across)) / (2 * half * px_per_m))
    cos_yaw = float(np.clip(np.mean(cosines), -1.0, 1.0)) if cosines else 1.0
    sign = 0.0
    if present[Joint.NOSE] and present[Joint.NECK]:
        offset = float(np.dot(j[Joint.NOSE] - j[Joint.NECK], across)) / px_per_m
        sign = float(np.clip(offset / 0.03, -1.0, 1.0))  # fades to 0 within 3 cm of the spine line
    sin_yaw = sign * math.sqrt(max(0.0, 1.0 - cos_yaw * cos_yaw))
    return BodyOrientation(cos_yaw, sin_yaw, up, across)


def _head_geometry(
    j: np.ndarray, present: np.ndarray, up: np.ndarray, px_per_m: float, body: MannequinBody
) -> tuple[np.ndarray, np.ndarray] | None:
    """Head center and its unit "up" direction in pixels, or None where nothing locates the head.

    The center is the ears' midpoint (the mannequin's ears are at the head's center), else the one ear seen,
    else the nose moved 15% of the way back towards the neck, else the nose, else the neck moved up by the
    head's offset; it is then raised 2 cm along the head's up direction (the cranium sits above the ears).
    """
    ears = [e for e in (Joint.RIGHT_EAR, Joint.LEFT_EAR) if present[e]]
    if ears:
        center = np.mean([j[e] for e in ears], axis=0).astype(np.float64)
    elif present[Joint.NOSE] and present[Joint.NECK]:
        center = j[Joint.NECK] + 0.85 * (j[Joint.NOSE] - j[Joint.NECK])
    elif present[Joint.NOSE]:
        center = j[Joint.NOSE].astype(np.float64)
    elif present[Joint.NECK]:
        center = j[Joint.NECK] + up * body.head_center_m[1] * px_per_m
    else:
        return None
    head_up = _unit(center - j[Joint.NECK], up) if present[Joint.NECK] else up
    # The cranium sits a little above the ears.
    return center + head_up * 0.02 * px_per_m, head_up


def _mannequin_parts(
    joints_px: np.ndarray, present: np.ndarray, body: MannequinBody, style: MannequinStyle
) -> tuple[list[_Part], float]:
    """The primitives of one pose with their depths (module docstring), unsorted, and the pose's scale in
    pixels per meter (``([], 0.0)`` where no bone is seen)."""
    j = joints_px.astype(np.float64)
    px_per_m = estimate_scale_px_per_m(j, present, body)
    if px_per_m is None:
        return [], 0.0
    m = px_per_m
    orient = estimate_orientation(j, present, m, body)
    cos_y, sin_y, up = orient.cos_yaw, orient.sin_yaw, orient.up
    parts: list[_Part] = []

    def capsule(p: Joint, c: Joint, radii: tuple[float, float], color: RGB, depth: float) -> None:
        if present[p] and present[c]:
            parts.append(_Part("capsule", j[p], j[c], radii[0] * m, radii[1] * m, color, depth))

    def ball(at: Joint, radius_m: float, color: RGB, depth: float) -> None:
        if present[at]:
            parts.append(_Part("capsule", j[at], j[at], radius_m * m, radius_m * m, color, depth))

    # Torso: pelvis block, waist, chest (an artist's mannequin's three torso pieces).
    if present[Joint.NECK] and present[Joint.MID_HIP]:
        neck, hip = j[Joint.NECK], j[Joint.MID_HIP]
        across = orient.across
        half_sh = (
            abs(float(np.dot(j[Joint.LEFT_SHOULDER] - j[Joint.RIGHT_SHOULDER], across))) / 2
            if present[Joint.LEFT_SHOULDER] and present[Joint.RIGHT_SHOULDER]
            else 0.0
        )
        half_hip = (
            abs(float(np.dot(j[Joint.LEFT_HIP] - j[Joint.RIGHT_HIP], across))) / 2
            if present[Joint.LEFT_HIP] and present[Joint.RIGHT_HIP]
            else 0.0
        )
        # The chest: a tapered capsule, wide at the shoulders, narrow at the waist.
        chest_top = neck - up * body.chest_top_below_neck_m * m
        chest_bottom = neck - up * body.chest_bottom_below_neck_m * m
        chest_r = max(half_sh - 0.01 * m, body.chest_min_half_width_m * m)
        pelvis_center = hip + up * 0.02 * m
        pelvis_half = max(half_hip + 0.07 * m, body.pelvis_min_half_width_m * m)
        parts.append(
            _Part(
                "ellipse", pelvis_center, up, body.pelvis_semi_length_m * m, pelvis_half, style.trousers, 0.02
            )
        )
        waist_r = body.waist_radius_m * m
        parts.append(_Part("capsule", pelvis_center, chest_bottom, waist_r, waist_r, style.shirt, 0.015))
        parts.append(_Part("capsule", chest_top, chest_bottom, chest_r, waist_r * 1.1, style.shirt, 0.0))

    # Head and neck: the face (nose bump, painted eyes) shows where it looks.
    head = _head_geometry(j, present, up, m, body)
    head_depth = -0.05 * cos_y
    if head is not None:
        center, head_up = head
        if present[Joint.NECK]:
            r = body.neck_radius_m * m
            top = j[Joint.NECK] + 0.6 * (center - j[Joint.NECK])
            parts.append(_Part("capsule", j[Joint.NECK], top, r, r, style.wood, 0.03))
        semi = body.head_semi_axes_m
        parts.append(_Part("ellipse", center, head_up, semi[0] * m, semi[1] * m, style.wood, head_depth))
        for eye in (Joint.RIGHT_EYE, Joint.LEFT_EYE):
            if present[eye]:
                r = body.eye_radius_m * m
                parts.append(_Part("capsule", j[eye], j[eye], r, r, style.eyes, head_depth - 0.001, False))
        if present[Joint.NOSE]:
            r = body.nose_radius_m * m
            parts.append(_Part("capsule", j[Joint.NOSE], j[Joint.NOSE], r, r, style.wood, head_depth - 0.002))

    # Arms and legs: lateral side by yaw, in front of the torso when facing the camera.
    for side, sign in (("RIGHT", 1.0), ("LEFT", -1.0)):
        joint = {
            name: Joint[f"{side}_{name}"] for name in ("SHOULDER", "ELBOW", "WRIST", "HIP", "KNEE", "ANKLE")
        }
        toe, heel = Joint[f"{side}_BIG_TOE"], Joint[f"{side}_HEEL"]
        arm = -sign * sin_y * body.shoulder_half_width_m - cos_y * 0.08
        ball(joint["SHOULDER"], body.shoulder_ball_m, style.shirt, arm)
        capsule(joint["SHOULDER"], joint["ELBOW"], body.upper_arm_radii_m, style.shirt, arm - 0.001)
        ball(joint["ELBOW"], body.elbow_ball_m, style.wood, arm - 0.002)
        capsule(joint["ELBOW"], joint["WRIST"], body.forearm_radii_m, style.wood, arm - 0.003)
        ball(joint["WRIST"], body.wrist_ball_m, style.wood, arm - 0.004)
        if present[joint["WRIST"]]:
            wrist = j[joint["WRIST"]]
            direction = _unit(wrist - j[joint["ELBOW"]], -up) if present[joint["ELBOW"]] else -up
            semi = body.hand_semi_axes_m
            center = wrist + direction * (semi[0] - 0.015) * m
            parts.append(
                _Part("ellipse", center, direction, semi[0] * m, semi[1] * m, style.wood, arm - 0.005)
            )

        leg = -sign * sin_y * body.hip_half_width_m - cos_y * 0.03
        capsule(joint["HIP"], joint["KNEE"], body.thigh_radii_m, style.trousers, leg)
        ball(joint["KNEE"], body.knee_ball_m, style.trousers, leg - 0.001)
        capsule(joint["KNEE"], joint["ANKLE"], body.shin_radii_m, style.trousers, leg - 0.002)
        shoe = body.shoe_radius_m
        ball(joint["ANKLE"], shoe, style.shoes, leg - 0.003)
        for end in (toe, heel):
            capsule(
                joint["ANKLE"], end, (shoe, shoe * (0.9 if end == toe else 1.0)), style.shoes, leg - 0.004
            )
        capsule(heel, toe, (shoe, shoe * 0.9), style.shoes, leg - 0.004)
    return parts, px_per_m


def _window(
    lo: np.ndarray, hi: np.ndarray, reach: float, width: int, height: int
) -> tuple[int, int, int, int]:
    x0 = max(0, math.floor(min(lo[0], hi[0]) - reach))
    x1 = min(width, math.ceil(max(lo[0], hi[0]) + reach) + 1)
    y0 = max(0, math.floor(min(lo[1], hi[1]) - reach))
    y1 = min(height, math.ceil(max(lo[1], hi[1]) + reach) + 1)
    return x0, x1, y0, y1


def _coverage_and_normal(
    part: _Part, px: np.ndarray, py: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anti-aliased coverage in [0, 1] and the surface normal (nx, ny, nz) of a part at pixel centers.

    Capsules are sphere-swept segments (normal from the nearest axis point, radius interpolated along it);
    ellipses are the silhouettes of ellipsoids. Coverage ramps linearly over one pixel at the edge.
    """
    if part.kind == "capsule":
        ax, ay = part.a
        dx, dy = part.b[0] - ax, part.b[1] - ay
        length_sq = dx * dx + dy * dy
        if length_sq > 1e-9:
            t = np.clip(((px - ax) * dx + (py - ay) * dy) / length_sq, 0.0, 1.0)
        else:
            t = np.zeros(np.broadcast_shapes(px.shape, py.shape), np.float32)
        vx, vy = px - (ax + t * dx), py - (ay + t * dy)
        radius = part.ra + t * (part.rb - part.ra)
        dist = np.sqrt(vx * vx + vy * vy)
        coverage = np.clip(radius + 0.5 - dist, 0.0, 1.0)
        nx, ny = vx / radius, vy / radius
    else:
        ux, uy = part.b
        lu = (px - part.a[0]) * ux + (py - part.a[1]) * uy
        lv = -(px - part.a[0]) * uy + (py - part.a[1]) * ux
        qu, qv = lu / part.ra, lv / part.rb
        rho = np.sqrt(qu * qu + qv * qv)
        # Signed distance to the outline, to first order: (rho - 1) / |grad rho|.
        grad = np.sqrt((qu / part.ra) ** 2 + (qv / part.rb) ** 2) / np.maximum(rho, 1e-6)
        coverage = np.clip(0.5 - (rho - 1.0) / np.maximum(grad, 1e-6), 0.0, 1.0)
        nx, ny = qu * ux - qv * uy, qu * uy + qv * ux
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    return coverage.astype(np.float32), nx, ny, nz


@functools.lru_cache(maxsize=8)
def _background_cached(width: int, height: int, style: MannequinStyle) -> np.ndarray:
    ys = (np.arange(height, dtype=np.float64) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float64) + 0.5)[None, :]
    wall_y = style.wall_line_y_frac * height
    vanish_y = style.vanishing_y_frac * height
    out = np.zeros((height, width, 3), np.float64)
    wall_t = np.clip(ys / max(wall_y, 1.0), 0.0, 1.0)
    wall = (1 - wall_t)[..., None] * np.array(style.wall_top) + wall_t[..., None] * np.array(
        style.wall_bottom
    )
    floor_t = np.clip((ys - wall_y) / max(height - wall_y, 1.0), 0.0, 1.0)
    floor = (1 - floor_t)[..., None] * np.array(style.floor_far) + floor_t[..., None] * np.array(
        style.floor_near
    )
    # Floor boards: lines of constant world x converge to the vanishing point (cx, vanish_y).
    cx = width / 2
    spacing = style.board_spacing_frac * width
    depth_ratio = (ys - vanish_y) / max(wall_y - vanish_y, 1.0)  # 1 at the wall line, grows towards us
    board_x = (xs - cx) / np.maximum(depth_ratio, 1e-6) / spacing
    dist_px = np.abs(board_x - np.round(board_x)) * spacing * depth_ratio
    line = np.clip(1.0 - dist_px, 0.0, 1.0) * (ys > wall_y)
    floor = floor * (1 - line[..., None]) + np.array(style.board_line) * line[..., None]
    below = np.clip(ys - wall_y + 0.5, 0.0, 1.0)  # anti-aliased wall-floor line
    out = wall * (1 - below[..., None]) + floor * below[..., None]
    baseboard = np.clip(np.minimum(ys - (wall_y - 0.02 * height) + 0.5, wall_y - ys + 0.5), 0.0, 1.0)
    out = out * (1 - baseboard[..., None]) + np.array(style.baseboard) * baseboard[..., None]
    return out.astype(np.float32)


def render_background(width: int, height: int, style: MannequinStyle = DEFAULT_STYLE) -> np.ndarray:
    """The fixed room: a wall with a vertical gradient, a baseboard on the wall-floor line (the room's
    horizon line) and a floor whose boards converge to the camera's vanishing point.

    Returns:
        uint8 ``(height, width, 3)`` RGB.
    """
    return (_background_cached(int(width), int(height), style) + 0.5).astype(np.uint8)


def render_mannequin(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    *,
    width: int,
    height: int,
    threshold: float = 0.5,
    style: MannequinStyle = DEFAULT_STYLE,
    body: MannequinBody = BODY,
) -> MannequinRender:
    """Render the wooden mannequin in one pose over the room.

    Deterministic: the same inputs give a bit-identical image (float64 geometry, a stable depth sort).
    Parts whose joints are missing are left out; with no measurable bone the image is the empty room.
    Drawing model: a soft contact shadow under the ankles, then the parts (module docstring) far to near,
    each shaded with Lambert + Blinn-Phong lighting from the upper left front.

    Args:
        joints_px: float ``(NUM_JOINTS, 2)`` joint x, y in canvas pixels (may lie off the canvas).
        confidence: float ``(NUM_JOINTS,)`` in [0, 1]; joints below ``threshold`` (or non-finite) are missing.
        width, height: canvas size in pixels (>= 1).
        threshold: confidence threshold, as the stick figure's.
        style, body: colors and room; proportions.

    Returns:
        :class:`MannequinRender` (uint8 image ``(height, width, 3)``, uint8 mask ``(height, width)``).

    Raises:
        ValueError: on wrong shapes or a canvas smaller than 1x1.
    """
    joints_px, confidence = as_pose_arrays(joints_px, confidence)
    if joints_px.ndim != 2:
        raise ValueError(f"render_mannequin draws one pose ({NUM_JOINTS}, 2), got {joints_px.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"canvas must be at least 1x1, got {width}x{height}")
    present = (confidence >= threshold) & np.isfinite(joints_px).all(axis=-1)
    canvas = _background_cached(int(width), int(height), style).copy()
    mask = np.zeros((height, width), np.float32)
    parts, px_per_m = _mannequin_parts(joints_px, present, body, style)
    if parts:
        _paint_shadow(canvas, joints_px.astype(np.float64), present, px_per_m, style)
    light = np.asarray(style.light, np.float64)
    light = light / np.linalg.norm(light)
    half = light + np.array([0.0, 0.0, 1.0])
    half = half / np.linalg.norm(half)
    order = sorted(range(len(parts)), key=lambda i: (-parts[i].depth, i))
    for i in order:
        part = parts[i]
        reach = max(part.ra, part.rb) + 1.0
        x0, x1, y0, y1 = _window(part.a, part.b if part.kind == "capsule" else part.a, reach, width, height)
        if x0 >= x1 or y0 >= y1:
            continue
        px = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, :]
        py = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]
        coverage, nx, ny, nz = _coverage_and_normal(part, px, py)
        base = np.asarray(part.color, np.float64)
        if part.shaded:
            lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
            spec = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0.0, 1.0) ** style.shininess
            color = (
                base * (style.ambient + style.diffuse * lambert)[..., None]
                + 255.0 * style.specular * spec[..., None]
            )
        else:
            color = np.broadcast_to(base, (*coverage.shape, 3))
        alpha = coverage[..., None]
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = region * (1 - alpha) + np.clip(color, 0, 255).astype(np.float32) * alpha
        mask[y0:y1, x0:x1] += coverage * (1 - mask[y0:y1, x0:x1])
    image = (np.clip(canvas, 0, 255) + 0.5).astype(np.uint8)
    return MannequinRender(image=image, mask=(np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8))


def _paint_shadow(
    canvas: np.ndarray, j: np.ndarray, present: np.ndarray, px_per_m: float, style: MannequinStyle
) -> None:
    """Darken a soft ellipse on the floor under the lower ankle, sized by the figure's scale."""
    ankles = [a for a in (Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE) if present[a]]
    if not ankles or style.shadow_strength <= 0:
        return
    height, width = canvas.shape[:2]
    xs = [j[a, 0] for a in ankles]
    cx, cy = float(np.mean(xs)), max(j[a, 1] for a in ankles) + 0.05 * px_per_m
    sx = 0.32 * px_per_m + abs(xs[0] - xs[-1]) / 2
    sy = 0.06 * px_per_m
    x0, x1, y0, y1 = _window(np.array([cx, cy]), np.array([cx, cy]), 2 * max(sx, sy), width, height)
    if x0 >= x1 or y0 >= y1:
        return
    px = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, :]
    py = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]
    r2 = ((px - cx) / sx) ** 2 + ((py - cy) / sy) ** 2
    shade = 1.0 - style.shadow_strength * np.exp(-1.5 * r2)
    canvas[y0:y1, x0:x1] *= shade[..., None].astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Motion generator
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera ``cam_height_m`` above a flat floor, looking level; the room's wall stands at
    ``wall_m``. World axes: x to the camera's right, y up, z away from the camera; the camera is at
    ``(0, cam_height_m, 0)``. A point projects to ``x_px = W/2 + f X/Z``, ``y_px = horizon - f (Y - h)/Z``
    with ``f = focal_frac * H`` and ``horizon = horizon_frac * H``.

    The defaults put a standing 1.75 m figure's feet at 95% of the canvas height at ``near_m`` (with room for
    raised hands above the head) and at 81% at ``far_m``, where it is 2/3 as tall; the wall-floor line
    (:attr:`MannequinStyle.wall_line_y_frac`) is where the floor meets the wall at ``wall_m``.
    """

    focal_frac: float = 1.10
    cam_height_m: float = 1.0
    horizon_frac: float = 0.527
    near_m: float = 2.6
    far_m: float = 3.9
    wall_m: float = 5.05
    #: Keep the root this far (meters of body reach) from the canvas's left and right edges.
    side_reach_m: float = 0.80

    def project(self, points_m: np.ndarray, width: int, height: int) -> np.ndarray:
        """World points ``(..., 3)`` in meters (z > 0) to canvas pixels ``(..., 2)``, float64."""
        f = self.focal_frac * height
        z = np.maximum(points_m[..., 2], 1e-3)
        x = width / 2 + f * points_m[..., 0] / z
        y = self.horizon_frac * height - f * (points_m[..., 1] - self.cam_height_m) / z
        return np.stack([x, y], axis=-1)

    def max_abs_x_m(self, depth_m: np.ndarray | float, width: int, height: int) -> np.ndarray:
        """Largest root |x| at depth ``depth_m`` that keeps ``side_reach_m`` of body inside the canvas."""
        px_per_m = self.focal_frac * height / np.asarray(depth_m, np.float64)
        return np.maximum(0.0, 0.47 * width / px_per_m - self.side_reach_m)


@dataclass(frozen=True)
class AngleSpec:
    """One joint angle of the motion model: limits ``[lo_rad, hi_rad]`` (anatomical), its resting value, and
    how widely it moves (the amplitude of its logit-space signal, see :func:`generate_motion`)."""

    name: str
    lo_rad: float
    hi_rad: float
    rest_rad: float
    spread: float


def _limb_angles(side: str) -> tuple[AngleSpec, ...]:
    # Shoulder: elevation from hanging (0) to overhead, in a plane from slightly behind the body (-0.6)
    # through sideways (0) and forward (pi/2) to across the chest (2.2); axial rotation turns the elbow's
    # bending plane. Hip: flexion (forward) / extension, abduction. Knee and elbow: flexion only.
    return (
        AngleSpec(f"{side}_shoulder_elevation", 0.0, 2.9, 0.45, 1.7),
        AngleSpec(f"{side}_shoulder_plane", -0.6, 2.2, 0.6, 1.3),
        AngleSpec(f"{side}_shoulder_rotation", -1.0, 1.4, 0.1, 1.2),
        AngleSpec(f"{side}_elbow_flexion", 0.0, 2.5, 0.6, 1.4),
        AngleSpec(f"{side}_hip_flexion", -0.4, 1.8, 0.08, 1.0),
        AngleSpec(f"{side}_hip_abduction", -0.15, 0.8, 0.1, 1.0),
        AngleSpec(f"{side}_knee_flexion", 0.0, 2.3, 0.15, 1.1),
        AngleSpec(f"{side}_ankle_plantarflexion", -0.3, 0.7, 0.0, 1.0),
    )


#: Every joint angle the motion model drives, with its limits. Yaw 0 faces the camera; positive yaw turns
#: the figure towards the image's right. Twist is the upper body's yaw over the pelvis; lean tilts the
#: upper body sideways, bow forwards.
ANGLE_SPECS: tuple[AngleSpec, ...] = (
    AngleSpec("yaw", -2.4, 2.4, 0.0, 0.8),
    AngleSpec("twist", -0.5, 0.5, 0.0, 1.0),
    AngleSpec("lean", -0.35, 0.35, 0.0, 1.0),
    AngleSpec("bow", -0.25, 0.7, 0.05, 1.0),
    AngleSpec("neck_yaw", -1.1, 1.1, 0.0, 1.0),
    AngleSpec("neck_pitch", -0.5, 0.6, 0.0, 1.0),
    AngleSpec("neck_roll", -0.4, 0.4, 0.0, 1.0),
    *_limb_angles("right"),
    *_limb_angles("left"),
)
ANGLE_INDEX: dict[str, int] = {spec.name: i for i, spec in enumerate(ANGLE_SPECS)}


@dataclass(frozen=True)
class MotionConfig:
    """Settings of :func:`generate_motion`.

    Attributes:
        fps: frames per second of the motion.
        components: sinusoids summed per angle signal.
        min_frequency_hz, max_frequency_hz: their frequency range (log-uniform).
        hold_s: how long the figure stays at a spot on the floor before stepping to another (range).
        walk_speed_m_per_s: speed of a step across the floor; a step cycle covers ``stride_m``.
        hop_every_s: mean time between small hops (0 = never); ``hop_height_m``, ``hop_duration_s``.
        dropout_rate: chance per frame that a hand, foot or face joint starts a short run of missing frames.
        camera: the camera and floor.
    """

    fps: float = 24.0
    components: int = 3
    min_frequency_hz: float = 0.03
    max_frequency_hz: float = 0.7
    hold_s: tuple[float, float] = (1.5, 6.0)
    walk_speed_m_per_s: float = 0.7
    stride_m: float = 1.2
    hop_every_s: float = 12.0
    hop_height_m: float = 0.12
    hop_duration_s: float = 0.45
    dropout_rate: float = 0.004
    camera: CameraModel = field(default_factory=CameraModel)


@dataclass(frozen=True)
class Motion:
    """A generated motion.

    Attributes:
        joints_px: float32 ``(N, NUM_JOINTS, 2)`` canvas pixels.
        confidence: float32 ``(N, NUM_JOINTS)``, 1 for a visible joint, 0 for a hidden one (face turned
            away, the far ear in profile, a short random dropout).
        angles_rad: float32 ``(N, len(ANGLE_SPECS))`` the joint angles in radians (columns: ``angle_names``).
        angle_names: names of the columns of ``angles_rad``.
        root_m: float32 ``(N, 3)`` the mid-hip's world position in meters (see :class:`CameraModel`).
        joints_m: float32 ``(N, NUM_JOINTS, 3)`` the joints' world positions in meters.
        timestamps_ms: float64 ``(N,)``.
    """

    joints_px: np.ndarray
    confidence: np.ndarray
    angles_rad: np.ndarray
    angle_names: tuple[str, ...]
    root_m: np.ndarray
    joints_m: np.ndarray
    timestamps_ms: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _smootherstep(t: np.ndarray) -> np.ndarray:
    """0 to 1 with zero first and second derivatives at both ends (Perlin's quintic)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (t * (6 * t - 15) + 10)


def _sinusoids(
    rng: np.random.Generator, t_s: np.ndarray, config: MotionConfig, slowdown: float = 1.0
) -> np.ndarray:
    """A smooth signal of zero mean and about unit amplitude: ``sum_k a_k sin(2 pi f_k t + phi_k)``, with
    frequencies in the config's range divided by ``slowdown``."""
    k = config.components
    lo, hi = math.log(config.min_frequency_hz / slowdown), math.log(config.max_frequency_hz / slowdown)
    freqs = np.exp(rng.uniform(lo, hi, k))
    phases = rng.uniform(0, 2 * math.pi, k)
    weights = rng.uniform(0.3, 1.0, k)
    weights = weights / np.sqrt(np.sum(weights**2)) * math.sqrt(2)
    return (weights[:, None] * np.sin(2 * math.pi * freqs[:, None] * t_s[None] + phases[:, None])).sum(0)


def _root_path(
    rng: np.random.Generator, n: int, config: MotionConfig, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mid-hip's floor position ``x, z`` (meters) over time: hold a spot, step smoothly (C2) to another.

    Returns:
        ``(x_m, z_m, speed_m_per_s)``, float64 ``(n,)`` each.
    """
    cam = config.camera
    dt = 1.0 / config.fps

    def spot() -> tuple[float, float]:
        z = rng.uniform(cam.near_m, cam.far_m)
        limit = float(cam.max_abs_x_m(z, width, height))
        return rng.uniform(-limit, limit), z

    x, z = np.zeros(n), np.zeros(n)
    cur = spot()
    i = 0
    while i < n:
        hold = int(rng.uniform(*config.hold_s) / dt)
        x[i : i + hold], z[i : i + hold] = cur
        i += hold
        if i >= n:
            break
        nxt = spot()
        dist = math.hypot(nxt[0] - cur[0], nxt[1] - cur[1])
        steps = max(1, int(max(0.8, dist / config.walk_speed_m_per_s) / dt))
        s = _smootherstep(np.arange(1, steps + 1) / steps)[: n - i]
        x[i : i + len(s)] = cur[0] + s * (nxt[0] - cur[0])
        z[i : i + len(s)] = cur[1] + s * (nxt[1] - cur[1])
        i += len(s)
        cur = nxt
    speed = np.hypot(np.gradient(x), np.gradient(z)) / dt
    return x, z, speed


def _gaussian_smooth(signal: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian blur of a 1-D signal over ``sigma_frames`` (edges extended)."""
    radius = max(1, int(math.ceil(3 * sigma_frames)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    padded = np.pad(signal, radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def _rotate(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotate vectors ``(N, 3)`` about unit axes ``(N, 3)`` by ``angle`` ``(N,)`` radians."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c + np.cross(axis, v) * s + axis * np.sum(axis * v, axis=1, keepdims=True) * (1 - c)


def _local(frame: tuple[np.ndarray, np.ndarray, np.ndarray], r, u, f) -> np.ndarray:
    """World vectors ``(N, 3)`` from components along a frame's (right, up, forward) axes."""
    right, up, fwd = frame
    return np.asarray(r)[..., None] * right + np.asarray(u)[..., None] * up + np.asarray(f)[..., None] * fwd


def _yaw_frame(yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, forward) of a figure standing upright with yaw ``yaw`` (0 = facing the camera)."""
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    right = np.stack([-np.cos(yaw), zero, -np.sin(yaw)], axis=1)
    up = np.stack([zero, one, zero], axis=1)
    fwd = np.stack([np.sin(yaw), zero, -np.cos(yaw)], axis=1)
    return right, up, fwd


def _pose_from_angles(angles: np.ndarray, body: MannequinBody) -> np.ndarray:
    """Joint positions ``(N, NUM_JOINTS, 3)``, meters from the mid-hip, from ``angles`` ``(N, A)``."""
    a = {spec.name: angles[:, i] for i, spec in enumerate(ANGLE_SPECS)}
    n = angles.shape[0]
    joints = np.zeros((n, NUM_JOINTS, 3))
    pelvis = _yaw_frame(a["yaw"])
    right, up, fwd = _yaw_frame(a["yaw"] + a["twist"])
    bow, lean = a["bow"][:, None], a["lean"][:, None]
    up, fwd = np.cos(bow) * up + np.sin(bow) * fwd, np.cos(bow) * fwd - np.sin(bow) * up
    up, right = np.cos(lean) * up + np.sin(lean) * right, np.cos(lean) * right - np.sin(lean) * up
    chest = (right, up, fwd)
    neck = body.spine_m * up
    joints[:, Joint.NECK] = neck
    # Head: yaw about the chest's up, then pitch (nod) about the head's right, then roll about its forward.
    h_right = _rotate(right, up, a["neck_yaw"])
    h_fwd = _rotate(fwd, up, a["neck_yaw"])
    h_up = _rotate(up, h_right, -a["neck_pitch"])
    h_fwd = _rotate(h_fwd, h_right, -a["neck_pitch"])
    h_up, h_right = _rotate(h_up, h_fwd, a["neck_roll"]), _rotate(h_right, h_fwd, a["neck_roll"])
    head = (h_right, h_up, h_fwd)
    joints[:, Joint.NOSE] = neck + _local(head, *body.nose_m)
    for side, sign in (("RIGHT", 1.0), ("LEFT", -1.0)):
        ex, ey, ez = body.eye_m
        joints[:, Joint[f"{side}_EYE"]] = neck + _local(head, sign * ex, ey, ez)
        rx, ry, rz = body.ear_m
        joints[:, Joint[f"{side}_EAR"]] = neck + _local(head, sign * rx, ry, rz)
        # Arm in the chest's frame: direction from elevation e and plane p; elbow bend from rotation.
        lower = side.lower()
        e, p = a[f"{lower}_shoulder_elevation"], a[f"{lower}_shoulder_plane"]
        shoulder = neck + sign * body.shoulder_half_width_m * right
        d = _local(chest, sign * np.sin(e) * np.cos(p), -np.cos(e), np.sin(e) * np.sin(p))
        b0 = _local(
            chest,
            -sign * np.cos(p) * np.sin(p) * (1 - np.cos(e)),
            np.sin(p) * np.sin(e),
            np.cos(e) + np.cos(p) ** 2 * (1 - np.cos(e)),
        )
        b = _rotate(b0, d, sign * a[f"{lower}_shoulder_rotation"])
        k = a[f"{lower}_elbow_flexion"][:, None]
        elbow = shoulder + body.upper_arm_m * d
        wrist = elbow + body.forearm_m * (np.cos(k) * d + np.sin(k) * b)
        joints[:, Joint[f"{side}_SHOULDER"]] = shoulder
        joints[:, Joint[f"{side}_ELBOW"]] = elbow
        joints[:, Joint[f"{side}_WRIST"]] = wrist
        # Leg in the pelvis's frame: abduction, then flexion; the knee bends backwards.
        al, ph = a[f"{lower}_hip_abduction"], a[f"{lower}_hip_flexion"]
        hip = sign * body.hip_half_width_m * pelvis[0]
        d = _local(pelvis, sign * np.sin(al), -np.cos(al) * np.cos(ph), np.cos(al) * np.sin(ph))
        f_thigh = _local(pelvis, np.zeros(n), np.sin(ph), np.cos(ph))
        k = a[f"{lower}_knee_flexion"][:, None]
        knee = hip + body.thigh_m * d
        shin = np.cos(k) * d - np.sin(k) * f_thigh
        f_shin = np.cos(k) * f_thigh + np.sin(k) * d
        ankle = knee + body.shin_m * shin
        pf = a[f"{lower}_ankle_plantarflexion"][:, None]
        foot = np.cos(pf) * f_shin + np.sin(pf) * shin
        joints[:, Joint[f"{side}_HIP"]] = hip
        joints[:, Joint[f"{side}_KNEE"]] = knee
        joints[:, Joint[f"{side}_ANKLE"]] = ankle
        joints[:, Joint[f"{side}_BIG_TOE"]] = ankle + body.toe_m[0] * foot + body.toe_m[1] * shin
        joints[:, Joint[f"{side}_HEEL"]] = ankle + body.heel_m[0] * foot + body.heel_m[1] * shin
    return joints


def _visibility(joints_m: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Confidence from world joints ``(N, NUM_JOINTS, 3)``: 0 for the nose and eyes when the face is turned
    away from the camera and for an ear on the far side of the head, 1 elsewhere."""
    n = joints_m.shape[0]
    conf = np.ones((n, NUM_JOINTS), np.float32)
    center = (joints_m[:, Joint.RIGHT_EAR] + joints_m[:, Joint.LEFT_EAR]) / 2
    to_camera = np.array([0.0, camera.cam_height_m, 0.0]) - center
    to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
    face = joints_m[:, Joint.NOSE] - center
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    away = np.sum(face * to_camera, axis=1) < -0.25
    conf[np.ix_(away, [Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE])] = 0.0
    for ear in (Joint.RIGHT_EAR, Joint.LEFT_EAR):
        out = joints_m[:, ear] - center
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        conf[np.sum(out * to_camera, axis=1) < -0.85, ear] = 0.0  # behind the head
    return conf


def _floor_height(local_m: np.ndarray) -> np.ndarray:
    """Mid-hip height ``(N,)`` that puts the lowest knee, ankle, heel or toe of ``local_m`` on the floor."""
    legs = [j for j in Joint if j.name.endswith(("ANKLE", "HEEL", "TOE", "KNEE"))]
    return -local_m[:, legs, 1].min(axis=1)


def mannequin_pose(
    angles_rad: Mapping[str, float] | None = None,
    *,
    x_m: float = 0.0,
    depth_m: float = 3.2,
    width: int = 256,
    height: int = 256,
    camera: CameraModel | None = None,
    body: MannequinBody = BODY,
) -> tuple[np.ndarray, np.ndarray]:
    """One pose of the mannequin standing on the floor, from named joint angles (the rest at rest).

    Args:
        angles_rad: angles of :data:`ANGLE_SPECS` by name, in radians (clipped to their limits); e.g.
            ``{"yaw": math.pi / 2}`` shows the figure in profile facing the image's right.
        x_m, depth_m: the mid-hip's position on the floor (meters, see :class:`CameraModel`).
        width, height: canvas size in pixels.
        camera, body: the camera (default :class:`CameraModel`) and proportions.

    Returns:
        ``(joints_px, confidence)``: float32 ``(NUM_JOINTS, 2)`` canvas pixels and float32 ``(NUM_JOINTS,)``
        (0 for the face turned away and a hidden ear, as in :func:`generate_motion`).

    Raises:
        KeyError: for an angle name not in :data:`ANGLE_SPECS`.
    """
    camera = camera or CameraModel()
    angles = np.array([[spec.rest_rad for spec in ANGLE_SPECS]])
    for name, value in (angles_rad or {}).items():
        spec = ANGLE_SPECS[ANGLE_INDEX[name]]
        angles[0, ANGLE_INDEX[name]] = min(max(float(value), spec.lo_rad), spec.hi_rad)
    local = _pose_from_angles(angles, body)
    world = (
        local
        + np.array([x_m, 0.0, depth_m])
        + np.stack([np.zeros(1), _floor_height(local), np.zeros(1)], axis=1)[:, None, :]
    )
    joints_px = camera.project(world, width, height)[0].astype(np.float32)
    return joints_px, _visibility(world, camera)[0]


def generate_motion(
    num_frames: int,
    width: int,
    height: int,
    *,
    seed: int = 0,
    config: MotionConfig | None = None,
    body: MannequinBody = BODY,
) -> Motion:
    """Seeded, smooth, varied dance-like motion of the mannequin, projected onto a ``width`` x ``height``
    canvas. Uses no recorded motion data.

    Each joint angle of :data:`ANGLE_SPECS` is ``lo + (hi - lo) * sigmoid(z(t))``, so it stays within its
    anatomical limits, where ``z(t)`` is the logit of its resting value plus ``spread`` times a sum of
    ``config.components`` sinusoids of random frequency and phase (smooth: a bounded derivative), plus
    shared signals: a crouch (both knees and hips bend, the upper body bows), the choice of a free leg (the
    other carries the weight), and a walking gait while the figure steps to a new spot on the floor. The
    figure's lowest foot point rests on the floor (plus occasional small hops); it stays between the
    camera's ``near_m`` and ``far_m`` and inside the canvas's sides, so the far and near normalization
    anchors differ.

    Args:
        num_frames: frames to generate (>= 1).
        width, height: canvas size in pixels.
        seed: the random seed; the same arguments give the same motion.
        config: motion settings (:class:`MotionConfig`).
        body: the mannequin's proportions.

    Returns:
        :class:`Motion`.

    Raises:
        ValueError: for ``num_frames < 1`` or a canvas smaller than 16x16.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if width < 16 or height < 16:
        raise ValueError(f"canvas must be at least 16x16, got {width}x{height}")
    config = config or MotionConfig()
    rng = np.random.default_rng(seed)
    n = num_frames
    t_s = np.arange(n) / config.fps
    x_m, z_m, speed = _root_path(rng, n, config, width, height)

    # Shared signals: crouch depth in [0, 1], which leg is free (+1 right, -1 left), walking gait.
    crouch = _sigmoid(2.5 * _sinusoids(rng, t_s, config, slowdown=2.0) - 2.5)
    free = np.tanh(1.5 * _sinusoids(rng, t_s, config, slowdown=2.0))
    walking = _gaussian_smooth(np.clip(speed / 0.4, 0.0, 1.0), 0.3 * config.fps)  # eases in and out
    gait_phase = 2 * math.pi * np.cumsum(speed / config.fps) / config.stride_m
    z = np.zeros((n, len(ANGLE_SPECS)))
    for i, spec in enumerate(ANGLE_SPECS):
        rest = (spec.rest_rad - spec.lo_rad) / (spec.hi_rad - spec.lo_rad)
        z[:, i] = math.log(rest / (1 - rest)) + spec.spread * _sinusoids(rng, t_s, config)
    for side, sign in (("right", 1.0), ("left", -1.0)):
        freedom = 0.35 + 0.65 * np.clip(sign * free, 0.0, 1.0)  # the weight-bearing leg moves less
        for name in ("hip_flexion", "hip_abduction", "knee_flexion", "ankle_plantarflexion"):
            col = ANGLE_INDEX[f"{side}_{name}"]
            spec = ANGLE_SPECS[col]
            rest = (spec.rest_rad - spec.lo_rad) / (spec.hi_rad - spec.lo_rad)
            centre = math.log(rest / (1 - rest))
            z[:, col] = centre + (z[:, col] - centre) * freedom
        swing = np.sin(gait_phase + (0.0 if sign > 0 else math.pi))
        z[:, ANGLE_INDEX[f"{side}_hip_flexion"]] += walking * 1.2 * swing + 2.0 * crouch
        lift = ((1 + swing) / 2) ** 2  # the knee bends as the leg swings forward
        z[:, ANGLE_INDEX[f"{side}_knee_flexion"]] += walking * 1.5 * lift + 3.0 * crouch
        z[:, ANGLE_INDEX[f"{side}_ankle_plantarflexion"]] -= 1.0 * crouch
    z[:, ANGLE_INDEX["bow"]] += 1.5 * crouch
    lo = np.array([s.lo_rad for s in ANGLE_SPECS])
    hi = np.array([s.hi_rad for s in ANGLE_SPECS])
    angles = lo + (hi - lo) * _sigmoid(z)

    local = _pose_from_angles(angles, body)
    # The lowest point of the legs rests on the floor, plus occasional hops.
    hop = np.zeros(n)
    if config.hop_every_s > 0:
        hop_len = max(2, int(config.hop_duration_s * config.fps))
        starts = np.flatnonzero(rng.random(n) < 1.0 / (config.hop_every_s * config.fps))
        shape = np.sin(np.linspace(0, math.pi, hop_len)) ** 2 * config.hop_height_m
        for s in starts:
            seg = shape[: n - s]
            hop[s : s + len(seg)] = np.maximum(hop[s : s + len(seg)], seg)
    root = np.stack([x_m, _floor_height(local) + hop, z_m], axis=1)
    joints_m = local + root[:, None, :]
    joints_px = config.camera.project(joints_m, width, height)
    confidence = _visibility(joints_m, config.camera)
    # Short random dropouts of hands, feet and face joints, as a pose estimator has.
    droppable = [Joint.RIGHT_WRIST, Joint.LEFT_WRIST, Joint.RIGHT_BIG_TOE, Joint.LEFT_BIG_TOE,
                 Joint.RIGHT_HEEL, Joint.LEFT_HEEL, Joint.RIGHT_EAR, Joint.LEFT_EAR]  # fmt: skip
    for start in np.flatnonzero(rng.random(n) < config.dropout_rate):
        joint = droppable[int(rng.integers(len(droppable)))]
        confidence[start : start + int(rng.integers(2, 10)), joint] = 0.0
    return Motion(
        joints_px=joints_px.astype(np.float32),
        confidence=confidence,
        angles_rad=angles.astype(np.float32),
        angle_names=tuple(s.name for s in ANGLE_SPECS),
        root_m=root.astype(np.float32),
        joints_m=joints_m.astype(np.float32),
        timestamps_ms=t_s * 1000.0,
    )


# ---------------------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticDatasetReport:
    """What :func:`write_synthetic_dataset` wrote: its metadata, renderer speed and bytes on disk."""

    meta: PreparedMeta
    render_ms_per_frame: float
    size_bytes: int


def _stick_figures_u8(
    joints_px: np.ndarray, confidence: np.ndarray, width: int, height: int, params: RenderParams
):
    sticks = rasterize_stick_figure(
        torch.from_numpy(np.ascontiguousarray(joints_px, np.float32)),
        torch.from_numpy(np.ascontiguousarray(confidence, np.float32)),
        height=height,
        width=width,
        params=params,
    )
    return (sticks * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_synthetic_dataset(
    out: str | Path,
    *,
    num_frames: int = 3000,
    width: int = 256,
    height: int = 256,
    seed: int = 0,
    heldout_fraction: float = 0.15,
    motion_config: MotionConfig | None = None,
    style: MannequinStyle = DEFAULT_STYLE,
    progress: bool = True,
) -> SyntheticDatasetReport:
    """Write a prepared directory of the mannequin in :mod:`train.prepare`'s format (:mod:`train.dataset`).

    Frames are :func:`render_mannequin` of :func:`generate_motion`; masks are the mannequin's silhouette;
    stick figures are drawn with ``RenderParams.for_canvas``; face boxes by :func:`train.prepare.face_boxes`;
    the normalization statistics come from the training frames; the last ``heldout_fraction`` of frames (a
    continuous stretch of motion never trained on) is held out. ``preview.png`` shows a few frames over
    their stick figures.

    Args:
        out: output directory (created; an existing dataset there is replaced).
        num_frames: frames (>= 8).
        width, height: canvas size in pixels (>= 16).
        seed: motion seed: the same arguments write the same dataset.
        heldout_fraction: in (0, 1).
        motion_config, style: motion settings and colors.
        progress: show a progress bar.

    Raises:
        ValueError: for bad sizes, fractions or frame counts.
    """
    from train.prepare import face_boxes, write_preview

    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8, got {num_frames}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    motion_config = motion_config or MotionConfig()
    motion = generate_motion(num_frames, width, height, seed=seed, config=motion_config)
    params = RenderParams.for_canvas(width, height)
    writer = PreparedWriter(out, num_frames, height, width)
    render_s = 0.0
    for i in tqdm(range(num_frames), desc="render mannequin", unit="frame", disable=not progress):
        start = time.perf_counter()
        rendered = render_mannequin(
            motion.joints_px[i], motion.confidence[i], width=width, height=height,
            threshold=params.confidence_threshold, style=style,
        )  # fmt: skip
        render_s += time.perf_counter() - start
        writer.frames[i] = rendered.image
        writer.masks[i] = rendered.mask
    for start in range(0, num_frames, 64):
        sl = slice(start, min(num_frames, start + 64))
        writer.stick_figures[sl] = _stick_figures_u8(
            motion.joints_px[sl], motion.confidence[sl], width, height, params
        )
    train_end = num_frames - max(1, int(round(heldout_fraction * num_frames)))
    boxes, face_side = face_boxes(motion.joints_px, motion.confidence, params.confidence_threshold)
    meta = PreparedMeta(
        source_video=SYNTHETIC_SOURCE,
        fps=motion_config.fps,
        num_frames=num_frames,
        canvas_width=width,
        canvas_height=height,
        crop=Crop(x0=0.0, y0=0.0, scale=1.0),
        render=params,
        stats=body_stats(
            motion.joints_px[:train_end], motion.confidence[:train_end], params.confidence_threshold
        ),
        train_end=train_end,
        face_box_size_px=face_side,
    )
    writer.finish(
        meta,
        joints_px=motion.joints_px,
        confidence=motion.confidence,
        face_boxes=boxes,
        timestamps_ms=motion.timestamps_ms.astype(np.float64),
    )
    write_preview(Path(out) / "preview.png", writer.frames, writer.stick_figures)
    size = sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file())
    return SyntheticDatasetReport(meta, 1e3 * render_s / num_frames, size)


# ---------------------------------------------------------------------------------------------------------
# Generalization with ground truth
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceEvaluation:
    """A mannequin model driven by one real source video, against the mannequin rendered in the same poses.

    Attributes:
        source: the source video's path.
        num_frames: frames compared (every frame of the source; frames without a person show the empty room).
        frames_with_person: frames where the pose estimator found the source's dancer.
        ssim, psnr_db: mean over frames, generated vs ground truth (scikit-image; SSIM in [-1, 1]).
        face_ssim: mean SSIM over the face boxes (NaN where no frame has a face).
        pose_distance_px: mean distance (canvas pixels) between the driving joints and the joints that the
            pose estimator finds on the generated frames; ``missed_joint_rate`` the fraction of present
            driving joints it does not find.
        reference_pose_distance_px, reference_missed_joint_rate: the same on the ground-truth renders: how
            well the pose estimator sees the mannequin itself (the floor for the two figures above).
        temporal_change_levels: mean frame-to-frame change (uint8 levels) of the generated frames where the
            driving pose stood still (:class:`train.metrics.TemporalStability`).
        generate_ms: the generator's mean milliseconds per frame.
        sheet: path of the sample sheet (source | stick figure | ground truth | generated).
        details: the full measures (:class:`train.metrics.EvaluationResult` as JSON where available).
    """

    source: str
    num_frames: int
    frames_with_person: int
    ssim: float
    psnr_db: float
    face_ssim: float
    pose_distance_px: float
    missed_joint_rate: float
    reference_pose_distance_px: float
    reference_missed_joint_rate: float
    temporal_change_levels: float
    generate_ms: float
    sheet: str
    details: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SyntheticEvaluation:
    """:func:`evaluate_synthetic`'s result: one :class:`SourceEvaluation` per source video."""

    engine: str
    sources: tuple[SourceEvaluation, ...]

    def to_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "sources": [_json_safe(asdict(s)) for s in self.sources]}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _compare(
    generated: np.ndarray, real: np.ndarray, joints_px: np.ndarray, confidence: np.ndarray, boxes: np.ndarray
) -> tuple[dict[str, float], dict[str, Any]]:
    """Generated vs ground truth with :func:`train.metrics.evaluate_frames` (SSIM and PSNR over the frame
    and the face box, MediaPipe pose distance and missed joints, temporal stability).

    Returns:
        ``(summary, details)``: :meth:`train.metrics.EvaluationResult.summary` and its full JSON.
    """
    from train.metrics import evaluate_frames

    result = evaluate_frames(generated, real, joints_px, confidence, boxes, progress=True)
    return result.summary(), result.to_json()


def _fixed_face_boxes(joints_px: np.ndarray, confidence: np.ndarray, side_px: float) -> np.ndarray:
    """Face boxes centered as :func:`train.prepare.face_boxes` centers them, of the target's fixed side."""
    from train.prepare import face_boxes

    boxes, _ = face_boxes(joints_px, confidence)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.concatenate([center - side_px / 2, center + side_px / 2], axis=1).astype(np.float32)


def _sheet(path: Path, rows: list[list[np.ndarray]]) -> None:
    """A PNG with one row per sample: the images of each row side by side (all the same height)."""
    image = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def evaluate_source(
    engine_path: str | Path,
    source_video: str | Path,
    out_dir: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
    sheet_frames: int = 6,
) -> SourceEvaluation:
    """Drive a mannequin model with one real source video and compare with the rendered ground truth.

    The source's poses are estimated (MediaPipe) and normalized onto the target exactly as the offline
    retargeting does (:func:`realtime.retarget.retarget_video`: a centered temporal median, the source's
    statistics fitted on the whole video, then :class:`realtime.pipeline.Retargeter`); each frame is
    generated in order (conditioned on the previous one), and the mannequin is rendered in the same
    normalized pose as the ground truth.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as :meth:`realtime.pipeline.Target.load`.
        realtime.video.VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body.
    """
    from realtime.filters import median_filter_poses
    from realtime.pipeline import Retargeter, Target
    from realtime.pose import PoseFrame
    from realtime.retarget import fit_height
    from realtime.video import read_frames, video_info

    target = Target.load(engine_path)
    width, height = target.canvas_size
    threshold = target.bundle.render.confidence_threshold
    source_video, out_dir = Path(source_video), Path(out_dir)
    total = video_info(source_video).num_frames
    total = min(total, max_frames) if max_frames else total
    retargeter = Retargeter(target, live=False)
    try:
        poses = [
            retargeter.estimate(rgb, ts)
            for rgb, ts in tqdm(read_frames(source_video, max_frames), total=total, desc="pose", unit="frame")
        ]
        joints = np.stack([p.joints_px for p in poses])
        confidence = np.stack([p.confidence for p in poses])
        if median_window > 1:
            joints = median_filter_poses(joints, confidence, median_window)
        retargeter.fit_source(joints, confidence)
        generated, truth, sticks, driving, thumbs, seconds = [], [], [], [], [], 0.0
        picks = set(np.linspace(0, len(poses) - 1, sheet_frames).round().astype(int).tolist())
        frames = read_frames(source_video, len(poses))
        for i, (rgb, _) in enumerate(tqdm(frames, total=len(poses), desc="generate", unit="frame")):
            pose = PoseFrame(joints[i], poses[i].confidence, poses[i].timestamp_ms, poses[i].image_size)
            start = time.perf_counter()
            result = retargeter.generate(pose)
            seconds += time.perf_counter() - start
            normalized = result.normalized
            generated.append(result.generated)
            sticks.append(result.stick_figure)
            driving.append(normalized)
            truth.append(
                render_mannequin(
                    normalized.joints_px,
                    normalized.confidence,
                    width=width,
                    height=height,
                    threshold=threshold,
                ).image
            )
            if i in picks:
                thumbs.append((i, fit_height(rgb, height)))
    finally:
        retargeter.close()
    n = len(generated)
    driving_joints = np.stack([p.joints_px for p in driving])
    driving_conf = np.stack([p.confidence for p in driving])
    boxes = _fixed_face_boxes(driving_joints, driving_conf, target.bundle.face_box_size_px)
    gen_arr, truth_arr = np.stack(generated), np.stack(truth)
    measured, measured_details = _compare(gen_arr, truth_arr, driving_joints, driving_conf, boxes)
    reference, reference_details = _compare(truth_arr, truth_arr, driving_joints, driving_conf, boxes)
    sheet = out_dir / f"{source_video.stem}_sheet.png"
    _sheet(sheet, [[thumb, sticks[i], truth[i], generated[i]] for i, thumb in thumbs])
    return SourceEvaluation(
        source=str(source_video),
        num_frames=n,
        frames_with_person=sum(not p.is_empty for p in poses),
        ssim=float(measured["ssim"]),
        psnr_db=float(measured["psnr_db"]),
        face_ssim=float(measured["face_ssim"]),
        pose_distance_px=float(measured["pose_distance_px"]),
        missed_joint_rate=float(measured["missed_joint_rate"]),
        reference_pose_distance_px=float(reference["pose_distance_px"]),
        reference_missed_joint_rate=float(reference["missed_joint_rate"]),
        generate_ms=1e3 * seconds / max(n, 1),
        sheet=str(sheet),
        temporal_change_levels=float(measured["temporal_change_levels"]),
        details={"generated": measured_details, "ground_truth_render": reference_details},
    )


def evaluate_synthetic(
    engine_path: str | Path,
    source_videos: Sequence[str | Path],
    out_dir: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
) -> SyntheticEvaluation:
    """Generalization of a mannequin model to the unseen poses of real source videos, with exact ground truth.

    For each source video, :func:`evaluate_source`; writes ``OUT/metrics.json`` and one sample sheet per
    source (``OUT/<source stem>_sheet.png``: source | stick figure | ground-truth mannequin | generated).

    Args:
        engine_path: a mannequin target (``.onnx`` or ``.pt`` with its sidecar), e.g.
            :data:`realtime.targets.DEFAULT_TARGET`.
        source_videos: real driving videos.
        out_dir: output directory (created).
        max_frames: use only the first frames of each video.
        median_window: the offline temporal median's window (as ``python -m realtime.retarget``).

    Returns:
        :class:`SyntheticEvaluation`.

    Raises:
        as :func:`evaluate_source`; ValueError if no source video is given.
    """
    if not source_videos:
        raise ValueError("evaluate_synthetic needs at least one source video")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = tuple(
        evaluate_source(engine_path, video, out_dir, max_frames=max_frames, median_window=median_window)
        for video in source_videos
    )
    evaluation = SyntheticEvaluation(engine=str(engine_path), sources=results)
    (out_dir / "metrics.json").write_text(json.dumps(evaluation.to_json(), indent=2))
    return evaluation


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 256x256 (WIDTHxHEIGHT), got {text!r}") from exc
    return w, h


def _main_generate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.synthetic",
        description="Write a prepared training directory (train.prepare's format) of a synthetic wooden "
        "mannequin dancing: generated motion, rendered frames, masks, stick figures, face boxes, statistics, "
        "and the last 15% held out. To compare a trained mannequin model with ground truth on real source "
        "videos' poses: python -m train.evaluate --synthetic --help",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--frames", type=int, default=3000, help="number of frames (default 3000)")
    parser.add_argument(
        "--size", type=_size, default=(256, 256), help="canvas WIDTHxHEIGHT (default 256x256)"
    )
    parser.add_argument("--seed", type=int, default=0, help="motion seed (default 0)")
    parser.add_argument(
        "--heldout-fraction", type=float, default=0.15, help="last fraction of frames held out (default 0.15)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        report = write_synthetic_dataset(
            args.out, num_frames=args.frames, width=args.size[0], height=args.size[1], seed=args.seed,
            heldout_fraction=args.heldout_fraction,
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = report.meta
    print(
        f"wrote {meta.num_frames} frames ({meta.train_end} train, {len(meta.heldout)} held out), "
        f"{meta.canvas_width}x{meta.canvas_height}, {report.size_bytes / 2**20:.0f} MiB, into {args.out} in "
        f"{time.perf_counter() - start:.1f} s (renderer {report.render_ms_per_frame:.2f} ms/frame); "
        f"preview: {args.out / 'preview.png'}"
    )
    return 0


def _main_evaluate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.evaluate --synthetic",
        description="Drive a mannequin model with real source videos' poses (normalized as python -m "
        "realtime.retarget does), render the mannequin in the same poses as ground truth, and compare: SSIM, "
        "PSNR, face SSIM, pose distance and missed joints. Writes OUT/metrics.json and one sample sheet per "
        "source (source | stick figure | ground truth | generated).",
    )
    parser.add_argument(
        "--engine", type=Path, default=None, help="mannequin target (default: the bundled one)"
    )
    parser.add_argument(
        "--source", type=Path, action="append", required=True, help="source video (repeat for several)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--max-frames", type=int, default=None, help="use only the first N frames of each")
    parser.add_argument("--median-window", type=int, default=5, help="temporal median window (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from realtime.video import VideoError

    engine = args.engine
    if engine is None:
        from realtime.targets import DEFAULT_TARGET

        engine = DEFAULT_TARGET
    try:
        evaluation = evaluate_synthetic(
            engine, args.source, args.out, max_frames=args.max_frames, median_window=args.median_window
        )
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"engine {engine}")
    for s in evaluation.sources:
        print(
            f"{Path(s.source).name}: {s.num_frames} frames ({s.frames_with_person} with a person): "
            f"SSIM {s.ssim:.4f}, PSNR {s.psnr_db:.2f} dB, face SSIM {s.face_ssim:.4f}, pose distance "
            f"{s.pose_distance_px:.2f} px, missed joints {s.missed_joint_rate:.1%} (on the ground truth: "
            f"{s.reference_pose_distance_px:.2f} px, {s.reference_missed_joint_rate:.1%}); generator "
            f"{s.generate_ms:.1f} ms/frame; sheet {s.sheet}"
        )
    print(f"metrics: {args.out / 'metrics.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m train.synthetic [--out DIR ...]`` writes a dataset; ``... evaluate ...`` evaluates."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"]:
        return _main_evaluate(argv[1:])
    return _main_generate(argv)


if __name__ == "__main__":
    sys.exit(main())
