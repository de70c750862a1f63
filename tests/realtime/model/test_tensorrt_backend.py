"""The TensorRT backend: its call sequence and its errors against a stand-in ``tensorrt`` module (this machine
has neither TensorRT nor a GPU), and a real engine where both exist."""

import json
import subprocess
import sys

import pytest
import torch
from fake_tensorrt import FakeTensorRT

import realtime.model.tensorrt_backend as rt
from realtime.model.backends import BackendError, open_backend

RECORD = {
    "tensorrt": "10.13.0.35",
    "tensorrt_gpu": "Fake GPU",
    "tensorrt_compute_capability": "9.0",
    "tensorrt_precision": "fp16",
}


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device as far as the backend can tell: a name, a compute capability and a stream handle."""
    monkeypatch.setattr(rt, "cuda_device_info", lambda device: ("Fake GPU", (9, 0)))
    monkeypatch.setattr(rt, "current_stream_handle", lambda device: 1234)


def _plan(tmp_path, record=RECORD, name="target.plan", data=b"PLAN"):
    plan = tmp_path / name
    plan.write_bytes(data)
    (tmp_path / "target.json").write_text(json.dumps({"versions": {"torch": "2.13.0", **record}}))
    return plan


def test_without_tensorrt_asking_for_a_plan_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes "import tensorrt" raise ImportError
    plan = _plan(tmp_path)
    with pytest.raises(BackendError, match=r"pip install 'dance-live\[gpu\]'"):
        rt.import_tensorrt()
    with pytest.raises(BackendError, match=r"TensorRT is not installed.*dance-live\[gpu\].*\.onnx"):
        open_backend(plan)


def test_the_project_imports_nothing_of_tensorrt_until_a_plan_is_opened():
    code = (
        "import sys, realtime.model.pipeline, realtime.model.backends, export.tensorrt; "
        "print(sorted(m for m in sys.modules if m == 'tensorrt' or m.startswith('tensorrt.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_without_cuda_a_plan_fails_clearly(tmp_path):
    with pytest.raises(BackendError, match="CUDA device.*run the target's .onnx or .pt"):
        rt.TensorRTBackend(_plan(tmp_path), trt=FakeTensorRT())


def test_run_binds_the_tensors_and_enqueues_on_the_current_stream(tmp_path, fake_gpu):
    trt = FakeTensorRT()
    backend = rt.TensorRTBackend(_plan(tmp_path), device="cpu", trt=trt)
    assert backend.input_names == ("a", "b") and backend.output_names == ("out",)
    assert trt.names()[-2:] == ["deserialize_cuda_engine", "create_execution_context"]
    assert trt.calls[-2] == ("deserialize_cuda_engine", (b"PLAN",))
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    out = torch.full((2, 3, 8, 8), -1.0)
    trt.calls.clear()
    got = backend.run({"a": a, "b": b}, out={"out": out})["out"]
    assert got is out
    torch.testing.assert_close(out, a + b)  # the engine read and wrote exactly the bound memory
    assert trt.calls == [
        ("set_input_shape", ("a", (2, 3, 8, 8))),
        ("set_input_shape", ("b", (2, 3, 8, 8))),
        ("set_tensor_address", ("a",)),
        ("set_tensor_address", ("b",)),
        ("set_tensor_address", ("out",)),
        ("execute_async_v3", (1234,)),
    ]
    assert backend.output_shapes({"a": torch.zeros(3, 3, 8, 8)}) == {"out": (3, 3, 8, 8)}
    with pytest.raises(BackendError, match="optimization profile.*--max-batch"):
        backend.run({"a": torch.rand(5, 3, 8, 8), "b": torch.rand(5, 3, 8, 8)})


def test_open_backend_chooses_tensorrt_for_a_plan(tmp_path, fake_gpu, monkeypatch):
    trt = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    backend = open_backend(_plan(tmp_path), expected=("b", "a"), device="cpu")
    assert isinstance(backend, rt.TensorRTBackend) and backend.name == "tensorrt"


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"tensorrt": "10.12.0.36"}, r"built for TensorRT 10\.12\.0\.36 \(this machine has 10\.13\.0\.35\)"),
        ({"tensorrt_gpu": "Other GPU"}, r"built for the GPU Other GPU"),
        ({"tensorrt_compute_capability": "8.6"}, r"compute capability 8\.6; this machine has Fake GPU"),
    ],
)
def test_a_plan_for_another_gpu_or_tensorrt_says_to_rebuild_and_how(tmp_path, fake_gpu, changed, message):
    trt = FakeTensorRT()
    plan = _plan(tmp_path, {**RECORD, **changed})
    with pytest.raises(BackendError, match=message) as error:
        rt.TensorRTBackend(plan, device="cpu", trt=trt)
    assert f"rebuild it on this machine: python -m export tensorrt {tmp_path / 'target.onnx'} {plan}" in str(
        error.value
    )
    assert "deserialize_cuda_engine" not in trt.names()  # refused before TensorRT sees the file


def test_face_plans_use_the_targets_sidecar_and_its_rebuild_command(tmp_path, fake_gpu):
    face = _plan(tmp_path, {**RECORD, "tensorrt": "11.0.0"}, name="target.face.plan")
    assert rt.sidecar_of_plan(face) == tmp_path / "target.json"
    with pytest.raises(BackendError, match=r"export tensorrt \S*target\.onnx \S*target\.plan"):
        rt.TensorRTBackend(face, device="cpu", trt=FakeTensorRT())


def test_plan_without_a_build_record_or_corrupt_fails_clearly(tmp_path, fake_gpu):
    with pytest.raises(BackendError, match="no TensorRT build record.*rebuild it"):
        rt.TensorRTBackend(_plan(tmp_path, {}), device="cpu", trt=FakeTensorRT())
    with pytest.raises(BackendError, match="could not deserialize.*rebuild it"):
        rt.TensorRTBackend(_plan(tmp_path, data=b"CORRUPT"), device="cpu", trt=FakeTensorRT())


def test_versions_compare_as_numbers():
    assert rt.version_tuple("10.13.0.35") == (10, 13, 0, 35)
    assert rt.version_tuple("11.0.0rc1") == (11, 0, 0)
    assert rt.version_tuple("10.9") < rt.version_tuple("10.13")  # a string comparison gets this wrong
    with pytest.raises(ValueError):
        rt.version_tuple("dev")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_real_engine_matches_onnxruntime(tiny_face_engine, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'dance-live[gpu]')")
    import shutil

    from export.tensorrt import TENSORRT_VS_ONNXRUNTIME_ATOL, export_tensorrt
    from realtime.model.pipeline import Target

    for path in tiny_face_engine.parent.glob("tiny*"):
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    report = export_tensorrt(tmp_path / "tiny.onnx", tmp_path / "tiny.plan")
    assert report.tensorrt_vs_onnxruntime_error <= TENSORRT_VS_ONNXRUNTIME_ATOL["fp16"]
    target = Target.load(tmp_path / "tiny.plan", cuda_graph=True)
    assert target.device.type == "cuda" and target.face is not None
