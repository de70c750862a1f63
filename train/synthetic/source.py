"""A rendered source dancer: a driving video for the demo and the tests that needs no camera and no footage.

A different figure from the bundled mannequin target in every respect the retargeting must bridge: another
body (:data:`SOURCE_BODY`: shorter, slimmer, longer-legged), other clothes and skin (:data:`SOURCE_STYLE`:
a red short-sleeved shirt, jeans, white shoes, skin-colored head and forearms with eyes and a nose), another
room (green wall, dark wooden floor, lit from the right), and motion unlike the target's training motion:
seeds from :data:`SOURCE_SEED_OFFSET` on (the mannequin is trained on seed 0), the random motion narrowed to
mostly face the camera, and a choreography on a beat (:func:`dance_choreography`: arm pumps, waves overhead,
claps, a disco point, knee bounces and step-touches, with hip sway and shoulder twist) blended over it. It
reuses :func:`~train.synthetic.motion.generate_motion` and :func:`~train.synthetic.renderer.render_mannequin`
with these parameters.

:func:`render_source_video` writes the clip; :func:`cached_source_video` renders it once per machine into a
cache folder (:func:`cache_dir`), named by a hash of the parameters and of the generator's code, and returns
the cached file afterwards. ``python -m train.synthetic source --out dance_demo.mp4`` is its command line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from realtime.video import VideoWriter
from train.catalog import DEFAULT_SOURCE_FPS, DEFAULT_SOURCE_SECONDS, DEFAULT_SOURCE_SEED, DEFAULT_SOURCE_SIZE
from train.synthetic.body import MannequinBody
from train.synthetic.motion import ANGLE_INDEX, ANGLE_SPECS, Motion, MotionConfig, generate_motion
from train.synthetic.renderer import MannequinStyle, render_mannequin

logger = logging.getLogger(__name__)

#: The source dancer's proportions: a 1.63 m figure, slimmer and longer-legged than the mannequin target.
SOURCE_BODY = MannequinBody(
    spine_m=0.45,
    shoulder_half_width_m=0.165,
    hip_half_width_m=0.095,
    upper_arm_m=0.27,
    forearm_m=0.245,
    thigh_m=0.43,
    shin_m=0.42,
    hip_height_m=0.89,
    head_center_m=(0.0, 0.175, 0.0),
    nose_m=(0.0, 0.155, 0.095),
    eye_m=(0.03, 0.19, 0.08),
    ear_m=(0.07, 0.175, 0.0),
    toe_m=(0.14, 0.045),
    heel_m=(-0.045, 0.055),
    head_semi_axes_m=(0.115, 0.092),
    nose_radius_m=0.022,
    eye_radius_m=0.015,
    neck_radius_m=0.04,
    chest_top_below_neck_m=0.1,
    chest_bottom_below_neck_m=0.27,
    chest_min_half_width_m=0.085,
    pelvis_semi_length_m=0.12,
    pelvis_min_half_width_m=0.105,
    waist_radius_m=0.08,
    shoulder_ball_m=0.05,
    upper_arm_radii_m=(0.045, 0.036),
    elbow_ball_m=0.034,
    forearm_radii_m=(0.032, 0.025),
    wrist_ball_m=0.025,
    hand_semi_axes_m=(0.075, 0.036),
    thigh_radii_m=(0.07, 0.05),
    knee_ball_m=0.05,
    shin_radii_m=(0.05, 0.04),
    shoe_radius_m=0.038,
)

#: The source dancer's clothes, skin and room (``wood`` is the skin: head, neck, forearms and hands).
SOURCE_STYLE = MannequinStyle(
    wood=(226, 178, 146),
    shirt=(196, 48, 62),
    trousers=(46, 78, 132),
    shoes=(238, 236, 230),
    eyes=(24, 18, 16),
    wall_top=(176, 206, 182),
    wall_bottom=(150, 184, 160),
    baseboard=(236, 234, 226),
    floor_far=(112, 80, 58),
    floor_near=(146, 104, 72),
    board_line=(84, 58, 42),
    shadow_strength=0.45,
    light=(0.5, -0.6, 0.7),
    ambient=0.5,
    diffuse=0.55,
    specular=0.12,
    shininess=16.0,
    board_spacing_frac=0.14,
)

#: Source seeds are ``SOURCE_SEED_OFFSET + seed``, far from the seeds the mannequin target is trained on.
SOURCE_SEED_OFFSET = 1_000_000

#: The random motion under the choreography: longer holds on a spot, no hops, no joint dropouts (the
#: renderer would leave a dropped hand out of the picture).
SOURCE_MOTION = MotionConfig(hold_s=(3.0, 8.0), hop_every_s=0.0, dropout_rate=0.0)

#: Share of the choreographed angle in the blend with the random motion (logit space), per driven angle.
CHOREOGRAPHY_WEIGHT = 0.75

#: How much of its random swing each of these angles keeps (the dancer mostly faces the camera).
_RANDOM_SCALE = {"yaw": 0.4, "neck_yaw": 0.5, "neck_pitch": 0.5}

#: The moves, each held for ``_BEATS_PER_MOVE`` beats, in an order drawn from the seed.
MOVES = ("arm pump", "wave overhead", "claps", "disco point")
_BEATS_PER_MOVE = 8


@dataclass(frozen=True)
class SourceParams:
    """Everything that determines the rendered clip (the cache key hashes it with the code).

    Attributes:
        seconds: clip length (> 0).
        fps: frames per second (> 0).
        width, height: frame size in pixels (>= 16 each).
        seed: the source seed (the motion seed is ``SOURCE_SEED_OFFSET + seed``).
        bpm: the choreography's tempo in beats per minute (> 0).
    """

    seconds: float = DEFAULT_SOURCE_SECONDS
    fps: float = DEFAULT_SOURCE_FPS
    width: int = DEFAULT_SOURCE_SIZE[0]
    height: int = DEFAULT_SOURCE_SIZE[1]
    seed: int = DEFAULT_SOURCE_SEED
    bpm: float = 112.0

    @property
    def num_frames(self) -> int:
        """``round(seconds * fps)``, at least 1."""
        return max(1, round(self.seconds * self.fps))

    def check(self) -> None:
        """Raises ValueError, naming the field, for a value out of range."""
        if not self.seconds > 0 or not self.fps > 0 or not self.bpm > 0:
            raise ValueError(f"seconds, fps and bpm must be > 0, got {self.seconds}, {self.fps}, {self.bpm}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"the frame must be at least 16x16, got {self.width}x{self.height}")


def _logit_of_angle(name: str, angle_rad: np.ndarray) -> np.ndarray:
    """The logit-space signal (see :func:`generate_motion`) that gives ``angle_rad``, clipped inside the
    angle's limits."""
    spec = ANGLE_SPECS[ANGLE_INDEX[name]]
    r = np.clip((angle_rad - spec.lo_rad) / (spec.hi_rad - spec.lo_rad), 0.02, 0.98)
    return np.log(r / (1 - r))


