"""Labelled synthetic choreography: the mannequin waving, clapping, pointing, pumping its arms, swaying idly
and turning, each sequence varied, as labelled pose sequences in the normalized joint space.

Built on the synthetic motion generator (:func:`train.synthetic.motion.generate_motion`): its seeded
joint-angle signals (in logit space, see there) give each sequence a little natural, random motion; a
per-label choreography (:data:`CHOREOGRAPHIES`, passed as ``generate_motion``'s ``choreography``) damps
those signals and writes the action's own angles over them. Each sequence draws its speed (the action's
frequency), amplitude, side (left or right arm for one-armed actions, the direction of a turn), body size
(:func:`_body`), place on the floor and keypoint noise from its seed; its pixels are then normalized
(:func:`train.actions.sequences.normalize_sequence`). Sequence ``i`` of a label has seed
``seed + 1000 * label_index + i``, and is held out when ``i % heldout_every == 0``, so the split is fixed by
the seeds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from train.actions.sequences import (
    ACTION_LABELS,
    CANONICAL_CANVAS_PX,
    SYNTHETIC_SOURCE_PREFIX,
    LabelledSequences,
    fill_missing,
    label_index,
    normalize_sequence,
)
from train.synthetic.body import BODY, MannequinBody
from train.synthetic.motion import ANGLE_INDEX, MotionConfig, angle_specs, generate_motion

log = logging.getLogger(__name__)

#: Choreography signature: ``f(z, t_s) -> z`` on logit-space angle signals (``generate_motion``).
Choreography = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: The base motion under every action: standing on one spot (a hold longer than any sequence), no hop,
#: no crouch, a little of the floor; the default anatomical limits.
_BASE_MOTION = MotionConfig(
    hold_s=(60.0, 61.0), hop_every_s=0.0, crouch_amount=0.0, floor_area_frac=0.5, dropout_rate=0.0
)
_SPECS = angle_specs(_BASE_MOTION)
#: How much of the base motion's random signals is kept under an action (logit-space factor).
_DAMP = 0.25


@dataclass(frozen=True)
class ChoreographyConfig:
    """Settings of :func:`synthetic_sequences`.

    Attributes:
        sequences_per_label: sequences made per label (>= 1).
        num_frames: frames per sequence (>= 8).
        fps: frames per second.
        seed: base seed (see the module docstring).
        heldout_every: sequence ``i`` of a label is held out when ``i % heldout_every == 0`` (>= 2).
        noise_px: standard deviation of the Gaussian keypoint noise, in pixels of the 256-pixel canvas.
        body_scale_range: the body's size factor is drawn uniformly from this range.
    """

    sequences_per_label: int = 60
    num_frames: int = 32
    fps: float = 12.0
    seed: int = 0
    heldout_every: int = 5
    noise_px: float = 0.3
    body_scale_range: tuple[float, float] = (0.85, 1.15)

    def __post_init__(self) -> None:
        if self.sequences_per_label < 1 or self.num_frames < 8 or self.heldout_every < 2 or self.fps <= 0:
            raise ValueError(
                "choreography needs sequences_per_label >= 1, num_frames >= 8, heldout_every >= 2, fps > 0; "
                f"got {self.sequences_per_label}, {self.num_frames}, {self.heldout_every}, {self.fps}"
            )
        lo, hi = self.body_scale_range
        if not 0 < lo <= hi or self.noise_px < 0:
            raise ValueError(
                f"body_scale_range must be 0 < lo <= hi and noise_px >= 0, got {(lo, hi)}, {self.noise_px}"
            )


def _logit(name: str, value_rad: np.ndarray | float) -> np.ndarray:
    """The logit-space signal that gives angle ``name`` the value ``value_rad`` (kept inside its limits)."""
    spec = _SPECS[ANGLE_INDEX[name]]
    u = np.clip((np.asarray(value_rad, np.float64) - spec.lo_rad) / (spec.hi_rad - spec.lo_rad), 0.02, 0.98)
    return np.log(u / (1 - u))


def _damped(z: np.ndarray) -> np.ndarray:
    """The base motion's signals pulled towards their resting values (logit space)."""
    rest = np.array([_logit(s.name, s.rest_rad) for s in _SPECS])
    return rest + _DAMP * (z - rest)


