"""Inference backends behind one small interface: named ``torch.Tensor`` inputs in, named tensors out, on the
backend's device, with preallocated outputs (docs/architecture.md, "Inference backends").

One factory, :func:`open_backend`, serves the main generator and the face model alike and chooses the backend
by the file's extension through one table, :data:`realtime.catalog.BACKENDS` (light, so that command lines
state the suffixes without importing this module): ``.onnx`` (ONNX Runtime through I/O binding, CPU or CUDA),
``.pt`` (PyTorch, an inference weights file written by export: :func:`realtime.model.nets.save_weights`; on
CUDA optionally fp16 autocast, channels-last and CUDA graphs) and ``.plan`` (TensorRT,
:mod:`realtime.model.tensorrt_backend`, imported only when a plan is opened: the ``gpu`` extra).
A new backend is one :class:`InferenceBackend` subclass plus one line in :data:`realtime.catalog.BACKENDS`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from realtime.catalog import BACKENDS, ENGINE_SUFFIXES

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """An engine file that cannot be loaded or run."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` with an explicit index for CUDA: ``"cuda"`` becomes ``cuda:N`` for the current device N.

    PyTorch compares devices by type and index, and ``torch.device("cuda") != torch.device("cuda", 0)``
    although the tensors of both live on ``cuda:0`` (pytorch/pytorch#115405): a backend that kept the
    index-less device would refuse every caller's ``out=`` tensor. CPU devices are returned unchanged.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class InferenceBackend(ABC):
    """A loaded network. :meth:`run` is safe to call from several threads.

    Attributes:
        name: short name for logs ("onnxruntime", "torch").
        device: where inputs are expected and outputs are written.
        input_names, output_names: the engine's tensor names, in order.
    """

    name: str
    device: torch.device
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def __init__(self) -> None:
        self._local = threading.local()

    def run(
        self, inputs: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network.

        Args:
            inputs: float32 tensors by input name, ``(B, C, H, W)`` (images in [0, 1]); moved to
                :attr:`device` if elsewhere.
            out: float32 tensors on :attr:`device` to write the outputs into, by output name (each of the
                output's shape). Without it, outputs go to buffers this backend keeps per calling thread and
                per shape: they stay valid until that thread's next run with the same shapes (copy them, or
                pass ``out``, to keep them longer).

        Returns:
            float32 tensors by output name on :attr:`device` (``out``'s own tensors when given).

        Raises:
            BackendError: on missing inputs, a wrong ``out`` tensor, or a failed run.
        """
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise BackendError(f"{self.name}: missing inputs {missing}; expected {list(self.input_names)}")
        feed = {name: inputs[name].to(self.device, torch.float32).contiguous() for name in self.input_names}
        shapes = self.output_shapes(feed)
        outputs = {name: self._output_buffer(name, shapes[name], out) for name in self.output_names}
        self._run(feed, outputs)
        return outputs

    @abstractmethod
    def output_shapes(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """The output shapes for these (contiguous, on-device) inputs, by output name."""

    @abstractmethod
    def _run(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        """Run on contiguous float32 inputs on :attr:`device`, writing into ``outputs``."""

    def _output_buffer(
        self, name: str, shape: tuple[int, ...], out: Mapping[str, torch.Tensor] | None
    ) -> torch.Tensor:
        if out is not None and name in out:
            given = out[name]
            on_device = resolve_device(given.device) == resolve_device(self.device)
            if tuple(given.shape) != shape or given.dtype != torch.float32 or not on_device:
                raise BackendError(
                    f"{self.name}: out[{name!r}] is {given.dtype} {tuple(given.shape)} on {given.device}, "
                    f"expected float32 {shape} on {self.device}"
                )
            if not given.is_contiguous():
                raise BackendError(f"{self.name}: out[{name!r}] must be contiguous")
            return given
        buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = self._local.__dict__.setdefault(
            "buffers", {}
        )
        key = (name, shape)
        if key not in buffers:
            buffers[key] = torch.empty(shape, dtype=torch.float32, device=self.device)
        return buffers[key]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""


class OnnxRuntimeBackend(InferenceBackend):
    """ONNX Runtime session over an exported ``.onnx`` network, fed through I/O binding: inputs and outputs
    are bound to the tensors' own memory (no copies through NumPy).

    Output shapes come from the graph's output metadata, a symbolic axis taking the first input's size on
    that axis (export makes only the batch axis symbolic).

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers, names or ``(name, options)`` (default: from ``device``).
        threads: intra-op threads (0 = ONNX Runtime's default, all cores).
        device: "cuda" or "cuda:N" (the CUDA provider, from the ``onnxruntime-gpu`` package, on device N;
            "cuda" is PyTorch's current device), "cpu", or None (CUDA where ONNX Runtime offers it and
            PyTorch sees a device, else CPU, with a warning if the CUDA provider does not start). Ignored
            when ``providers`` is given.

    The backend's :attr:`device` is the one the session really runs on: ONNX Runtime silently falls back to
    the CPU when its CUDA provider cannot start, so the session's active providers are checked after it is
    made (ONNX Runtime's Python API, ``InferenceSession.get_providers`` and ``get_provider_options``).

    On CUDA, ONNX Runtime runs on its own stream: each run first waits for PyTorch's current stream (so the
    inputs written there are complete), and ONNX Runtime synchronizes its outputs before returning.

    Raises:
        BackendError: if the file is missing, ONNX Runtime cannot load it, or CUDA was asked for (``device``
            or ``providers``) and the session does not run on the CUDA provider.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: list[str | tuple[str, dict[str, Any]]] | None = None,
        threads: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"engine file not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # ONNX Runtime's intra-op threads spin for work between runs by default, taking a core from the
        # pose and codec threads beside them. Off: the live server on 2 cores went from 9.8 to 13.9 fps for
        # one client (server CPU 192 -> 127 ms per generated frame, glass-to-glass p50 236 -> 152 ms), and a
        # generator run alone on an idle machine was no slower (31.0 vs 32.1 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        wanted = None if device is None else resolve_device(device)
        automatic = providers is None and device is None
        if providers is None and wanted is not None and wanted.type == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BackendError(
                    f"ONNX Runtime has no CUDA provider here (available: {available}); install "
                    "onnxruntime-gpu in place of onnxruntime, or run on the CPU"
                )
            providers = [("CUDAExecutionProvider", {"device_id": wanted.index}), "CPUExecutionProvider"]
        elif providers is None and wanted is not None:
            providers = ["CPUExecutionProvider"]
        elif providers is None:
            cuda = "CUDAExecutionProvider" in available and torch.cuda.is_available()
            if cuda:
                wanted = resolve_device("cuda")
                providers = [("CUDAExecutionProvider", {"device_id": wanted.index}), "CPUExecutionProvider"]
            else:
                providers = ["CPUExecutionProvider"]
        asked_cuda = any(_provider_name(p) == "CUDAExecutionProvider" for p in providers)
        if asked_cuda and automatic:
            log.info("onnxruntime backend: CUDA offered, trying it on %s", wanted)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions for corrupt models
            raise BackendError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        active = list(self._session.get_providers())
        on_cuda = bool(active) and active[0] == "CUDAExecutionProvider"
        if asked_cuda and not on_cuda and automatic:
            log.warning("onnxruntime backend: the CUDA provider did not start; %s runs on the CPU", path.name)
        elif asked_cuda and not on_cuda:
            # ONNX Runtime falls back to the CPU with only a log line when the CUDA provider cannot start
            # (no CUDA or cuDNN libraries of its build, no device): every frame would run on the CPU.
            raise BackendError(
                f"ONNX Runtime was asked for CUDA but its session for {path.name} runs on {active} (the CUDA "
                "provider did not start: check that onnxruntime-gpu's CUDA and cuDNN versions are installed, "
                "see ONNX Runtime's log above), or run on the CPU (device='cpu')"
            )
        if on_cuda:
            options_now = self._session.get_provider_options().get("CUDAExecutionProvider", {})
            index = int(options_now.get("device_id", wanted.index if wanted is not None else 0))
            self.device = torch.device("cuda", index)
        else:
            self.device = torch.device("cpu")
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self._output_dims = {o.name: tuple(o.shape) for o in self._session.get_outputs()}
        log.info("onnxruntime backend: %s on %s (%s)", path.name, active[0], self.device)

    def output_shapes(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        first = inputs[self.input_names[0]].shape
        return {
            name: tuple(d if isinstance(d, int) else int(first[axis]) for axis, d in enumerate(dims))
            for name, dims in self._output_dims.items()
        }

    def _run(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        binding = self._session.io_binding()
        kind = self.device.type
        index = self.device.index if self.device.index is not None else 0
        for name, tensor in inputs.items():
            binding.bind_input(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        for name, tensor in outputs.items():
            binding.bind_output(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        if kind == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # the inputs, written on PyTorch's stream
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's exceptions have no common public base class
            raise BackendError(f"ONNX Runtime run failed: {exc}") from exc


def _provider_name(provider: str | tuple[str, dict[str, Any]]) -> str:
    """The name of an ONNX Runtime provider given as a name or as ``(name, options)``."""
    return provider if isinstance(provider, str) else provider[0]


#: Autocast dtype of each :class:`TorchBackend` precision ("fp32": no autocast).
TORCH_PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


class _Fp32Norm(nn.Module):
    """Runs a normalization layer in float32 under autocast and returns its input's dtype: instance
    normalization's statistics over a whole 512x512 plane overflow in fp16 (a sum of squares past 65504)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.norm(x.float()).to(x.dtype)


def keep_norms_fp32(module: nn.Module) -> int:
    """Wrap every instance/batch/group/layer normalization of ``module`` (in place) in :class:`_Fp32Norm`.
    Returns how many were wrapped."""
    norms: tuple[type[nn.Module], ...] = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    norms = (*norms, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, norms):
            setattr(module, name, _Fp32Norm(child))
            count += 1
        elif not isinstance(child, _Fp32Norm):
            count += keep_norms_fp32(child)
    return count


class TorchBackend(InferenceBackend):
    """A generator run by PyTorch: from an inference weights file (``NAME.pt``,
    :func:`realtime.model.nets.save_weights`) or, with :meth:`from_module`, from a module in memory (the
    training side evaluates checkpoints this way).

    For a GPU without TensorRT: ``precision="fp16"`` runs under ``torch.autocast`` with every normalization
    layer kept in float32 (:func:`keep_norms_fp32`); ``channels_last`` stores weights and inputs NHWC (the
    layout tensor cores' convolutions take); ``cuda_graph`` captures the forward pass once per input shape
    into a ``torch.cuda.CUDAGraph`` after warm-up runs on a side stream (PyTorch's "CUDA Graphs" notes; the
    ``"thread_local"`` capture mode, so other threads' CUDA calls do not break a capture), then
    each run copies the inputs into the static buffers and replays it. Inputs and outputs stay float32.

    Args:
        path: the weights file.
        device: torch device ("cpu", "cuda").
        precision: one of :data:`TORCH_PRECISIONS` ("fp32", "fp16", "bf16").
        channels_last: NHWC memory format for weights and inputs.
        cuda_graph: capture and replay CUDA graphs (CUDA devices only).

    Raises:
        BackendError: if the file cannot be loaded (a training checkpoint says to export it first), for an
            unknown precision, or ``cuda_graph`` off CUDA.
    """

    name = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        from realtime.model.nets import WeightsError, load_weights

        try:
            module = load_weights(path, map_location=device)
        except (OSError, WeightsError) as exc:
            raise BackendError(f"cannot load PyTorch weights {path}: {exc}") from exc
        self._init(module, resolve_device(device), precision, channels_last, cuda_graph)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        cuda_graph: bool = False,
    ) -> TorchBackend:
        """A backend over a built generator (one of :mod:`realtime.model.nets`, with ``.inputs``); eval mode.
        With a precision other than fp32 the module's normalization layers are wrapped in place.

        Raises:
            BackendError: if ``module`` declares no inputs, or as the constructor.
        """
        backend = cls.__new__(cls)
        backend._init(module, resolve_device(device), precision, channels_last, cuda_graph)
        return backend

    def _init(
        self, module: nn.Module, device: torch.device, precision: str, channels_last: bool, cuda_graph: bool
    ) -> None:
        InferenceBackend.__init__(self)
        spec = getattr(module, "inputs", None)
        if spec is None:
            raise BackendError(
                f"{type(module).__name__} declares no generator inputs (realtime.model.inputs)"
            )
        if precision not in TORCH_PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; expected one of {list(TORCH_PRECISIONS)}")
        if cuda_graph and device.type != "cuda":
            raise BackendError(f"cuda_graph=True needs a CUDA device, got {device}")
        self._autocast = TORCH_PRECISIONS[precision]
        if self._autocast is not None:
            keep_norms_fp32(module)
        self._module = module.to(device).eval()
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self._module = self._module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # accepted at run time
        self.device = device
        self.precision = precision
        self.cuda_graph = cuda_graph
        self.input_names = spec.names
        self.output_names = (spec.output.name,)
        self._output_channels = spec.output.channels
        self._lock = threading.Lock()
        self._graphs: dict[tuple[tuple[int, ...], ...], tuple[Any, list[torch.Tensor], torch.Tensor]] = {}

    def output_shapes(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        batch, _, height, width = inputs[self.input_names[0]].shape
        return {self.output_names[0]: (int(batch), self._output_channels, int(height), int(width))}

    def _forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self._autocast is None:
            return self._module(*inputs)
        with torch.autocast(device_type=self.device.type, dtype=self._autocast):
            return self._module(*inputs)

    def _run(self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
        ordered = [inputs[name] for name in self.input_names]
        with self._lock, torch.inference_mode():
            try:
                if self.cuda_graph:
                    result = self._replay(ordered)
                else:
                    result = self._forward([x.contiguous(memory_format=self._memory_format) for x in ordered])
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"PyTorch run failed: {exc}") from exc
            outputs[self.output_names[0]].copy_(result)

    def _replay(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        key = tuple(tuple(x.shape) for x in inputs)
        if key not in self._graphs:
            static = [x.contiguous(memory_format=self._memory_format).clone() for x in inputs]
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                # warm-up: cuDNN autotuning and lazy allocations happen outside the capture
                for _ in range(3):
                    self._forward(static)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA calls of the server's other threads during the capture do not break it
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                result = self._forward(static)
            self._graphs[key] = (graph, static, result)
            log.info("torch backend: captured a CUDA graph for input shapes %s", list(key))
        graph, static, result = self._graphs[key]
        for buffer, x in zip(static, inputs, strict=True):
            buffer.copy_(x)
        graph.replay()
        return result


@functools.cache
def backend_factory(suffix: str) -> Callable[..., InferenceBackend]:
    """The backend constructor that :data:`realtime.catalog.BACKENDS` names for an engine suffix
    (``".onnx"``), imported on first use (cached): ``factory(path, **options)`` opens an engine.

    Raises:
        BackendError: for a suffix not in the table, or an entry that does not name an importable callable.
    """
    if suffix not in BACKENDS:
        raise BackendError(f"unknown engine type {suffix!r}; expected one of {', '.join(ENGINE_SUFFIXES)}")
    module_name, _, attribute = BACKENDS[suffix].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BackendError(
            f"realtime.catalog.BACKENDS[{suffix!r}] = {BACKENDS[suffix]!r} does not name a backend: {exc}"
        ) from exc
    if not callable(factory):
        raise BackendError(f"realtime.catalog.BACKENDS[{suffix!r}] = {BACKENDS[suffix]!r} is not callable")
    return factory


def check_engine_suffix(path: str | os.PathLike[str]) -> None:
    """Raises :class:`BackendError` unless ``path`` ends in one of :data:`ENGINE_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix not in BACKENDS:
        raise BackendError(
            f"{path}: unknown engine type {suffix!r}; expected one of {', '.join(ENGINE_SUFFIXES)}"
        )


def open_backend(
    path: str | os.PathLike[str], expected: tuple[str, ...] | None = None, **kwargs: object
) -> InferenceBackend:
    """Open an engine by its extension (:data:`realtime.catalog.BACKENDS`).

    Args:
        path: the engine file.
        expected: input names the engine must take (in any order), or None.
        kwargs: passed to the backend's constructor.

    Raises:
        FileNotFoundError: if the file is missing.
        BackendError: for an unknown extension, a ``.plan`` without TensorRT or CUDA (or built for another GPU
            or TensorRT version), a file that cannot be loaded, or an engine without the ``expected`` inputs.
    """
    check_engine_suffix(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"engine file not found: {path}")
    backend = backend_factory(Path(path).suffix.lower())(path, **kwargs)
    if expected is not None and set(expected) != set(backend.input_names):
        raise BackendError(
            f"{path}: the engine takes inputs {list(backend.input_names)}, its sidecar declares "
            f"{list(expected)}; export the target again (python -m export onnx)"
        )
    return backend
