"""The mannequin renderer: a pose on the project's skeleton -> a shaded wooden mannequin in a fixed room.

:func:`render_mannequin` draws the mannequin (shirt, trousers, shoes, a head whose nose bump and painted eyes
show where it faces) over the room of :func:`render_background` (wall, floor with a horizon line and
converging floor boards), deterministically, and returns its silhouette mask with it. It is the ground truth
of the synthetic target: the dataset's frames and the unseen-pose evaluation's reference images.

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

Everything is in pixels of the canvas unless a name says otherwise (``_m``: meters of the mannequin's body).
Image axes: x to the right, y down; the renderer's depth: smaller is nearer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from realtime.pose.skeleton import NUM_JOINTS, Joint, as_pose_arrays
from train.synthetic.body import BODY, MannequinBody

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
