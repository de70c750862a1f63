import numpy as np
import pytest
import torch

from realtime.catalog import BACKENDS
from realtime.model.backends import BackendError, OnnxRuntimeBackend, TorchBackend, open_backend


def _zeros(backend):
    return {
        i.name: torch.zeros([d if isinstance(d, int) else 1 for d in i.shape])
        for i in backend._session.get_inputs()
    }


def test_onnxruntime_backend_runs_without_spinning_threads(tiny_engine):
    backend = open_backend(tiny_engine)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.device == torch.device("cpu")
    options = backend._session.get_session_options()
    # spinning intra-op threads take a core from the pose and codec threads of the live server
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    outputs = backend.run(_zeros(backend))
    assert set(outputs) == set(backend.output_names)
    assert all(isinstance(v, torch.Tensor) and torch.isfinite(v).all() for v in outputs.values())


def test_outputs_are_preallocated_per_thread_or_given(tiny_engine):
    backend = open_backend(tiny_engine)
    inputs = _zeros(backend)
    (name,) = backend.output_names
    first = backend.run(inputs)[name]
    assert backend.run(inputs)[name].data_ptr() == first.data_ptr()  # the same buffer, no new allocation
    mine = torch.full_like(first, -1.0)
    got = backend.run(inputs, out={name: mine})[name]
    assert got is mine and torch.equal(mine, first)
    with pytest.raises(BackendError, match="expected float32"):
        backend.run(inputs, out={name: torch.zeros(1, 3, 8, 8)})
    with pytest.raises(BackendError, match="missing inputs"):
        backend.run({})


def test_onnxruntime_and_torch_weights_agree_on_tensors(tiny_engine):
    onnx_backend = open_backend(tiny_engine)
    torch_backend = open_backend(tiny_engine.with_suffix(".pt"))  # inference weights written by export
    assert isinstance(torch_backend, TorchBackend) and torch_backend.input_names == onnx_backend.input_names
    rng = torch.Generator().manual_seed(2)
    inputs = {k: torch.rand(v.shape, generator=rng) for k, v in _zeros(onnx_backend).items()}
    (name,) = onnx_backend.output_names
    np.testing.assert_allclose(
        torch_backend.run(inputs)[name].numpy(), onnx_backend.run(inputs)[name].numpy(), atol=1e-4
    )


def test_one_factory_chooses_by_suffix(tmp_path, tiny_engine):
    assert {".onnx", ".pt", ".plan"} <= set(BACKENDS)  # a new backend is one more line there
    with pytest.raises(BackendError, match="unknown engine type"):
        open_backend(tmp_path / "x.bin")
    with pytest.raises(FileNotFoundError):
        open_backend(tmp_path / "missing.pt")
    with pytest.raises(BackendError, match="training checkpoint"):
        open_backend(tiny_engine.parent / "run" / "checkpoint.pt")
    with pytest.raises(BackendError, match="sidecar declares"):
        open_backend(tiny_engine, expected=("stick_figure", "something_else"))


def test_onnxruntime_backend_errors(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match="cannot load"):
        OnnxRuntimeBackend(broken)


class _SessionOn:
    """A stand-in ``onnxruntime.InferenceSession`` whose active providers are ``active`` (what ONNX Runtime
    reports after a silent fallback), recording the providers it was asked for."""

    asked: list = []

    def __init__(self, active, options=None):
        self.active, self.options = active, options or {}

    def __call__(self, path, session_options, providers):
        _SessionOn.asked = list(providers)
        real = self

        class Session:
            def get_providers(self):
                return list(real.active)

            def get_provider_options(self):
                return {name: dict(real.options.get(name, {})) for name in real.active}

            def get_inputs(self):
                return []

            def get_outputs(self):
                return []

        return Session()


def test_onnxruntime_asked_for_cuda_refuses_a_silent_cpu_fallback(tiny_engine, monkeypatch):
    """Issue 20, defect 8: the CUDA provider that did not start is an error, not a CPU run."""
    import onnxruntime as ort

    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(ort, "InferenceSession", _SessionOn(["CPUExecutionProvider"]))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(BackendError, match=r"asked for CUDA but .* runs on \['CPUExecutionProvider'\]"):
        OnnxRuntimeBackend(tiny_engine, device="cuda")
    with pytest.raises(BackendError, match="asked for CUDA"):
        OnnxRuntimeBackend(tiny_engine, providers=["CUDAExecutionProvider"])


def test_onnxruntime_takes_the_cuda_device_index_from_the_caller(tiny_engine, monkeypatch):
    """Issue 20, defect 8: ``cuda:1`` is asked of ONNX Runtime and bound as ``cuda:1``, not ``cuda:0``."""
    import onnxruntime as ort

    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    active = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(
        ort, "InferenceSession", _SessionOn(active, {"CUDAExecutionProvider": {"device_id": "1"}})
    )
    backend = OnnxRuntimeBackend(tiny_engine, device="cuda:1")
    assert _SessionOn.asked[0] == ("CUDAExecutionProvider", {"device_id": 1})
    assert backend.device == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)  # "cuda" is PyTorch's current device
    monkeypatch.setattr(ort, "InferenceSession", _SessionOn(active, {}))
    assert OnnxRuntimeBackend(tiny_engine, device="cuda").device == torch.device("cuda", 1)
    assert _SessionOn.asked[0] == ("CUDAExecutionProvider", {"device_id": 1})
