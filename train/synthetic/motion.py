"""The seeded motion generator: smooth, varied dance-like motion of the mannequin with no recorded data.

A joint-angle model with anatomical limits (:data:`ANGLE_SPECS`) driven by sums of sinusoids, a root that
holds a spot on the floor and steps to another (towards and away from the camera), and a pinhole camera
(:class:`CameraModel`) that projects the joints onto the canvas: :func:`generate_motion` for a sequence,
:func:`mannequin_pose` for one pose from named angles. Two motions are named (:data:`MOTION_PRESETS`,
``python -m train.synthetic --motion NAME``): ``dance``, the default, and ``restricted``
(:data:`RESTRICTED_MOTION`), what a user records of themselves in a few seconds: standing, walking a little,
turning round, arms low, no wide stance (the short recording of issue 18's unseen-pose measures).

Everything is in pixels of the canvas unless a name says otherwise (``_m``: meters of the mannequin's body,
``_rad``: radians). Image axes: x to the right, y down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.catalog import MOTION_DANCE, MOTION_RESTRICTED
from train.synthetic.body import BODY, MannequinBody


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
        angle_limits: angles of :data:`ANGLE_SPECS` replaced, by name, with these (other limits, resting
            value and spread; :func:`angle_specs`); empty = the anatomical limits.
        crouch_amount: how much of the shared crouch signal bends the knees and hips and bows the upper body
            (1 = all of it, 0 = the figure never crouches).
        floor_area_frac: the fraction of the floor's depth range (``near_m`` to ``far_m``) and of its usable
            width, centred, where the figure picks the spots it steps to (1 = all of it; small = walking a
            little).
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
    angle_limits: tuple[AngleSpec, ...] = ()
    crouch_amount: float = 1.0
    floor_area_frac: float = 1.0

    def __post_init__(self) -> None:
        unknown = [spec.name for spec in self.angle_limits if spec.name not in ANGLE_INDEX]
        if unknown:
            raise ValueError(f"angle_limits names unknown angles {unknown}; known: {', '.join(ANGLE_INDEX)}")
        for spec in self.angle_limits:
            if not spec.lo_rad < spec.rest_rad < spec.hi_rad:
                raise ValueError(
                    f"angle {spec.name}: the resting value {spec.rest_rad} must lie strictly inside "
                    f"[{spec.lo_rad}, {spec.hi_rad}]"
                )
        if not 0.0 < self.floor_area_frac <= 1.0:
            raise ValueError(f"floor_area_frac must be in (0, 1], got {self.floor_area_frac}")
        if self.crouch_amount < 0:
            raise ValueError(f"crouch_amount must be at least 0, got {self.crouch_amount}")


def angle_specs(config: MotionConfig) -> tuple[AngleSpec, ...]:
    """:data:`ANGLE_SPECS` with ``config.angle_limits`` put in place of the angles they name (same order)."""
    replaced = {spec.name: spec for spec in config.angle_limits}
    return tuple(replaced.get(spec.name, spec) for spec in ANGLE_SPECS)


def _restricted_limb_angles(side: str) -> tuple[AngleSpec, ...]:
    # Arms low: the upper arm at most 0.55 rad (32 degrees) from hanging, never across the chest, the elbow
    # bent at most 0.9 rad, so the forearm is at most 1.45 rad from hanging and the hand stays below the
    # chest. Legs: a walking stride's flexion, hardly any abduction (no wide stance), a knee that bends to
    # walk but never to crouch.
    return (
        AngleSpec(f"{side}_shoulder_elevation", 0.0, 0.55, 0.2, 1.2),
        AngleSpec(f"{side}_shoulder_plane", -0.4, 1.6, 0.4, 1.0),
        AngleSpec(f"{side}_shoulder_rotation", -0.6, 0.8, 0.1, 1.0),
        AngleSpec(f"{side}_elbow_flexion", 0.0, 0.9, 0.3, 1.2),
        AngleSpec(f"{side}_hip_flexion", -0.3, 0.55, 0.05, 0.6),
        AngleSpec(f"{side}_hip_abduction", -0.08, 0.15, 0.03, 0.6),
        AngleSpec(f"{side}_knee_flexion", 0.0, 0.9, 0.1, 0.8),
        AngleSpec(f"{side}_ankle_plantarflexion", -0.2, 0.4, 0.0, 0.8),
    )


#: The restricted motion (``--motion restricted``): what a user records of themselves in a few seconds.
#: Standing at a few nearby spots and walking a little between them (:attr:`MotionConfig.floor_area_frac`),
#: turning round (yaw up to about 170 degrees either way, the back shown), arms low (hands below the chest:
#: :func:`_restricted_limb_angles`), an upright body (small bow, lean and twist), no crouch, no hop, no wide
#: stance.
RESTRICTED_MOTION = MotionConfig(
    hold_s=(2.0, 5.0),
    walk_speed_m_per_s=0.6,
    hop_every_s=0.0,
    angle_limits=(
        AngleSpec("yaw", -3.0, 3.0, 0.0, 1.6),
        AngleSpec("twist", -0.25, 0.25, 0.0, 1.0),
        AngleSpec("lean", -0.12, 0.12, 0.0, 1.0),
        AngleSpec("bow", -0.08, 0.2, 0.03, 1.0),
        *_restricted_limb_angles("right"),
        *_restricted_limb_angles("left"),
    ),
    crouch_amount=0.0,
    floor_area_frac=0.4,
)

#: The named motions of :func:`generate_motion` (``python -m train.synthetic --motion NAME``; the names and
#: their default frame counts are :data:`train.catalog.SYNTHETIC_MOTION_FRAMES`).
MOTION_PRESETS: dict[str, MotionConfig] = {MOTION_DANCE: MotionConfig(), MOTION_RESTRICTED: RESTRICTED_MOTION}


def motion_preset(name: str) -> MotionConfig:
    """The :class:`MotionConfig` of a named motion (:data:`MOTION_PRESETS`).

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in MOTION_PRESETS:
        raise ValueError(f"unknown motion {name!r}; known: {', '.join(MOTION_PRESETS)}")
    return MOTION_PRESETS[name]


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

    margin = (1.0 - config.floor_area_frac) / 2 * (cam.far_m - cam.near_m)  # 0 for the whole floor

    def spot() -> tuple[float, float]:
        z = rng.uniform(cam.near_m + margin, cam.far_m - margin)
        limit = config.floor_area_frac * float(cam.max_abs_x_m(z, width, height))
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
    choreography: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Motion:
    """Seeded, smooth, varied dance-like motion of the mannequin, projected onto a ``width`` x ``height``
    canvas. Uses no recorded motion data.

    Each joint angle of :data:`ANGLE_SPECS` (with ``config.angle_limits`` in place of those it names:
    :func:`angle_specs`) is ``lo + (hi - lo) * sigmoid(z(t))``, so it stays within its limits, where
    ``z(t)`` is the logit of its resting value plus ``spread`` times a sum of ``config.components``
    sinusoids of random frequency and phase (smooth: a bounded derivative), plus shared signals: a crouch
    (both knees and hips bend, the upper body bows; times ``config.crouch_amount``), the choice of a free
    leg (the other carries the weight), and a walking gait while the figure steps to a new spot on the
    floor. The figure's lowest foot point rests on the floor (plus occasional small hops); it stays between
    the camera's ``near_m`` and ``far_m`` and inside the canvas's sides, so the far and near normalization
    anchors differ.

    Args:
        num_frames: frames to generate (>= 1).
        width, height: canvas size in pixels.
        seed: the random seed; the same arguments give the same motion.
        config: motion settings (:class:`MotionConfig`).
        body: the mannequin's proportions.
        choreography: optional ``f(z, t_s) -> z``: receives the angle signals in logit space, float64
            ``(num_frames, len(ANGLE_SPECS))`` (columns in :data:`ANGLE_SPECS` order, see
            :data:`ANGLE_INDEX`), and the frame times in seconds ``(num_frames,)``, and returns new signals of
            the same shape before the limits are applied (a periodic dance pattern, a narrower yaw, ...). It
            draws no random numbers here, so a seed gives the same random parts with or without it.

    Returns:
        :class:`Motion`.

    Raises:
        ValueError: for ``num_frames < 1``, a canvas smaller than 16x16, or a choreography that returns
            another shape.
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
    crouch = config.crouch_amount * _sigmoid(2.5 * _sinusoids(rng, t_s, config, slowdown=2.0) - 2.5)
    free = np.tanh(1.5 * _sinusoids(rng, t_s, config, slowdown=2.0))
    walking = _gaussian_smooth(np.clip(speed / 0.4, 0.0, 1.0), 0.3 * config.fps)  # eases in and out
    gait_phase = 2 * math.pi * np.cumsum(speed / config.fps) / config.stride_m
    specs = angle_specs(config)
    z = np.zeros((n, len(specs)))
    for i, spec in enumerate(specs):
        rest = (spec.rest_rad - spec.lo_rad) / (spec.hi_rad - spec.lo_rad)
        z[:, i] = math.log(rest / (1 - rest)) + spec.spread * _sinusoids(rng, t_s, config)
    for side, sign in (("right", 1.0), ("left", -1.0)):
        freedom = 0.35 + 0.65 * np.clip(sign * free, 0.0, 1.0)  # the weight-bearing leg moves less
        for name in ("hip_flexion", "hip_abduction", "knee_flexion", "ankle_plantarflexion"):
            col = ANGLE_INDEX[f"{side}_{name}"]
            spec = specs[col]
            rest = (spec.rest_rad - spec.lo_rad) / (spec.hi_rad - spec.lo_rad)
            centre = math.log(rest / (1 - rest))
            z[:, col] = centre + (z[:, col] - centre) * freedom
        swing = np.sin(gait_phase + (0.0 if sign > 0 else math.pi))
        z[:, ANGLE_INDEX[f"{side}_hip_flexion"]] += walking * 1.2 * swing + 2.0 * crouch
        lift = ((1 + swing) / 2) ** 2  # the knee bends as the leg swings forward
        z[:, ANGLE_INDEX[f"{side}_knee_flexion"]] += walking * 1.5 * lift + 3.0 * crouch
        z[:, ANGLE_INDEX[f"{side}_ankle_plantarflexion"]] -= 1.0 * crouch
    z[:, ANGLE_INDEX["bow"]] += 1.5 * crouch
    if choreography is not None:
        shape = z.shape
        z = np.asarray(choreography(z, t_s), np.float64)
        if z.shape != shape:
            raise ValueError(f"choreography must return logit signals of shape {shape}, got {z.shape}")
    lo = np.array([s.lo_rad for s in specs])
    hi = np.array([s.hi_rad for s in specs])
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
