"""TensorRT engines (``NAME.plan``) at run time: :class:`TensorRTBackend`, written to the TensorRT 10/11
Python API (tensor names, ``set_tensor_address`` + ``execute_async_v3`` on a stream of its own, joined to
PyTorch's current stream by events).

TensorRT is an optional extra (``pip install 'dance-live[gpu]'``): it is imported only when a ``.plan`` is
opened (:func:`import_tensorrt`), and its absence is a :class:`realtime.model.backends.BackendError` that says
what to install; nothing else in the project imports it.

A plan is tied to the GPU model and the exact TensorRT version that built it. ``python -m export tensorrt``
records both (and the precision) in the target's sidecar ``versions`` (:data:`PLAN_RECORD_KEYS`); opening a
plan checks that record first (:func:`check_plan_record`) and, on a mismatch, says how to rebuild it rather
than leaving TensorRT to fail deserialization with a bare log line.

API followed (NVIDIA TensorRT Python API reference and samples):

- Runtime / engine / context: https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Runtime.html
  (``Runtime.deserialize_cuda_engine``), ``.../Core/Engine.html`` (``num_io_tensors``, ``get_tensor_name``,
  ``get_tensor_mode``, ``get_tensor_dtype``, ``get_tensor_shape``), ``.../Core/ExecutionContext.html``
  (``set_input_shape``, ``set_tensor_address`` with 256-byte-aligned addresses,
  ``execute_async_v3(stream_handle)`` on a stream other than the legacy default stream, which costs extra
  device synchronizations).
- Name-based I/O replacing bindings (TensorRT 10):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-reference.html
- TensorRT 11 (weak typing and ``ICudaEngine.device_memory_size`` removed, none used here):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
- NVIDIA/TensorRT ``samples/python/common_runtime.py``: buffers from the engine's I/O tensor names, one
  ``set_tensor_address`` per tensor, one ``execute_async_v3`` on a stream.
- CUDA graphs with TensorRT: capture ``execute_async_v3`` after one ordinary run ("call enqueue once before
  capture to flush deferred updates"), TensorRT developer guide, "CUDA Graphs"; one execution context per
  captured shape, as ``trtexec --useCudaGraph`` does; PyTorch's ``torch.cuda.graph(...,
  capture_error_mode="thread_local")`` so that other threads' CUDA calls do not break a capture.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from realtime.model.backends import BackendError, InferenceBackend, resolve_device

log = logging.getLogger(__name__)

#: What to install for the TensorRT path.
INSTALL_HINT = "pip install 'dance-live[gpu]'"
#: Keys of a plan's build record in the sidecar's ``versions``.
PLAN_RECORD_KEYS = ("tensorrt", "tensorrt_gpu", "tensorrt_compute_capability", "tensorrt_precision")


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module.

    Raises:
        BackendError: if it is not installed (the message says what to install and what runs without it).
    """
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendError(
            f"TensorRT is not installed ({exc}); install the GPU extra on a machine with an NVIDIA GPU: "
            f"{INSTALL_HINT}, or run the target's .onnx (ONNX Runtime) or .pt (PyTorch) engine instead"
        ) from exc


def rebuild_hint(plan: str | os.PathLike[str]) -> str:
    """The command that rebuilds ``plan`` from its ONNX file on this machine."""
    plan = Path(plan)
    onnx = plan.with_name(plan.name.replace(".face.plan", ".plan")).with_suffix(".onnx")
    return f"rebuild it on this machine: python -m export tensorrt {onnx} {onnx.with_suffix('.plan')}"


def sidecar_of_plan(plan: str | os.PathLike[str]) -> Path:
    """The sidecar holding a plan's build record: ``NAME.json`` for ``NAME.plan`` and ``NAME.face.plan``."""
    plan = Path(plan)
    name = plan.name
    stem = name[: -len(".face.plan")] if name.endswith(".face.plan") else plan.stem
    return plan.with_name(stem + ".json")


