"""TensorRT engines (``NAME.plan``) at run time: :class:`TensorRTBackend`, written to the TensorRT 10/11
Python API (tensor names, ``set_tensor_address`` + ``execute_async_v3`` on PyTorch's current stream).

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
  (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3(stream_handle)``).
- Name-based I/O replacing bindings (TensorRT 10):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-reference.html
- TensorRT 11 (weak typing and ``ICudaEngine.device_memory_size`` removed, none used here):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
- NVIDIA/TensorRT ``samples/python/common_runtime.py``: buffers from the engine's I/O tensor names, one
  ``set_tensor_address`` per tensor, one ``execute_async_v3`` on a stream.
- CUDA graphs with TensorRT: capture ``execute_async_v3`` after one ordinary run ("call enqueue once before
  capture to flush deferred updates"), TensorRT developer guide, "CUDA Graphs".
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

from realtime.model.backends import BackendError, InferenceBackend

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


def current_stream_handle(device: torch.device) -> int:
    """The raw ``cudaStream_t`` of PyTorch's current stream on ``device``."""
    return int(torch.cuda.current_stream(device).cuda_stream)


class TensorRTBackend(InferenceBackend):
    """A deserialized TensorRT engine run on PyTorch CUDA tensors, generator and face model alike.

    Inputs and outputs are float32 ``(B, C, H, W)`` CUDA tensors (export keeps the engine's I/O in fp32 and
    casts inside the graph); their memory is bound with ``set_tensor_address`` and the engine is enqueued with
    ``execute_async_v3`` on PyTorch's current stream, so it is ordered with the rasterizer before it and the
    compositing after it without a synchronization. Batch sizes within the engine's optimization profile
    (1..N at the canvas, :mod:`export.tensorrt`) are accepted.

    With ``cuda_graph=True``, each input shape gets its own static input and output buffers: the first run of
    a shape enqueues the engine once (TensorRT's warm-up before capture), then captures one
    ``execute_async_v3`` into a ``torch.cuda.CUDAGraph``; later runs copy the inputs in, replay, and copy the
    outputs out (two device copies in exchange for one graph launch instead of one launch per kernel).

    One execution context serves all threads; runs are serialized by a lock.

    Args:
        path: the ``.plan`` file, with its sidecar's build record (:func:`read_plan_record`).
        device: the CUDA device.
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
        self.device = torch.device(device)
        gpu_name, capability = cuda_device_info(self.device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
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
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"TensorRT could not create an execution context for {path} (GPU memory?)")
        self.cuda_graph = bool(cuda_graph)
        self._graphs: dict[tuple[tuple[int, ...], ...], _CapturedRun] = {}
        self._lock = threading.Lock()
        log.info("tensorrt backend: %s on %s (TensorRT %s, cuda_graph=%s)", path.name, gpu_name,
                 trt.__version__, self.cuda_graph)  # fmt: skip

    def output_shapes(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """The engine's output shapes with the dynamic batch axis (-1) set to the inputs' batch."""
        batch = int(inputs[self.input_names[0]].shape[0])
        return {name: tuple(batch if d < 0 else d for d in dims) for name, dims in self._output_dims.items()}

    def _run(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        with self._lock:
            if not self.cuda_graph:
                self._bind(inputs, outputs)
                self._enqueue()
                return
            key = tuple(tuple(inputs[name].shape) for name in self.input_names)
            captured = self._graphs.get(key)
            if captured is None:
                captured = self._graphs[key] = self._capture(inputs, outputs)
            captured.replay(inputs, outputs)

    def _bind(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        for name in self.input_names:
            if not self._context.set_input_shape(name, tuple(inputs[name].shape)):
                raise BackendError(
                    f"tensorrt: input {name!r} of shape {tuple(inputs[name].shape)} is outside the engine's "
                    "optimization profile (batch 1..N at the canvas it was built for); rebuild with a larger "
                    "--max-batch (python -m export tensorrt)"
                )
        for name, tensor in (*inputs.items(), *outputs.items()):
            if not self._context.set_tensor_address(name, tensor.data_ptr()):
                raise BackendError(f"tensorrt: cannot bind tensor {name!r}")

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(current_stream_handle(self.device)):
            raise BackendError("tensorrt: execute_async_v3 failed (see TensorRT's log above)")

    def _capture(
        self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]
    ) -> _CapturedRun:
        static_in = {name: tensor.clone() for name, tensor in inputs.items()}
        static_out = {name: torch.empty_like(tensor) for name, tensor in outputs.items()}
        self._bind(static_in, static_out)
        self._enqueue()  # the warm-up run TensorRT asks for before a capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._enqueue()
        shapes = [tuple(t.shape) for t in inputs.values()]
        log.info("tensorrt: captured a CUDA graph for input shapes %s", shapes)
        return _CapturedRun(graph, static_in, static_out)


class _CapturedRun:
    """One captured CUDA graph with the static buffers it reads and writes."""

    def __init__(self, graph: Any, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        self.graph, self.inputs, self.outputs = graph, inputs, outputs

    def replay(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in inputs.items():
            self.inputs[name].copy_(tensor)
        self.graph.replay()
        for name, tensor in outputs.items():
            tensor.copy_(self.outputs[name])
