"""Inference backends behind one small interface: named float32 inputs in, named outputs out.

The backend is chosen by the engine file's extension: ``.onnx`` (ONNX Runtime, CPU or GPU), ``.pt``
(PyTorch, a training checkpoint) and ``.plan`` (TensorRT, GPU; not part of this build yet).
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from realtime.bundle import INPUT_PREVIOUS_FRAME, INPUT_STICK_FIGURE, OUTPUT_FRAME

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """An engine file that cannot be loaded or run."""


class InferenceBackend(ABC):
    """A loaded generator. :meth:`run` is safe to call from several threads."""

    #: Short name for logs ("onnxruntime", "torch").
    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the generator.

        Args:
            inputs: float32 arrays by input name, ``(B, 3, H, W)`` in [0, 1].

        Returns:
            float32 arrays by output name, ``(B, 3, H, W)`` in [0, 1].

        Raises:
            BackendError: on missing inputs or a failed run.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    def _check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise BackendError(f"{self.name}: missing inputs {missing}; expected {list(self.input_names)}")


class OnnxRuntimeBackend(InferenceBackend):
    """ONNX Runtime session over an exported ``.onnx`` generator.

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers (default: CUDA where available, else CPU).
        threads: intra-op threads (0 = ONNX Runtime's default, all cores).

    Raises:
        BackendError: if the file is missing or ONNX Runtime cannot load it.
    """

    name = "onnxruntime"

    def __init__(
        self, path: str | os.PathLike[str], providers: list[str] | None = None, threads: int = 0
    ) -> None:
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
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions for corrupt models
            raise BackendError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        log.info("onnxruntime backend: %s on %s", path.name, self._session.get_providers()[0])

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(inputs)
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.float32) for name in self.input_names}
        try:
            outputs = self._session.run(list(self.output_names), feed)
        except Exception as exc:  # onnxruntime's exceptions have no common public base class
            raise BackendError(f"ONNX Runtime run failed: {exc}") from exc
        return dict(zip(self.output_names, outputs, strict=True))


class TorchBackend(InferenceBackend):
    """The generator of a training checkpoint (``RUN/checkpoint.pt``), run by PyTorch.

    Args:
        path: the checkpoint file.
        device: torch device ("cpu", "cuda").

    Raises:
        BackendError: if the checkpoint cannot be loaded.
    """

    name = "torch"

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        import torch

        from train.checkpoint import load_generator

        try:
            self._generator, _ = load_generator(path)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise BackendError(f"cannot load PyTorch checkpoint {path}: {exc}") from exc
        self._torch = torch
        self._device = torch.device(device)
        self._generator.to(self._device).eval()
        self._lock = threading.Lock()
        self.input_names = (INPUT_STICK_FIGURE, INPUT_PREVIOUS_FRAME)
        self.output_names = (OUTPUT_FRAME,)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(inputs)
        torch = self._torch
        stick = torch.from_numpy(np.ascontiguousarray(inputs[INPUT_STICK_FIGURE], dtype=np.float32))
        prev = torch.from_numpy(np.ascontiguousarray(inputs[INPUT_PREVIOUS_FRAME], dtype=np.float32))
        with self._lock, torch.inference_mode():
            out = self._generator(stick.to(self._device), prev.to(self._device))
        return {OUTPUT_FRAME: out.float().cpu().numpy()}


ENGINE_SUFFIXES = (".onnx", ".pt", ".plan")


def check_engine_suffix(path: str | os.PathLike[str]) -> None:
    """Raises :class:`BackendError` unless ``path`` ends in one of :data:`ENGINE_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix not in ENGINE_SUFFIXES:
        raise BackendError(
            f"{path}: unknown engine type {suffix!r}; expected one of {', '.join(ENGINE_SUFFIXES)}"
        )


def open_backend(path: str | os.PathLike[str], **kwargs: object) -> InferenceBackend:
    """Open an engine by its extension: ``.onnx`` -> :class:`OnnxRuntimeBackend`, ``.pt`` ->
    :class:`TorchBackend`.

    Raises:
        BackendError: for an unknown extension, a ``.plan`` (TensorRT is not in this build), or a file that
            cannot be loaded.
    """
    check_engine_suffix(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return OnnxRuntimeBackend(path, **kwargs)  # type: ignore[arg-type]
    if suffix == ".plan":
        raise BackendError(
            f"{path}: TensorRT engines are not supported by this build yet; export to ONNX "
            "(python -m export.onnx) and pass the .onnx file"
        )
    return TorchBackend(path, **kwargs)  # type: ignore[arg-type]
