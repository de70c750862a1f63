"""Light facts, stated once: what a fast ``--help`` shows (defaults, choices, file suffixes) and what the
heavy modules use, in a module that imports only the standard library, so that ``server.py --help``,
``python -m export --help`` and the others answer without loading aiortc, PyAV, NumPy or PyTorch. The heavy
modules import these names; no copy of them is kept anywhere else.

- The live server's default limits (:mod:`realtime.serving.signaling`, :mod:`realtime.serving.workers`).
- The engine table: file suffix -> the inference backend that opens it (:data:`BACKENDS`, resolved by
  :func:`realtime.model.backends.open_backend` on first use), and :data:`ENGINE_SUFFIXES`.
- The export tools' tolerances and TensorRT build defaults (:mod:`export.onnx`, :mod:`export.tensorrt`).
- The table of pose estimators (:data:`POSE_ESTIMATORS`, built by
  :func:`realtime.pose.estimators.open_pose_estimator`).
- The canvas that ``train.prepare`` chooses: its pixel budget and the multiple its sides are rounded to
  (:data:`DEFAULT_CANVAS_PIXELS`, :data:`CANVAS_MULTIPLE_PX`), which the generators' size checks name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_SESSIONS = 4
"""Sessions served at once by default; the next client is told the server is full."""

DEFAULT_POSE_THREADS = 2
"""Pose estimation threads by default: MediaPipe runs one frame on one core, so two streams' poses can be
estimated at once on two cores (measured: 31 frames/s on one thread, 46 on two, on the 2-core machine)."""

DEFAULT_SESSION_STARTS_PER_MINUTE = 20
"""Session starts (the page's, WHIP's, WHEP viewers') one client address may make a minute by default;
loopback addresses are exempt (:class:`realtime.serving.access.StartLimiter`)."""

DEFAULT_MAX_VIEWERS = 8
"""WHEP viewers of one session at once by default (each costs the server a video encoder)."""

VIRTUAL_CAMERA_SIZE = (1280, 720)
"""``server.py --virtual-camera-size`` default, (width, height) in pixels: what video-call apps expect."""

VIRTUAL_CAMERA_FPS = 30.0
"""``server.py --virtual-camera-fps`` default, frames per second announced to the device."""

PLAYOUT_DELAYS = ("zero", "browser")
"""``server.py --playout-delay`` choices, the default first: ``zero`` sends the generated video with the RTP
playout-delay extension at 0 (:func:`realtime.serving.aiortc_patch.use_zero_playout_delay`), ``browser``
leaves the delay to the browser's jitter buffer."""


# -- canvas --------------------------------------------------------------------------------------------------
DEFAULT_CANVAS_PIXELS = 256 * 256
"""The canvas's pixel budget that ``python -m train prepare`` fits the target's framing into by default
(``--pixels``): the canvas takes the aspect of the crop that holds the person, with about this many pixels
(the 256x256 canvas of the configurations in ``train/configs``, whose speed and memory figures it keeps)."""

CANVAS_MULTIPLE_PX = 32
"""Both sides of a canvas that ``python -m train prepare`` chooses are multiples of this many pixels: the
pix2pixHD global generator and the light mobile generator with ``n_downsample`` stride-2 layers need multiples
of ``2**n_downsample`` (16 with the 4 of every configuration in ``train/configs``), and a global stage trained
at half the canvas before pix2pixHD's local enhancer needs twice that (32). A generator's own requirement is
its ``size_multiple_px`` (:mod:`realtime.model.nets`), checked on every call; face crops are sized apart
(:func:`realtime.model.face.face_crop_size_px`). ``--size WxH`` forces a canvas that need not follow it."""


# -- pose estimators ----------------------------------------------------------------------------------------


class UnknownPoseEstimatorError(ValueError):
    """A pose estimator name that is not in :data:`POSE_ESTIMATORS` (in this process)."""


@dataclass(frozen=True)
class PoseEstimatorEntry:
    """One pose estimator of the table: where its implementation lives and the options it is built with
    (FasterLivePortrait's ``get_predictor``: every stage model a named entry, built by name).

    Attributes:
        implementation: ``"module:attribute"`` of a :class:`realtime.pose.estimators.PoseEstimator` subclass,
            imported on first use (so the table stays light). It is called as
            ``implementation(video_mode=..., with_mask=..., **options)``.
        options: keyword arguments for the implementation, e.g. MediaPipe's ``min_detection_confidence``
            (JSON-like values only: the entry is data, not code). Do not mutate it.
        gives_mask: whether the implementation can return a person segmentation mask
            (:attr:`realtime.pose.estimators.PoseFrame.mask`), so that ``train.prepare --mask-source`` can
            offer it.
        description: one line for ``--help`` and error messages.
    """

    implementation: str
    options: dict[str, float | int | str | bool] = field(default_factory=dict)
    gives_mask: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        module, _, attribute = self.implementation.partition(":")
        if not module or not attribute:
            raise ValueError(
                f"a pose estimator's implementation is 'module:attribute', got {self.implementation!r}"
            )


DEFAULT_POSE_ESTIMATOR = "mediapipe"
"""The pose estimator of targets and prepared data that name none (everything written before the field)."""

POSE_ESTIMATORS: dict[str, PoseEstimatorEntry] = {
    "mediapipe": PoseEstimatorEntry(
        implementation="realtime.pose.estimators:MediaPipePose",
        options={"model_complexity": 1, "min_detection_confidence": 0.5, "min_tracking_confidence": 0.5},
        gives_mask=True,
        description="MediaPipe Pose (BlazePose full, the model bundled in mediapipe 0.10.21)",
    ),
}
"""Pose estimator name -> :class:`PoseEstimatorEntry`: the one place a pose estimator is chosen. A target
records its estimator's name (``pose_estimator`` in its prepared data's ``meta.json`` and in its sidecar) and
everything that estimates its poses (``train.prepare``, the live and offline pipeline, the evaluation) builds
that entry. Add an entry with :func:`register_pose_estimator`, or one line here for a built-in one."""

MASK_SOURCE_NONE = "none"
"""``train.prepare --mask-source`` for no segmentation: all-zero masks."""


def register_pose_estimator(name: str, entry: PoseEstimatorEntry, *, replace: bool = False) -> None:
    """Add a pose estimator to :data:`POSE_ESTIMATORS` (tests and plug-ins; a built-in one is a line there).

    Register it before anything looks the name up: in a plug-in's import, or before ``Target.load``. A
    process that reads a target or prepared data naming an estimator must have registered it too.

    Args:
        name: the name targets record; letters, digits, ``-``, ``_`` and ``.``; not ``"none"``.
        entry: the implementation and its options.
        replace: allow replacing an existing entry of that name (never silently).

    Raises:
        ValueError: for an empty or malformed name, or a name already in the table without ``replace``.
        TypeError: if ``entry`` is not a :class:`PoseEstimatorEntry`.
    """
    if not isinstance(entry, PoseEstimatorEntry):
        raise TypeError(f"register_pose_estimator expects a PoseEstimatorEntry, got {type(entry).__name__}")
    if not name or name == MASK_SOURCE_NONE or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(
            f"pose estimator name {name!r}: use letters, digits, '-', '_' and '.' "
            f"(and not {MASK_SOURCE_NONE!r})"
        )
    if name in POSE_ESTIMATORS and not replace:
        raise ValueError(
            f"pose estimator {name!r} is already registered ({POSE_ESTIMATORS[name].implementation}); "
            "choose another name, or pass replace=True to replace it"
        )
    POSE_ESTIMATORS[name] = entry


def pose_estimator_entry(name: str) -> PoseEstimatorEntry:
    """The table's entry for ``name``.

    Raises:
        UnknownPoseEstimatorError: (a ``ValueError``) for a name not in :data:`POSE_ESTIMATORS`, listing the
            known ones.
    """
    try:
        return POSE_ESTIMATORS[name]
    except KeyError:
        raise UnknownPoseEstimatorError(
            f"unknown pose estimator {name!r}; known: {', '.join(sorted(POSE_ESTIMATORS))} "
            "(a plug-in's estimator must be registered with realtime.catalog.register_pose_estimator first)"
        ) from None


def pose_estimator_names() -> tuple[str, ...]:
    """The names in :data:`POSE_ESTIMATORS`, the default first (``--pose-estimator`` choices)."""
    return (DEFAULT_POSE_ESTIMATOR, *sorted(n for n in POSE_ESTIMATORS if n != DEFAULT_POSE_ESTIMATOR))


def mask_source_names() -> tuple[str, ...]:
    """``train.prepare --mask-source`` choices: the pose estimators that give a mask (the default first),
    then :data:`MASK_SOURCE_NONE`."""
    return (*(n for n in pose_estimator_names() if POSE_ESTIMATORS[n].gives_mask), MASK_SOURCE_NONE)


# -- engines -------------------------------------------------------------------------------------------------
TENSORRT_SUFFIX = ".plan"
"""A TensorRT engine (``python -m export tensorrt``), GPU only."""
ONNX_SUFFIX = ".onnx"
"""An ONNX graph (``python -m export onnx``), run by ONNX Runtime."""
TORCH_SUFFIX = ".pt"
"""PyTorch inference weights (architecture spec + state dict, :func:`realtime.model.nets.save_weights`)."""

BACKENDS: dict[str, str] = {
    TENSORRT_SUFFIX: "realtime.model.tensorrt_backend:TensorRTBackend",
    ONNX_SUFFIX: "realtime.model.backends:OnnxRuntimeBackend",
    TORCH_SUFFIX: "realtime.model.backends:TorchBackend",
}
"""Engine file suffix -> ``"module:factory"`` of the :class:`realtime.model.backends.InferenceBackend` that
opens it (the factory is called as ``factory(path, **options)``): the one place a backend is chosen, for
generators and face models alike. Strings, so that this module stays light; the module is imported when the
first engine of that suffix is opened (TensorRT stays an optional extra). The order is the order of
preference where one stem has several engines (the fastest first). A new backend is its class plus one line
here."""

ENGINE_SUFFIXES: tuple[str, ...] = tuple(BACKENDS)
"""The engine file suffixes, in :data:`BACKENDS`'s order of preference."""

# -- export --------------------------------------------------------------------------------------------------
ONNX_VS_TORCH_ATOL = 1e-4
"""Largest allowed absolute difference between ONNX Runtime and PyTorch outputs (values in [0, 1]), fp32
(``python -m export onnx --atol``)."""

TENSORRT_VS_ONNXRUNTIME_ATOL: dict[str, float] = {"fp16": 3e-2, "fp32": 5e-3}
"""Largest allowed absolute difference between a TensorRT engine and ONNX Runtime on the fp32 graph, by the
engine's precision (TensorRT picks its own convolution algorithms, TF32 included on Ampere and later). Its
keys are the precisions ``python -m export tensorrt --precision`` takes, the default first."""

TENSORRT_PRECISIONS: tuple[str, ...] = tuple(TENSORRT_VS_ONNXRUNTIME_ATOL)
"""``--precision`` choices of ``python -m export tensorrt``, the default (fp16) first."""

DEFAULT_TENSORRT_MAX_BATCH = 4
"""Largest batch of a TensorRT engine's optimization profile by default (the live server runs batch 1)."""

TENSORRT_TIMING_CACHE_NAME = "tensorrt.timing-cache"
"""The TensorRT timing cache's file name, beside the engine by default."""

# -- the appearance prior's garment colour -----------------------------------------------------------------

#: The garments whose colour a user may change (Yang et al.'s colour control), each as the body parts
#: (:data:`realtime.pose.skeleton.BODY_PARTS` names) it covers on the reference appearance; a dress's skirt
#: falls under the upper legs. The offline tool's ``--GARMENT-colour`` options and the page's controls follow.
GARMENTS: dict[str, tuple[str, ...]] = {
    "upper": ("torso", "right_upper_arm", "left_upper_arm"),
    "lower": ("right_upper_leg", "left_upper_leg"),
}

#: Which of a target bundle's models to run (:meth:`realtime.model.pipeline.Target.load`): "auto" runs the
#: real-time student where the generator runs on the CPU and the teacher on a GPU; "teacher" or "student"
#: force one. A bundle without a student runs its one model whatever is asked, except "student".
#: The action a live stream's target performs while nobody is in frame, unless ``server.py --idle-action``
#: says otherwise (a label of the action artifact, :mod:`realtime.model.actions`).
DEFAULT_IDLE_ACTION = "idle_sway"
#: Seconds with nobody found before the idle action starts, by default (``server.py --idle-after``).
DEFAULT_IDLE_AFTER_S = 5.0

MODEL_CHOICES = ("auto", "teacher", "student")
#: The ``--model`` option's help, the same in every command that runs a target.
MODEL_HELP = (
    "which of the target's models to run when its bundle holds a teacher and its real-time student (train "
    "fit's default): auto = the student on a CPU, the teacher on a GPU (default: %(default)s)"
)
