"""The retargeting pipeline for one frame: pose -> normalize -> stick figure -> generator.

:class:`Target` is a loaded target model (backend + sidecar), shared by every stream. :class:`Retargeter`
holds one stream's state: its pose tracker, its source statistics for normalization, and the previous
generated frame that the generator is conditioned on (Everybody Dance Now's temporal smoothing).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.catalog import MODEL_CHOICES, POSE_ESTIMATORS, UnknownPoseEstimatorError, pose_estimator_names
from realtime.model.actions import (
    ActionParams,
    ActionPlayer,
    TargetActions,
    load_action_model,
    read_action_labels,
)
from realtime.model.appearance import (
    GARMENT_PARTS,
    REFERENCE_IMAGES,
    REFERENCE_KEYPOINTS,
    has_reference_appearance,
    recolor_garment,
)
from realtime.model.backends import InferenceBackend, check_engine_suffix, open_backend
from realtime.model.bundle import BundleError, TargetBundle, read_bundle, read_target_inputs
from realtime.model.face import FaceRefiner
from realtime.model.inputs import FrameContext, InputRole, assemble_inputs, target_value_shape
from realtime.pose.estimators import PoseEstimator, PoseFrame, open_pose_estimator
from realtime.pose.filters import OneEuroFilter, OneEuroParams
from realtime.pose.normalize import CanvasClamp, PoseNormalizer
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.tracking import PoseHold, SourceTracker, TrackingParams, neutral_pose

log = logging.getLogger(__name__)

#: Live streams refit the source's statistics on this many most recent frames with a body...
LIVE_STATS_WINDOW_FRAMES = 300
#: ...every this many frames (and on every frame until the first fit succeeds).
LIVE_REFIT_EVERY_FRAMES = 30
#: Live keypoint smoothing.
DEFAULT_ONE_EURO = OneEuroParams()


def choose_model(bundle: TargetBundle, path: Path, device: str | torch.device | None, model: str) -> str:
    """Which of a bundle's models :meth:`Target.load` runs: "only" for a bundle without a student; else
    ``model`` when it is "teacher" or "student"; for "auto" the student when the generator runs on the CPU
    (``device`` "cpu", or None with no CUDA device for PyTorch, and not a ``.plan``) and the teacher
    otherwise. Logs the choice and why.

    Raises:
        BundleError: for an unknown ``model``, or "student" asked of a bundle without one or of a ``.plan``
            engine (TensorRT engines are built for the teacher only).
    """
    if model not in MODEL_CHOICES:
        raise BundleError(f"model must be one of {MODEL_CHOICES}, got {model!r}")
    if bundle.student is None:
        if model == "student":
            raise BundleError(
                f"{path} holds no real-time student; train with the student stage and export again"
            )
        return "only"
    if model == "student" and path.suffix == ".plan":
        raise BundleError(f"{path}: TensorRT engines are built for the teacher only; run the student's .onnx")
    if model != "auto":
        log.info("%s: running the %s (asked for)", path.name, model)
        return model
    on_cpu = path.suffix != ".plan" and (
        torch.device(device).type == "cpu" if device is not None else not torch.cuda.is_available()
    )
    role = "student" if on_cpu else "teacher"
    why = "the generator runs on the CPU" if on_cpu else "a GPU runs the generator"
    log.info("%s: running the %s (%s; --model teacher|student overrides)", path.name, role, why)
    return role


class Target:
    """A target model ready to run: the inference backend, its sidecar, and its per-target inputs.

    The per-target inputs (a reference appearance, a background plate: :mod:`realtime.model.inputs`) are
    loaded once here, onto the backend's device, and every :class:`Retargeter` of this target feeds the same
    tensors every frame (FasterLivePortrait's "prepare the source once, run per frame").

    Args:
        backend: the loaded generator.
        bundle: its sidecar.
        path: the engine file it came from.
        face: the face residual model (Everybody Dance Now's face GAN) when the sidecar names one, else None.
        per_target: the generator's ``per_target`` inputs by name, float ``(C, H, W)`` or ``(1, C, H, W)`` in
            [0, 1], and its target data, float ``(C, ...)`` (NumPy or torch, any device);
            None: read from the file the sidecar names beside ``path``
            (:func:`realtime.model.bundle.read_target_inputs`).
        role: which of the bundle's models this is: "teacher", "student" (:meth:`load`'s choice), or "only"
            for a bundle without a student.

    Raises:
        realtime.model.bundle.BundleError: for a missing or mismatched per-target inputs file, or given
            per-target inputs that miss one of the generator's or have the wrong shape.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        bundle: TargetBundle,
        path: Path,
        face: FaceRefiner | None = None,
        per_target: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        role: str = "only",
    ) -> None:
        self.role = role
        self.backend = backend
        self.bundle = bundle
        self.path = path
        self.face = face
        self.name = bundle.name
        self.canvas_size: tuple[int, int] = (bundle.canvas_width, bundle.canvas_height)
        if per_target is None:
            per_target = read_target_inputs(path, bundle)
        self.per_target: dict[str, torch.Tensor] = {}
        for spec in bundle.generator_inputs.target_values:
            if spec.name not in per_target:
                raise BundleError(f"{path}: no value for the per-target input {spec.name!r}")
            value = torch.as_tensor(per_target[spec.name])
            try:
                shape = target_value_shape(spec, value.shape, (bundle.canvas_height, bundle.canvas_width))
            except ValueError as error:
                raise BundleError(f"{path}: {error}") from None
            self.per_target[spec.name] = value.to(self.device, torch.float32).reshape(1, *shape).contiguous()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device | None = None,
        model: str = "auto",
        **backend_options: Any,
    ) -> Target:
        """Load ``NAME.plan`` / ``NAME.onnx`` / ``NAME.pt`` (inference weights), its ``NAME.json`` sidecar
        and, when the generator takes per-target inputs, ``NAME.target_inputs.npz`` (onto the backend's
        device): the backend follows the extension (:func:`realtime.model.backends.open_backend`). When the
        sidecar names a ``face_model``, it is loaded too, on that device
        (:class:`realtime.model.face.FaceRefiner`); a ``.plan`` target's face model is the ``.plan`` of that
        name (``NAME.face.plan``, built with it by ``python -m export tensorrt``), since ``NAME.json`` is
        shared with ``NAME.onnx``.

        A bundle with a real-time student (issue 19: ``NAME.student.onnx`` / ``.pt`` named in the sidecar)
        runs one of its two models, chosen by ``model``: "auto" runs the student where the generator runs on
        the CPU and the teacher on a GPU; "teacher" or "student" force one. The choice is logged and kept in
        :attr:`role`.

        Args:
            path: the engine file.
            device: where the generator and face model run ("cpu", "cuda"); None: each backend's default
                (``.pt`` on the CPU, ``.onnx`` on CUDA where ONNX Runtime offers it, ``.plan`` on CUDA).
            model: "auto", "teacher" or "student" (see above; :data:`realtime.catalog.MODEL_CHOICES`).
            backend_options: passed to both backends' constructors (e.g. ``precision="fp16"`` and
                ``cuda_graph=True`` for ``.pt`` on CUDA, ``cuda_graph=True`` for ``.plan``).

        Raises:
            FileNotFoundError: if the engine file (or the face model it names) is missing.
            ValueError: (:class:`realtime.model.bundle.BundleError`) for a missing or malformed sidecar, a
                missing or mismatched per-target inputs file (``NAME.target_inputs.npz``), an unknown
                ``model``, or "student" asked of a bundle without one or of a ``.plan`` engine.
            RuntimeError: (:class:`realtime.model.backends.BackendError`) if the engine cannot be loaded or
                its inputs differ from the sidecar's declaration.
        """
        path = Path(path)
        check_engine_suffix(path)
        if not path.is_file():
            raise FileNotFoundError(f"engine file not found: {path}")
        bundle = read_bundle(path)
        role = choose_model(bundle, path, device, model)
        if role == "student":
            assert bundle.student is not None
            # A .pt bundle runs the student's inference weights (fp32), an .onnx one the sidecar's engine.
            student_file = (
                bundle.student.file if path.suffix == ".onnx" else f"{path.stem}.student{path.suffix}"
            )
            path = path.with_name(student_file)
            if not path.is_file():
                raise FileNotFoundError(f"the student's engine file {path} is missing (export writes it)")
            if bundle.student.cpu_threads and path.suffix == ".onnx" and "threads" not in backend_options:
                backend_options = {**backend_options, "threads": bundle.student.cpu_threads}
            bundle = bundle.for_student()
        options = dict(backend_options) if device is None else {"device": device, **backend_options}
        backend = open_backend(path, expected=bundle.inputs, **options)
        face = None
        if bundle.face_model is not None:
            face_model = bundle.face_model
            if path.suffix == ".plan":
                face_model = Path(face_model).with_suffix(".plan").name
            face = FaceRefiner.load(
                path, face_model, bundle.face_box_size_px, bundle.render.confidence_threshold, **options
            )
        return cls(backend, bundle, path, face, role=role)

    @property
    def device(self) -> torch.device:
        """Where the generator takes its inputs and writes its output."""
        return self.backend.device

    def generate(self, inputs: Mapping[str, torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        """Run the generator.

        Args:
            inputs: every input of ``bundle.generator_inputs`` by name, float32 ``(B, C, H, W)`` in [0, 1]
                (:func:`realtime.model.inputs.assemble_inputs`; per-target ones: :attr:`per_target`).
            out: a float32 ``(B, 3, H, W)`` tensor on :attr:`device` to write the frame into, or None
                (the backend's per-thread buffer, valid until this thread's next run).

        Returns:
            float32 ``(B, 3, H, W)`` in [0, 1] on :attr:`device`.

        Raises:
            realtime.model.backends.BackendError: for missing inputs or a failed run.
        """
        name = self.bundle.generator_inputs.output.name
        return self.backend.run(inputs, None if out is None else {name: out})[name]


@dataclass(frozen=True)
class RetargetResult:
    """One retargeted frame: the generated frame and the stick figure as two images (on the CPU never
    joined; on a GPU one joined download, then two views); a caller that shows them side by side composes
    its own view.

    Attributes:
        generated: uint8 ``(H, W, 3)`` the target in the source's pose, on the target canvas (may be a
            strided view; a new array per frame, not written again by the pipeline).
        stick_figure: uint8 ``(H, W, 3)`` the normalized stick figure the generator saw (same).
        pose: the source pose, in source frame pixels.
        normalized: the pose on the target canvas (in canvas pixels).
        timings_ms: milliseconds per stage ("pose", "normalize", "rasterize", "generate").
    """

    generated: np.ndarray
    stick_figure: np.ndarray
    pose: PoseFrame
    normalized: PoseFrame
    timings_ms: dict[str, float] = field(default_factory=dict)


def to_uint8_hwc(chw: torch.Tensor) -> np.ndarray:
    """float32 ``(3, H, W)`` in [0, 1] (any device) -> uint8 ``(H, W, 3)`` NumPy, clipped to [0, 1] and
    rounded to nearest: the one conversion of a generated frame to an image (the pipeline, the evaluation).

    On a GPU the conversion runs there and only uint8 comes down. A CPU tensor is converted by NumPy (a view,
    no copy), single-threaded: PyTorch's intra-op threads beside ONNX Runtime's made this small conversion
    take 58.6 ms instead of 1.3 ms (``python -m bench.stages``, 2 threads vs 1, loaded 2-core machine).
    """
    if chw.device.type != "cpu":
        return (chw.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return (np.clip(chw.numpy(), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


class Retargeter:
    """One stream's retargeting state.

    Two stages: :meth:`estimate` (pose, and live fitting of the source's statistics) and :meth:`generate`
    (normalize, stick figure, generator). Each stage must be called from one thread at a time, but the two
    may run at once on two threads (frame t+1's pose while frame t is generated): they share only the
    normalizer's fit, which is replaced atomically. :meth:`process` runs both for one frame.

    Live (``live=True``): the source's normalization statistics are fitted on the stream as it runs (on the
    first frame with a body, again each time the poses seen have doubled, then every
    :data:`LIVE_REFIT_EVERY_FRAMES` frames on the last :data:`LIVE_STATS_WINDOW_FRAMES`). Offline
    (``live=False``): call :meth:`fit_source` on the whole source's poses first, then :meth:`generate` per
    pose.

    Live poses are smoothed by a 1 Euro filter (:class:`realtime.pose.filters.OneEuroFilter`; about 100 ms of
    lag at rest, under 10 ms on fast motion); offline callers smooth the whole sequence themselves
    (:func:`realtime.pose.filters.median_filter_poses` in :mod:`realtime.offline.retarget`).

    Robustness (both modes, :mod:`realtime.pose.tracking`, ``docs/robustness.md``): :meth:`track` keeps the
    tracked person, holds briefly missing joints and drops orphaned ones; :meth:`normalize` keeps the body on
    the canvas (:class:`realtime.pose.normalize.CanvasClamp`) and, when the person is lost, holds the last
    pose,
    then eases into the target's neutral pose, and blends back when the person returns, so the generator is
    never fed a blank stick figure mid-stream (before the first person, the stick figure is blank).

    Actions (issue 22, :mod:`realtime.model.actions`): :meth:`play_action` makes the target perform an action
    in place of the source's poses, then blend back; with ``actions.idle_action`` set, the target performs
    that action in a loop after ``actions.idle_after_s`` without a person (from the stream's start too), and
    blends into the person's pose when they are found again (``docs/robustness.md``, section 4).

    Poses come from the pose estimator the target was prepared with (``target.bundle.pose_estimator``, a
    name in :data:`realtime.catalog.POSE_ESTIMATORS`), one instance per retargeter (per stream).

    Args:
        target: the loaded target.
        live: streaming mode (see above).
        one_euro: live keypoint filter settings; None turns the filter off.
        tracking: pose-loss and continuity settings (None: :class:`realtime.pose.tracking.TrackingParams`'s
            defaults).
        actions: action settings (None: :class:`realtime.model.actions.ActionParams`'s defaults: no idle
            action; the artifact is loaded on the first :meth:`play_action`).

    Raises:
        realtime.catalog.UnknownPoseEstimatorError: (a ``ValueError``) if the target's pose estimator is not
            registered in this process.
        FileNotFoundError, realtime.model.actions.ActionError: for an idle action whose artifact is missing
            or bad, or an unknown idle label.
    """

    def __init__(
        self,
        target: Target,
        *,
        live: bool = True,
        one_euro: OneEuroParams | None = DEFAULT_ONE_EURO,
        tracking: TrackingParams | None = None,
        actions: ActionParams | None = None,
    ) -> None:
        self.target = target
        self.live = live
        bundle = target.bundle
        self._threshold = bundle.render.confidence_threshold
        self.normalizer = PoseNormalizer(bundle.stats, self._threshold)
        self.pose_estimator = bundle.pose_estimator
        if self.pose_estimator not in POSE_ESTIMATORS:  # fails here, not on the first frame
            raise UnknownPoseEstimatorError(
                f"target {bundle.name!r} ({target.path}) was prepared with pose estimator "
                f"{self.pose_estimator!r}, which this process does not know (known: "
                f"{', '.join(pose_estimator_names())}); register it with "
                "realtime.catalog.register_pose_estimator before building a Retargeter"
            )
        # Live streams build the estimator now (MediaPipe's graph: about a second), not on the first frame.
        self._estimator: PoseEstimator | None = self._open_estimator() if live else None
        width, height = target.canvas_size
        # The generator's state (its previous output) and the buffer its next output is written into; the
        # two swap after each temporal step, so no frame is copied.
        self._previous = torch.zeros((1, 3, height, width), dtype=torch.float32, device=target.device)
        self._next = torch.empty_like(self._previous)
        self._state_inputs = [s.name for s in bundle.generator_inputs.with_role(InputRole.STATE)]
        self._filter = OneEuroFilter(one_euro, self._threshold) if live and one_euro is not None else None
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=LIVE_STATS_WINDOW_FRAMES)
        self._since_fit = 0
        self._fitted_on = 0  # poses in the window at the last fit
        # Robustness (realtime.pose.tracking): source-side continuity on the estimate thread; canvas-side
        # clamp and pose hold on the generate thread.
        self.tracking = tracking or TrackingParams()
        self._tracker = SourceTracker(self.tracking, self._threshold)
        self._clamp = CanvasClamp(width, height, threshold=self._threshold)
        self._hold = PoseHold(neutral_pose(bundle.stats), self.tracking, self._threshold)
        # This stream's per-target values: the target's, or a copy with a garment recoloured.
        self._per_target: Mapping[str, torch.Tensor] = target.per_target
        self._garment_colours: dict[str, tuple[float, float, float]] = {}
        # Actions (realtime.model.actions): the artifact is loaded when first needed (shared by all streams).
        self.action_params = actions or ActionParams()
        self._target_actions: TargetActions | None = None
        self._action_seed = 0
        p = self.action_params
        idle = None
        if p.idle_action is not None:
            idle = self.target_actions.clip(p.idle_action, p.idle_loop_s, seed=0, loop=True)
        self._player = ActionPlayer(idle, 1e3 * p.idle_after_s, 1e3 * p.blend_s, self._threshold)

    # -- actions --------------------------------------------------------------------------------------
    @property
    def target_actions(self) -> TargetActions:
        """The action model mapped onto this stream's target (loaded on first use).

        Raises:
            FileNotFoundError, realtime.model.actions.ActionError: for a missing or bad artifact.
        """
        if self._target_actions is None:
            model = load_action_model(self.action_params.artifact)
            self._target_actions = TargetActions(model, self.target.bundle.stats, self.target.canvas_size)
        return self._target_actions

    @property
    def action_labels(self) -> tuple[str, ...]:
        """The actions :meth:`play_action` accepts (from the artifact's sidecar; () without an artifact)."""
        if self._target_actions is not None:
            return self._target_actions.labels
        return read_action_labels(self.action_params.artifact)

    @property
    def playing_action(self) -> str | None:
        """The action the target performs now (the idle one included), or None."""
        return self._player.playing

    def play_action(self, label: str, seconds: float, seed: int | None = None) -> float:
        """Make the target perform ``label`` for ``seconds`` from the next frame on: its poses replace the
        source's (blending in over ``actions.blend_s``), then the stream's pose comes back (blending too).
        Generates and maps the sequence here (a few milliseconds; the first call loads the artifact, about
        50 ms): call it off the event loop. Thread-safe with :meth:`generate`.

        Args:
            label: one of :attr:`action_labels`.
            seconds: duration, > 0 (at least two frames of the artifact's frame rate).
            seed: the noise seed; None: a new one per call (each press differs).

        Returns:
            the duration played in seconds (whole frames).

        Raises:
            realtime.model.actions.ActionError: (a ``ValueError``) for an unknown label or a bad duration.
            FileNotFoundError: if the artifact is missing.
        """
        if seed is None:
            seed, self._action_seed = self._action_seed, self._action_seed + 1
        clip = self.target_actions.clip(label, seconds, seed=seed)
        self._player.play(clip)
        return clip.duration_ms / 1e3

    @property
    def has_appearance(self) -> bool:
        """Whether the target carries a reference appearance (its generator takes the appearance prior), so
        that :meth:`set_garment_colour` applies."""
        return has_reference_appearance(self.target.per_target)

    @property
    def garment_colours(self) -> dict[str, tuple[float, float, float]]:
        """The garment colours this stream asked for, RGB in [0, 1] by garment (``"upper"``, ``"lower"``)."""
        return dict(self._garment_colours)

    def set_garment_colour(self, garment: str, rgb: Sequence[float] | None) -> None:
        """Recolour a garment of this stream's target (Yang et al.'s colour control), from the next frame on.

        The colour is applied to the target's reference appearance
        (:func:`realtime.model.appearance.recolor_garment`), so the appearance prior, and the generated person
        with it, follow; other streams of the same target are not affected. Takes tens of milliseconds: call
        it off the event loop.

        Args:
            garment: ``"upper"`` or ``"lower"`` (:data:`realtime.model.appearance.GARMENT_PARTS`).
            rgb: three values in [0, 1], or None to restore the recorded colour.

        Raises:
            ValueError: for a target without a reference appearance, an unknown garment or a bad colour.
        """
        if not self.has_appearance:
            raise ValueError(
                f"target {self.target.name!r} has no reference appearance (its generator does not take the "
                "appearance prior), so its garment colour cannot change; train it with "
                "generator.extra_inputs=[appearance_prior]"
            )
        if garment not in GARMENT_PARTS:
            raise ValueError(f"garment must be one of {sorted(GARMENT_PARTS)}, got {garment!r}")
        colours = dict(self._garment_colours)
        if rgb is None:
            colours.pop(garment, None)
        else:
            colour = tuple(float(v) for v in rgb)
            if len(colour) != 3 or not all(0.0 <= v <= 1.0 for v in colour):
                raise ValueError(f"rgb must be three values in [0, 1], got {rgb!r}")
            colours[garment] = colour
        images = self.target.per_target[REFERENCE_IMAGES.name][0]
        keypoints = self.target.per_target[REFERENCE_KEYPOINTS.name][0]
        for name, colour in colours.items():
            images = recolor_garment(images, keypoints, name, colour)
        per_target = dict(self.target.per_target)
        per_target[REFERENCE_IMAGES.name] = images[None]
        self._per_target, self._garment_colours = (
            per_target,
            colours,
        )  # one assignment: the next frame sees it

    # -- stages ---------------------------------------------------------------------------------------
    def estimate(self, rgb: np.ndarray, timestamp_ms: float) -> PoseFrame:
        """Pose of the tracked person in a uint8 ``(H, W, 3)`` RGB frame: the target's pose estimator through
        :meth:`track` (all confidences 0 when nobody, or somebody else, is there); a live stream also updates
        its source statistics with it.

        Raises:
            ValueError: for a frame that is not uint8 ``(H, W, 3)``.
        """
        if self._estimator is None:
            self._estimator = self._open_estimator()
        return self.track(self._estimator.estimate(rgb, timestamp_ms))

    def _open_estimator(self) -> PoseEstimator:
        """The target's pose estimator (:func:`realtime.pose.estimators.open_pose_estimator`), tracking."""
        return open_pose_estimator(self.pose_estimator, video_mode=True)

    def track(self, estimated: PoseFrame) -> PoseFrame:
        """The stream's next estimated pose (source pixels, frames in time order) -> the pose to drive with.

        Person continuity and single-joint hold (:class:`realtime.pose.tracking.SourceTracker`: a pose of
        somebody else, or a wild jump, comes out with all confidences 0; a joint missing for a moment is
        held at its offset from its parent; a joint without its parent is dropped), then live the 1 Euro
        filter and the update of the source's statistics. :meth:`estimate` calls it; call it directly to
        drive a stream with poses estimated elsewhere.
        """
        joints, confidence = self._tracker.update(
            estimated.joints_px, estimated.confidence, estimated.timestamp_ms
        )
        pose = PoseFrame(joints, confidence, estimated.timestamp_ms, estimated.image_size, estimated.mask)
        if self._filter is not None and not pose.is_empty:
            smoothed = self._filter(joints, confidence, pose.timestamp_ms, scale_px=pose.image_size[1])
            pose = PoseFrame(smoothed, confidence, pose.timestamp_ms, pose.image_size, pose.mask)
        if self.live:
            self._update_live_fit(pose)
        return pose

    def fit_source(self, joints_px: np.ndarray, confidence: np.ndarray) -> None:
        """Fit the source's normalization statistics on poses ``(N, J, 2)``, ``(N, J)`` (offline use).

        Raises:
            ValueError: if no pose shows a body.
        """
        stats = self.normalizer.fit(joints_px, confidence)
        log.info("source statistics: %s", stats)

    def _update_live_fit(self, pose: PoseFrame) -> None:
        if pose.is_empty:
            return
        self._history.append((pose.joints_px, pose.confidence))
        self._since_fit += 1
        # Refit each time the window has doubled (after 1, 2, 4, ... poses), then every
        # LIVE_REFIT_EVERY_FRAMES: a fit on the first pose or two alone, kept for 2 s, could give the whole
        # start of a stream a stretched neck or limb (seen live on the first, blurry WebRTC frames).
        if self.normalizer.is_fitted and self._since_fit < min(LIVE_REFIT_EVERY_FRAMES, self._fitted_on):
            return
        joints = np.stack([h[0] for h in self._history])
        conf = np.stack([h[1] for h in self._history])
        try:
            self.normalizer.fit(joints, conf)
            self._since_fit = 0
            self._fitted_on = len(self._history)
        except ValueError:
            pass  # no usable body yet; keep the previous fit (or none) and try again on the next frame

    def normalize(self, pose: PoseFrame) -> PoseFrame:
        """Map a source pose onto the target canvas (bone lengths, global normalization, then
        :class:`realtime.pose.normalize.CanvasClamp`).

        A pose without any joint at the confidence threshold (the person is lost), or any pose before the
        normalizer is fitted, counts as lost: :class:`realtime.pose.tracking.PoseHold` then gives the last
        pose shown, easing into the target's neutral pose, and blends back into the live poses when they
        return. An action played (:meth:`play_action`) or the idle action then replaces that pose, blended in
        and out (:class:`realtime.model.actions.ActionPlayer`). Only before the first normalized pose of the
        stream (and with no action shown) is the result empty. Call once per frame, in time order (the hold,
        the clamp and the actions keep state, timed by ``pose.timestamp_ms``).
        """
        width, height = self.target.canvas_size
        live = None
        if bool((pose.confidence >= self._threshold).any()) and self.normalizer.is_fitted:
            joints = self.normalizer.normalize(pose.joints_px, pose.confidence)
            joints = self._clamp(joints, pose.confidence, pose.timestamp_ms)
            live = (joints, pose.confidence.copy())
        shown = self._hold.update(live, pose.timestamp_ms)
        shown = self._player.update(shown, live is not None, pose.timestamp_ms)
        if shown is None:
            return PoseFrame.empty(pose.timestamp_ms, (width, height))
        return PoseFrame(shown[0], shown[1], pose.timestamp_ms, (width, height))

    def render(self, normalized: PoseFrame) -> FrameContext:
        """The stick figure of a canvas pose, with the pose and the target's per-target inputs, as a producer
        context (:mod:`realtime.model.inputs`):
        float32 ``(1, 3, H, W)`` in [0, 1] on the target's device."""
        width, height = self.target.canvas_size
        device = self.target.device
        joints = torch.from_numpy(np.ascontiguousarray(normalized.joints_px[None], np.float32)).to(device)
        confidence = torch.from_numpy(np.ascontiguousarray(normalized.confidence[None], np.float32)).to(
            device
        )
        stick = rasterize_stick_figure(
            joints, confidence, height=height, width=width, params=self.target.bundle.render
        )
        return FrameContext(joints, confidence, stick, self._per_target)

    def generate(self, pose: PoseFrame, timings_ms: dict[str, float] | None = None) -> RetargetResult:
        """Normalize, draw and generate one frame from a source pose (updates the previous frame)."""
        timings_ms = {} if timings_ms is None else timings_ms
        t0 = time.perf_counter()
        normalized = self.normalize(pose)
        t1 = time.perf_counter()
        context = self.render(normalized)
        stick = context.stick_figure
        t2 = time.perf_counter()
        inputs = assemble_inputs(self.target.bundle.generator_inputs, context, self._previous)
        generated = self.target.generate(inputs, out=self._next)
        t3 = time.perf_counter()
        if self._state_inputs:
            self._previous, self._next = generated, self._previous
        timings_ms.update(normalize=1e3 * (t1 - t0), rasterize=1e3 * (t2 - t1), generate=1e3 * (t3 - t2))
        # --- Face residual (Everybody Dance Now, Sec. 3.3): refines only the face crop of the output; the
        # generator keeps conditioning on its own output above, as in training. ---
        if self.target.face is not None:
            generated = self.target.face.apply(stick, generated, normalized.joints_px, normalized.confidence)
            timings_ms["face"] = 1e3 * (time.perf_counter() - t3)
        # --- end of the face residual ---
        if stick.device.type == "cpu":
            # Each converted on its own (no joined copy of the two first).
            stick_u8, generated_u8 = to_uint8_hwc(stick[0]), to_uint8_hwc(generated[0])
        else:
            # One download per frame: stick figure | generated side by side on the device, then views.
            both = to_uint8_hwc(torch.cat([stick[0], generated[0]], dim=2))
            width = stick.shape[-1]
            stick_u8, generated_u8 = both[:, :width], both[:, width:]
        return RetargetResult(
            generated=generated_u8,
            stick_figure=stick_u8,
            pose=pose,
            normalized=normalized,
            timings_ms=timings_ms,
        )

    def process(self, rgb: np.ndarray, timestamp_ms: float) -> RetargetResult:
        """All stages for one camera frame (uint8 ``(H, W, 3)`` RGB).

        Raises:
            ValueError: for a frame that is not uint8 ``(H, W, 3)``.
        """
        t0 = time.perf_counter()
        pose = self.estimate(rgb, timestamp_ms)
        timings = {"pose": 1e3 * (time.perf_counter() - t0)}
        return self.generate(pose, timings)

    def reset(self) -> None:
        """Forget the previous generated frame (the next frame starts from zeros, as at a stream's start)."""
        self._previous.zero_()

    def close(self) -> None:
        """Release the pose tracker. Idempotent."""
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