def _smootherstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (t * (6 * t - 15) + 10)


def _move_angles(move: str, beat: np.ndarray) -> dict[str, np.ndarray]:
    """Target angles (radians) of one move's arms at beat position ``beat`` (float beats, ``(N,)``)."""
    phase = 2 * math.pi * beat  # one cycle per beat
    half = phase / 2  # one cycle per two beats
    out: dict[str, np.ndarray] = {}
    for side, sign in (("right", 1.0), ("left", -1.0)):
        if move == "arm pump":  # forearms up, the arms pump up and down in turn
            swing = np.sin(half + (0.0 if sign > 0 else math.pi))
            out[f"{side}_shoulder_plane"] = np.full_like(beat, 0.9)
            out[f"{side}_shoulder_elevation"] = 1.2 + 0.8 * swing
            out[f"{side}_elbow_flexion"] = 1.4 - 0.6 * swing
            out[f"{side}_shoulder_rotation"] = np.full_like(beat, 0.6)
        elif move == "wave overhead":  # arms high to the sides, swaying in opposite phase
            sway = np.sin(half + (0.0 if sign > 0 else math.pi))
            out[f"{side}_shoulder_plane"] = 0.1 + 0.25 * sway
            out[f"{side}_shoulder_elevation"] = 2.35 + 0.35 * sway
            out[f"{side}_elbow_flexion"] = 0.35 + 0.25 * (1 + sway)
            out[f"{side}_shoulder_rotation"] = np.zeros_like(beat)
        elif move == "claps":  # hands meet in front of the chest on every beat
            meet = (1 + np.cos(phase)) / 2
            out[f"{side}_shoulder_plane"] = 1.2 + 0.5 * meet
            out[f"{side}_shoulder_elevation"] = 1.3 + 0.2 * meet
            out[f"{side}_elbow_flexion"] = 0.6 + 1.0 * meet
            out[f"{side}_shoulder_rotation"] = np.full_like(beat, 0.2)
        elif move == "disco point":  # right arm points up and down across the body; left hand on the hip
            if sign > 0:
                up = (1 + np.sin(half)) / 2
                out["right_shoulder_plane"] = 0.3 + 0.9 * (1 - up)
                out["right_shoulder_elevation"] = 0.5 + 2.2 * up
                out["right_elbow_flexion"] = np.full_like(beat, 0.15)
                out["right_shoulder_rotation"] = np.zeros_like(beat)
            else:
                out["left_shoulder_plane"] = np.full_like(beat, -0.2)
                out["left_shoulder_elevation"] = np.full_like(beat, 0.7)
                out["left_elbow_flexion"] = np.full_like(beat, 2.0)
                out["left_shoulder_rotation"] = np.full_like(beat, -0.6)
        else:
            raise ValueError(f"unknown move {move!r}; the moves are {MOVES}")
    return out


