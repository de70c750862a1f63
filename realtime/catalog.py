"""Light facts, stated once: what a fast ``--help`` shows (defaults, choices, file suffixes) and what the
heavy modules use, in a module that imports nothing, so that ``server.py --help``, ``python -m export --help``
and the others answer without loading aiortc, PyAV, NumPy or PyTorch. The heavy modules import these names; no
copy of them is kept anywhere else.

- The live server's default limits (:mod:`realtime.serving.signaling`, :mod:`realtime.serving.stream`).
- The engine table: file suffix -> the inference backend that opens it (:data:`BACKENDS`, resolved by
  :func:`realtime.model.backends.open_backend` on first use), and :data:`ENGINE_SUFFIXES`.
- The export tools' tolerances and TensorRT build defaults (:mod:`export.onnx`, :mod:`export.tensorrt`).
"""

DEFAULT_MAX_SESSIONS = 4
"""Sessions served at once by default; the next client is told the server is full."""

DEFAULT_POSE_THREADS = 2
"""Pose estimation threads by default: MediaPipe runs one frame on one core, so two streams' poses can be
estimated at once on two cores (measured: 31 frames/s on one thread, 46 on two, on the 2-core machine)."""

PLAYOUT_DELAYS = ("zero", "browser")
"""``server.py --playout-delay`` choices, the default first: ``zero`` sends the generated video with the RTP
playout-delay extension at 0 (:func:`realtime.serving.aiortc_patch.use_zero_playout_delay`), ``browser``
leaves the
delay to the browser's jitter buffer."""

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