def read_plan_record(plan: str | os.PathLike[str]) -> dict[str, str]:
    """The build record (:data:`PLAN_RECORD_KEYS`) of a plan from its sidecar.

    Raises:
        BackendError: if the sidecar is missing, unreadable, or has no TensorRT build record.
    """
    sidecar = sidecar_of_plan(plan)
    try:
        versions = json.loads(sidecar.read_text()).get("versions", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        hint = rebuild_hint(plan)
        raise BackendError(f"{plan}: cannot read its sidecar {sidecar} ({exc}); {hint}") from exc
    missing = [key for key in PLAN_RECORD_KEYS if key not in versions]
    if missing:
        raise BackendError(
            f"{plan}: the sidecar {sidecar} has no TensorRT build record (missing {missing}); "
            f"{rebuild_hint(plan)}"
        )
    return {key: str(versions[key]) for key in PLAN_RECORD_KEYS}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.13.2.6"`` -> ``(10, 13, 2, 6)``; parts after the first non-numeric one are dropped.

    Raises:
        ValueError: if the version does not start with a number.
    """
    parts = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(part):
            break
    if not parts:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(parts)


def check_plan_record(
    record: Mapping[str, str],
    plan: str | os.PathLike[str],
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
) -> None:
    """Check that a plan was built by this TensorRT version for this GPU.

    A serialized engine only loads in the TensorRT version that built it, and its kernels were chosen for one
    GPU model (compute capability and timing).

    Raises:
        BackendError: on a different TensorRT version (compared as numbers), GPU model or compute capability,
            saying to rebuild and how.
    """
    problems = []
    if version_tuple(record["tensorrt"]) != version_tuple(tensorrt_version):
        problems.append(f"TensorRT {record['tensorrt']} (this machine has {tensorrt_version})")
    built_cc = record["tensorrt_compute_capability"]
    here_cc = f"{compute_capability[0]}.{compute_capability[1]}"
    if record["tensorrt_gpu"] != gpu_name or built_cc != here_cc:
        problems.append(
            f"the GPU {record['tensorrt_gpu']} (compute capability {built_cc}; this machine has {gpu_name}, "
            f"compute capability {here_cc})"
        )
    if problems:
        raise BackendError(f"{plan} was built for {' and '.join(problems)}; {rebuild_hint(plan)}")


def cuda_device_info(device: torch.device) -> tuple[str, tuple[int, int]]:
    """Name and compute capability of a CUDA device.

    Raises:
        BackendError: if ``device`` is not a usable CUDA device.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        raise BackendError(
            f"TensorRT engines run on a CUDA device; got {device} (CUDA: {torch.cuda.is_available()}); "
            "run the target's .onnx or .pt on this machine"
        )
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), (int(major), int(minor))


#: Byte alignment of every address given to ``IExecutionContext.set_tensor_address`` (TensorRT's I/O tensors
#: must be 256-byte aligned; PyTorch's CUDA allocator gives that, but an offset view of a tensor does not).
ALIGNMENT_BYTES = 256