def dance_choreography(seed: int, bpm: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A choreography for :func:`generate_motion`'s ``choreography`` argument: dance moves on a beat.

    The arms follow :data:`MOVES`, each for 8 beats in an order drawn from ``seed``, cross-faded over one
    beat; under every move the knees bounce on the beat, the legs step-touch to the side every two beats,
    the hips sway and the shoulders twist with them. Each driven angle is ``CHOREOGRAPHY_WEIGHT`` of the
    choreographed angle and the rest of the random motion (in logit space, so it stays within its limits);
    the yaw and the head's turn and nod keep only part of their random swing (:data:`_RANDOM_SCALE`).

    Args:
        seed: orders the moves (any int).
        bpm: tempo in beats per minute (> 0).

    Returns:
        ``f(z, t_s) -> z`` on float64 logit signals ``(N, len(ANGLE_SPECS))`` and times ``(N,)`` in seconds.
    """
    order = np.random.default_rng([seed, 7]).permutation(len(MOVES))

    def choreograph(z: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        z = z.copy()
        for name, scale in _RANDOM_SCALE.items():
            spec = ANGLE_SPECS[ANGLE_INDEX[name]]
            rest = _logit_of_angle(name, np.array(spec.rest_rad))
            z[:, ANGLE_INDEX[name]] = rest + scale * (z[:, ANGLE_INDEX[name]] - rest)
        beat = t_s * bpm / 60.0
        phase = 2 * math.pi * beat
        half = phase / 2
        # Arms: a weighted sum of the moves, each weight a smooth window of its 8 beats.
        segment = beat / _BEATS_PER_MOVE
        index = np.floor(segment).astype(int)
        into = segment - index  # 0..1 inside the segment
        fade = _smootherstep((into * _BEATS_PER_MOVE - (_BEATS_PER_MOVE - 1)) / 1.0)  # the last beat
        current = order[index % len(MOVES)]
        following = order[(index + 1) % len(MOVES)]
        angles: dict[str, np.ndarray] = {}
        for m, move in enumerate(MOVES):
            weight = (current == m) * (1 - fade) + (following == m) * fade
            if not weight.any():
                continue
            for name, value in _move_angles(move, beat).items():
                angles[name] = angles.get(name, 0.0) + weight * value
        bounce = (1 - np.cos(phase)) / 2  # knees bend on the off-beat, straighten on the beat
        for side, sign in (("right", 1.0), ("left", -1.0)):
            step = np.clip(sign * np.sin(half), 0.0, 1.0)  # this leg steps out to the side
            angles[f"{side}_knee_flexion"] = 0.15 + 0.45 * bounce
            angles[f"{side}_hip_flexion"] = 0.08 + 0.25 * bounce
            angles[f"{side}_hip_abduction"] = 0.02 + 0.35 * step
        angles["lean"] = 0.12 * np.sin(half)
        angles["twist"] = 0.2 * np.sin(half + 0.6)
        angles["neck_roll"] = 0.1 * np.sin(half)
        for name, angle in angles.items():
            col = ANGLE_INDEX[name]
            z[:, col] = (1 - CHOREOGRAPHY_WEIGHT) * z[:, col] + CHOREOGRAPHY_WEIGHT * _logit_of_angle(
                name, angle
            )
        return z

    return choreograph


def generate_source_motion(params: SourceParams) -> Motion:
    """The source dancer's motion: :func:`generate_motion` with :data:`SOURCE_BODY`, :data:`SOURCE_MOTION`
    (at ``params.fps``), the seed ``SOURCE_SEED_OFFSET + params.seed`` and :func:`dance_choreography`.

    Returns:
        :class:`~train.synthetic.motion.Motion` of ``params.num_frames`` frames on a
        ``params.width`` x ``params.height`` canvas (pixels).

    Raises:
        ValueError: for parameters out of range (:meth:`SourceParams.check`).
    """
    params.check()
    config = replace(SOURCE_MOTION, fps=params.fps)
    return generate_motion(
        params.num_frames,
        params.width,
        params.height,
        seed=SOURCE_SEED_OFFSET + params.seed,
        config=config,
        body=SOURCE_BODY,
        choreography=dance_choreography(params.seed, params.bpm),
    )


@dataclass(frozen=True)
class SourceVideo:
    """A rendered source clip.

    Attributes:
        path: the MP4 file (H.264, yuv420p).
        params: what it was rendered with.
        render_s: seconds spent rendering and encoding it (0 when it came from the cache).
        cached: True when an earlier rendering was reused.
    """

    path: Path
    params: SourceParams
    render_s: float
    cached: bool


def render_source_video(path: str | os.PathLike[str], params: SourceParams | None = None) -> SourceVideo:
    """Render the source dancer (:func:`generate_source_motion`, then :func:`render_mannequin` with
    :data:`SOURCE_STYLE` and :data:`SOURCE_BODY`) into an MP4 file at ``path`` (its folder is created).

    Raises:
        ValueError: for parameters out of range.
    """
    params = params or SourceParams()
    start = time.perf_counter()
    motion = generate_source_motion(params)
    writer = VideoWriter(path, params.fps, params.width, params.height)
    try:
        for joints, confidence in zip(motion.joints_px, motion.confidence, strict=True):
            frame = render_mannequin(
                joints, confidence, width=params.width, height=params.height, style=SOURCE_STYLE,
                body=SOURCE_BODY,
            )  # fmt: skip
            writer.write(frame.image)
    finally:
        writer.close()
    return SourceVideo(Path(path), params, time.perf_counter() - start, cached=False)


#: The modules whose code decides the clip's pixels; their bytes are part of the cache key.
_CODE_FILES = ("body.py", "motion.py", "renderer.py", "source.py")


def cache_key(params: SourceParams) -> str:
    """A hex digest of ``params`` and of the code that renders them (this package's body, motion, renderer
    and source modules, and the skeleton); a change to any of them gives a new key."""
    digest = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode())
    here = Path(__file__).resolve().parent
    for path in [
        *(here / name for name in _CODE_FILES),
        here.parents[1] / "realtime" / "pose" / "skeleton.py",
    ]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def cache_dir() -> Path:
    """Where rendered clips are kept: ``$DANCE_LIVE_CACHE`` if set, else ``$XDG_CACHE_HOME/dance-live``,
    else ``~/.cache/dance-live``."""
    if os.environ.get("DANCE_LIVE_CACHE"):
        return Path(os.environ["DANCE_LIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dance-live"


def cached_source_video(params: SourceParams | None = None, folder: Path | None = None) -> SourceVideo:
    """The rendered source clip for ``params`` from the cache, rendered into it first if absent.

    The file is ``FOLDER/source-KEY.mp4`` (``FOLDER`` defaults to :func:`cache_dir`, ``KEY`` is
    :func:`cache_key`); it is written under a temporary name and renamed, so concurrent callers (test
    workers) never read a partial file.

    Raises:
        ValueError: for parameters out of range.
        OSError: if the cache folder cannot be created or written (set ``DANCE_LIVE_CACHE`` elsewhere).
    """
    params = params or SourceParams()
    params.check()
    folder = folder or cache_dir()
    path = folder / f"source-{cache_key(params)}.mp4"
    if path.is_file():
        return SourceVideo(path, params, 0.0, cached=True)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.stem}.{os.getpid()}.partial.mp4"
    try:
        rendered = render_source_video(partial, params)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("rendered the source dancer into %s in %.1f s", path, rendered.render_s)
    return SourceVideo(path, params, rendered.render_s, cached=False)