def _set(z: np.ndarray, name: str, value_rad: np.ndarray | float, keep: float = 0.0) -> None:
    """Write angle ``name``'s signal in place: ``value_rad`` plus ``keep`` of the damped random part."""
    col = ANGLE_INDEX[name]
    rest = _logit(name, _SPECS[col].rest_rad)
    z[:, col] = _logit(name, value_rad) + keep * (z[:, col] - rest)


def _arms_low(z: np.ndarray, sides: tuple[str, ...]) -> None:
    for side in sides:
        _set(z, f"{side}_shoulder_elevation", 0.2, keep=1.0)
        _set(z, f"{side}_elbow_flexion", 0.3, keep=1.0)


def make_choreography(label: str, rng: np.random.Generator) -> Choreography:
    """The choreography of one sequence of ``label``, its variations drawn from ``rng``.

    Args:
        label: one of :data:`ACTION_LABELS`.
        rng: draws the speed (frequency), amplitude, side and phase.

    Returns:
        ``f(z, t_s) -> z`` for :func:`train.synthetic.motion.generate_motion`.

    Raises:
        ValueError: for an unknown label.
    """
    label_index(label)
    side = "right" if rng.random() < 0.5 else "left"
    other = "left" if side == "right" else "right"
    phase = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(0.7, 1.0)

    def wave(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        f = rng_f[0]
        _set(z, f"{side}_shoulder_elevation", 2.2 + 0.25 * rng_f[1])
        _set(z, f"{side}_shoulder_plane", 0.2 + 0.3 * rng_f[1])
        _set(z, f"{side}_shoulder_rotation", 0.0)
        _set(z, f"{side}_elbow_flexion", 0.9 + 0.6 * amp * np.sin(2 * math.pi * f * t + phase))
        _arms_low(z, (other,))
        return z

    def clap(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        f = rng_f[0]
        s = 0.5 + 0.5 * np.sin(2 * math.pi * f * t + phase)  # 1: hands together
        for arm in ("right", "left"):
            _set(z, f"{arm}_shoulder_elevation", 1.1 + 0.2 * rng_f[1])
            _set(z, f"{arm}_shoulder_plane", 0.9 + 1.1 * amp * s)
            _set(z, f"{arm}_elbow_flexion", 0.9 - 0.3 * s)
            _set(z, f"{arm}_shoulder_rotation", 0.1)
        return z

    def point(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        start, target = 0.3, 1.3 + 0.4 * rng_f[1]
        rise = np.clip((t - 0.2 * t[-1]) / (0.25 * t[-1] + 1e-6), 0.0, 1.0)
        rise = rise * rise * (3 - 2 * rise)
        _set(z, f"{side}_shoulder_elevation", start + (target - start) * rise, keep=0.5)
        _set(z, f"{side}_shoulder_plane", 0.2 + 1.2 * rng_f[2], keep=0.5)
        _set(z, f"{side}_elbow_flexion", 0.3 - 0.25 * rise)
        _set(z, "neck_yaw", (0.6 if side == "right" else -0.6) * rng_f[2] * rise, keep=1.0)
        _arms_low(z, (other,))
        return z

    def arm_pump(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        f = rng_f[0]
        s = 0.5 + 0.5 * np.sin(2 * math.pi * f * t + phase)  # 1: fists up
        arms = ("right", "left") if rng_f[2] < 0.6 else (side,)
        for arm in arms:
            _set(z, f"{arm}_shoulder_elevation", 1.5 + 1.1 * amp * s)
            _set(z, f"{arm}_shoulder_plane", 0.3 + 0.2 * rng_f[1])
            _set(z, f"{arm}_elbow_flexion", 2.2 - 1.6 * amp * s)
        if len(arms) == 1:
            _arms_low(z, (other,))
        return z

    def idle_sway(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        f = 0.3 * rng_f[0]
        _set(z, "lean", 0.08 * amp * np.sin(2 * math.pi * f * t + phase), keep=0.5)
        _arms_low(z, ("right", "left"))
        return z

    def turn(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = _damped(z)
        total = (1.0 + 1.3 * rng_f[1]) * (1.0 if side == "right" else -1.0)
        start = rng.uniform(-0.6, 0.6) - total / 2
        u = np.clip(t / (t[-1] + 1e-6), 0.0, 1.0)
        _set(z, "yaw", start + total * u * u * (3 - 2 * u), keep=0.5)
        _arms_low(z, ("right", "left"))
        return z

    # Speed (Hz), a size factor in [0, 1] and a direction factor in [0, 1], drawn before the call.
    rng_f = (rng.uniform(1.0, 2.2), rng.random(), rng.random())
    table: dict[str, Choreography] = {
        "wave": wave, "clap": clap, "point": point, "arm_pump": arm_pump, "idle_sway": idle_sway,
        "turn": turn,
    }  # fmt: skip
    return table[label]


def _body(scale: float) -> MannequinBody:
    """The mannequin's body with every length scaled by ``scale`` (widths and radii kept: only the joints
    matter here)."""
    lengths = ("spine_m", "shoulder_half_width_m", "hip_half_width_m", "upper_arm_m", "forearm_m", "thigh_m",
               "shin_m", "hip_height_m")  # fmt: skip
    return dataclasses.replace(BODY, **{name: getattr(BODY, name) * scale for name in lengths})


def synthetic_sequence(
    label: str, seed: int, config: ChoreographyConfig = ChoreographyConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """One labelled synthetic sequence, normalized.

    Args:
        label: one of :data:`ACTION_LABELS`.
        seed: the sequence's seed (the same arguments give the same sequence).
        config: length, frame rate, noise and body-size range.

    Returns:
        ``(joints, confidence)``: float32 ``(T, NUM_JOINTS, 2)`` in the normalized joint space (filled where
        missing) and float32 ``(T, NUM_JOINTS)`` in {0, 1}.

    Raises:
        ValueError: for an unknown label.
    """
    rng = np.random.default_rng((seed, 22))  # apart from generate_motion's own stream of this seed
    choreography = make_choreography(label, rng)
    body = _body(float(rng.uniform(*config.body_scale_range)))
    motion = generate_motion(
        config.num_frames,
        CANONICAL_CANVAS_PX,
        CANONICAL_CANVAS_PX,
        seed=seed,
        config=dataclasses.replace(_BASE_MOTION, fps=config.fps),
        body=body,
        choreography=choreography,
    )
    joints_px = motion.joints_px + rng.normal(0.0, config.noise_px, motion.joints_px.shape).astype(np.float32)
    joints = normalize_sequence(joints_px, motion.confidence)
    return fill_missing(joints, motion.confidence), motion.confidence


def synthetic_sequences(config: ChoreographyConfig = ChoreographyConfig()) -> LabelledSequences:
    """Every label's synthetic sequences with the fixed held-out split (module docstring).

    Returns:
        :class:`LabelledSequences` of ``len(ACTION_LABELS) * config.sequences_per_label`` sequences.
    """
    joints, confidence, labels, heldout, sources = [], [], [], [], []
    for k, label in enumerate(ACTION_LABELS):
        for i in range(config.sequences_per_label):
            seed = config.seed + 1000 * k + i
            j, c = synthetic_sequence(label, seed, config)
            joints.append(j)
            confidence.append(c)
            labels.append(k)
            heldout.append(i % config.heldout_every == 0)
            sources.append(f"{SYNTHETIC_SOURCE_PREFIX}{label}:{seed}")
    log.info("made %d synthetic sequences of %d frames", len(labels), config.num_frames)
    return LabelledSequences(
        joints=np.stack(joints),
        confidence=np.stack(confidence),
        labels=np.array(labels, np.int64),
        heldout=np.array(heldout, bool),
        fps=config.fps,
        sources=tuple(sources),
    )