def is_aligned(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s first element lies on an :data:`ALIGNMENT_BYTES` boundary."""
    return tensor.data_ptr() % ALIGNMENT_BYTES == 0


def aligned_empty(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialized contiguous float32 tensor whose address is :data:`ALIGNMENT_BYTES`-aligned, on any
    device (a view into a slightly larger allocation)."""
    count = 1
    for size in shape:
        count *= int(size)
    slack = ALIGNMENT_BYTES // 4
    raw = torch.empty(count + slack, dtype=torch.float32, device=device)
    offset = (-raw.data_ptr() % ALIGNMENT_BYTES) // 4
    return raw[offset : offset + count].view(shape)


class TorchCuda:
    """The CUDA stream and graph calls of :class:`TensorRTBackend`, in one place so that tests on machines
    without CUDA replace them (``tests/fake_tensorrt.py``'s ``FakeCuda``).

    Follows PyTorch's "CUDA semantics" notes (streams, ``wait_stream``, "CUDA Graphs"): ``wait_stream``
    records an event on the other stream and makes this one wait for it, without blocking the host.
    """

    def new_stream(self, device: torch.device) -> Any:
        """A new (non-default) stream on ``device``: ``torch.cuda.Stream``."""
        return torch.cuda.Stream(device)

    def current_stream(self, device: torch.device) -> Any:
        """PyTorch's current stream on ``device``."""
        return torch.cuda.current_stream(device)

    def use_stream(self, stream: Any) -> Any:
        """A context manager making ``stream`` PyTorch's current one."""
        return torch.cuda.stream(stream)

    def new_graph(self) -> Any:
        """An empty ``torch.cuda.CUDAGraph``."""
        return torch.cuda.CUDAGraph()

    def capture(self, graph: Any, stream: Any) -> Any:
        """A context manager capturing the work issued on ``stream`` into ``graph``. The capture mode is
        ``"thread_local"``: a CUDA call that another thread of the server makes meanwhile (a pose stage,
        a second stream's upload) neither breaks the capture nor is refused."""
        return torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local")


#: The CUDA calls the backends make (replaced by tests).
CUDA_API = TorchCuda()


class TensorRTBackend(InferenceBackend):
    """A deserialized TensorRT engine run on PyTorch CUDA tensors, generator and face model alike.

    Inputs and outputs are float32 ``(B, C, H, W)`` CUDA tensors (export keeps the engine's I/O in fp32 and
    casts inside the graph); their memory is bound with ``set_tensor_address`` (an address that is not
    :data:`ALIGNMENT_BYTES`-aligned, e.g. an offset view, goes through an aligned copy) and the engine is
    enqueued with ``execute_async_v3`` on a stream of its own, never on the legacy default stream (on which
    TensorRT documents extra device synchronizations): that stream first waits for PyTorch's current stream
    and PyTorch's current stream then waits for it (events, ``wait_stream``), so the engine is ordered with
    the rasterizer before it and the compositing after it without a host synchronization. Batch sizes within
    the engine's optimization profile (1..N at the canvas, :mod:`export.tensorrt`) are accepted.

    With ``cuda_graph=True``, each input shape gets its own execution context (as ``trtexec`` does: a captured
    graph keeps the shapes and addresses bound on its context at capture time) with static, aligned input and
    output buffers: the first run of a shape enqueues the engine once on that context (TensorRT's warm-up
    before capture), then captures one ``execute_async_v3`` into a ``torch.cuda.CUDAGraph`` in the
    ``"thread_local"`` capture mode; later runs copy the inputs in, replay, and copy the outputs out (two
    device copies in exchange for one graph launch instead of one launch per kernel).

    Runs are serialized by a lock, so one backend serves all threads.

    Args:
        path: the ``.plan`` file, with its sidecar's build record (:func:`read_plan_record`).
        device: the CUDA device ("cuda" is PyTorch's current one).
        cuda_graph: capture and replay CUDA graphs (see above).
        build_record: the plan's build record; None reads it from the sidecar (export passes it before
            writing the sidecar).
        trt: the ``tensorrt`` module (tests pass a stand-in); imported when None.

    Raises:
        BackendError: without TensorRT or CUDA, for a plan built by another TensorRT version or for another
            GPU (with the rebuild command), a plan TensorRT cannot deserialize, or I/O that is not float32.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | torch.device = "cuda",
        cuda_graph: bool = False,
        build_record: Mapping[str, str] | None = None,
        trt: Any = None,
    ) -> None:
        super().__init__()
        trt = import_tensorrt() if trt is None else trt
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"engine file not found: {path}")
        gpu_name, capability = cuda_device_info(torch.device(device))
        self.device = resolve_device(device)
        record = read_plan_record(path) if build_record is None else build_record
        check_plan_record(
            record, path, tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability
        )
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            hint = rebuild_hint(path)
            raise BackendError(f"TensorRT could not deserialize {path} (see its log above); {hint}")
        self._engine = engine
        self._path = path
        inputs: list[str] = []
        outputs: list[str] = []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise BackendError(
                    f"{path}: I/O tensor {name!r} is {engine.get_tensor_dtype(name)}, this backend binds "
                    f"float32 tensors; {rebuild_hint(path)}"
                )
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
        self.input_names, self.output_names = tuple(inputs), tuple(outputs)
        self._output_dims = {name: tuple(int(d) for d in engine.get_tensor_shape(name)) for name in outputs}
        self._context = self._new_context()
        self.cuda_graph = bool(cuda_graph)
        self._cuda = CUDA_API
        self._stream = self._cuda.new_stream(self.device)
        self._graphs: dict[tuple[tuple[int, ...], ...], _CapturedRun] = {}
        self._staging: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self._lock = threading.Lock()
        log.info("tensorrt backend: %s on %s (TensorRT %s, cuda_graph=%s)", path.name, gpu_name,
                 trt.__version__, self.cuda_graph)  # fmt: skip

    def _new_context(self) -> Any:
        context = self._engine.create_execution_context()
        if context is None:
            raise BackendError(
                f"TensorRT could not create an execution context for {self._path} (GPU memory?)"
            )
        return context

    def output_shapes(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """The engine's output shapes with the dynamic batch axis (-1) set to the inputs' batch."""
        batch = int(inputs[self.input_names[0]].shape[0])
        return {name: tuple(batch if d < 0 else d for d in dims) for name, dims in self._output_dims.items()}

    def _run(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        with self._lock:
            current = self._cuda.current_stream(self.device)
            self._stream.wait_stream(current)  # the inputs, written on PyTorch's stream
            with self._cuda.use_stream(self._stream):
                if self.cuda_graph:
                    key = tuple(tuple(inputs[name].shape) for name in self.input_names)
                    captured = self._graphs.get(key)
                    if captured is None:
                        captured = self._graphs[key] = self._capture(inputs, outputs)
                    captured.replay(inputs, outputs)
                else:
                    self._run_aligned(inputs, outputs)
            current.wait_stream(self._stream)  # the outputs, read on PyTorch's stream

    def _staged(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` itself if aligned, else this backend's aligned buffer of its name and shape."""
        if is_aligned(tensor):
            return tensor
        key = (name, tuple(tensor.shape))
        buffer = self._staging.get(key)
        if buffer is None:
            buffer = self._staging[key] = aligned_empty(tuple(tensor.shape), self.device)
            log.info("tensorrt: %r at a misaligned address: staged through an aligned copy", name)
        return buffer

    def _run_aligned(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        bound_in = {name: self._staged(name, tensor) for name, tensor in inputs.items()}
        bound_out = {name: self._staged(name, tensor) for name, tensor in outputs.items()}
        for name, tensor in inputs.items():
            if bound_in[name] is not tensor:
                bound_in[name].copy_(tensor)
        self._bind(self._context, bound_in, bound_out)
        self._enqueue(self._context)
        for name, tensor in outputs.items():
            if bound_out[name] is not tensor:
                tensor.copy_(bound_out[name])

    def _bind(
        self, context: Any, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]
    ) -> None:
        for name in self.input_names:
            if not context.set_input_shape(name, tuple(inputs[name].shape)):
                raise BackendError(
                    f"tensorrt: input {name!r} of shape {tuple(inputs[name].shape)} is outside the engine's "
                    "optimization profile (batch 1..N at the canvas it was built for); rebuild with a larger "
                    "--max-batch (python -m export tensorrt)"
                )
        for name, tensor in (*inputs.items(), *outputs.items()):
            if not is_aligned(tensor):
                raise BackendError(
                    f"tensorrt: tensor {name!r} at address {tensor.data_ptr():#x} is not "
                    f"{ALIGNMENT_BYTES}-byte aligned (an internal error: it should have been staged)"
                )
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise BackendError(f"tensorrt: cannot bind tensor {name!r}")

    def _enqueue(self, context: Any) -> None:
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise BackendError("tensorrt: execute_async_v3 failed (see TensorRT's log above)")

    def _capture(
        self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]
    ) -> _CapturedRun:
        """A new execution context for these shapes, bound to new aligned static buffers, warmed up and
        captured (on this backend's stream, which is current)."""
        context = self._new_context()
        static_in = {name: aligned_empty(tuple(t.shape), self.device) for name, t in inputs.items()}
        static_out = {name: aligned_empty(tuple(t.shape), self.device) for name, t in outputs.items()}
        for name, tensor in inputs.items():
            static_in[name].copy_(tensor)
        self._bind(context, static_in, static_out)
        self._enqueue(context)  # the warm-up run TensorRT asks for before a capture
        graph = self._cuda.new_graph()
        with self._cuda.capture(graph, self._stream):
            self._enqueue(context)
        shapes = [tuple(t.shape) for t in inputs.values()]
        log.info("tensorrt: captured a CUDA graph for input shapes %s on its own execution context", shapes)
        return _CapturedRun(graph, context, static_in, static_out)


class _CapturedRun:
    """One captured CUDA graph with its execution context and the static buffers it reads and writes."""

    def __init__(
        self, graph: Any, context: Any, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> None:
        self.graph, self.context, self.inputs, self.outputs = graph, context, inputs, outputs

    def replay(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in inputs.items():
            self.inputs[name].copy_(tensor)
        self.graph.replay()
        for name, tensor in outputs.items():
            tensor.copy_(self.outputs[name])
