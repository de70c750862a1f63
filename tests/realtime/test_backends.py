import numpy as np
import pytest

from realtime.backends import BackendError, OnnxRuntimeBackend, open_backend


def test_onnxruntime_backend_runs_without_spinning_threads(tiny_engine):
    backend = open_backend(tiny_engine)
    assert isinstance(backend, OnnxRuntimeBackend)
    options = backend._session.get_session_options()
    # spinning intra-op threads take a core from the pose and codec threads of the live server
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    inputs = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in backend._session.get_inputs()
    }
    outputs = backend.run(inputs)
    assert set(outputs) == set(backend.output_names)
    assert all(np.isfinite(v).all() for v in outputs.values())


def test_onnxruntime_backend_errors(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match="cannot load"):
        OnnxRuntimeBackend(broken)
