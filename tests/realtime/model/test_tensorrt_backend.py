"""The TensorRT backend: its call sequence and its errors against a stand-in ``tensorrt`` module (this machine
has neither TensorRT nor a GPU), and a real engine where both exist."""

import json
import subprocess
import sys

import pytest
import torch
from fake_tensorrt import FakeCuda, FakeTensorRT

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
    """A CUDA device as far as the backend can tell: a name, a compute capability, streams and graphs
    (PyTorch's current stream is the legacy default stream, handle 0, as in a plain PyTorch program)."""
    monkeypatch.setattr(rt, "cuda_device_info", lambda device: ("Fake GPU", (9, 0)))
    cuda = FakeCuda(current=0)
    monkeypatch.setattr(rt, "CUDA_API", cuda)
    return cuda


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


def test_run_binds_the_tensors_and_enqueues_on_its_own_stream_joined_to_pytorchs(tmp_path, fake_gpu):
    trt = FakeTensorRT()
    backend = rt.TensorRTBackend(_plan(tmp_path), device="cpu", trt=trt)
    assert backend.input_names == ("a", "b") and backend.output_names == ("out",)
    assert trt.names()[-2:] == ["deserialize_cuda_engine", "create_execution_context"]
    assert trt.calls[-2] == ("deserialize_cuda_engine", (b"PLAN",))
    a, b = rt.aligned_empty((2, 3, 8, 8), torch.device("cpu")), rt.aligned_empty((2, 3, 8, 8), "cpu")
    a.copy_(torch.rand(2, 3, 8, 8))
    b.copy_(torch.rand(2, 3, 8, 8))
    out = rt.aligned_empty((2, 3, 8, 8), torch.device("cpu")).fill_(-1.0)
    trt.calls.clear()
    fake_gpu.log.clear()
    got = backend.run({"a": a, "b": b}, out={"out": out})["out"]
    assert got is out
    torch.testing.assert_close(out, a + b)  # the engine read and wrote exactly the bound memory
    (stream,) = {handle for handle in trt.streams}
    assert trt.calls == [
        ("set_input_shape", ("a", (2, 3, 8, 8))),
        ("set_input_shape", ("b", (2, 3, 8, 8))),
        ("set_tensor_address", ("a",)),
        ("set_tensor_address", ("b",)),
        ("set_tensor_address", ("out",)),
        ("execute_async_v3", (stream,)),
    ]
    # Issue 20, defect 4: never the legacy default stream (0), and ordered with PyTorch's both ways
    assert stream != 0 and stream == backend._stream.cuda_stream
    assert fake_gpu.log == [("wait", stream, 0), ("execute", 0, stream), ("wait", 0, stream)]
    assert backend.output_shapes({"a": torch.zeros(3, 3, 8, 8)}) == {"out": (3, 3, 8, 8)}
    with pytest.raises(BackendError, match="optimization profile.*--max-batch"):
        backend.run({"a": torch.rand(5, 3, 8, 8), "b": torch.rand(5, 3, 8, 8)})


def _offset_view(shape, offset_floats=1):
    """A contiguous tensor of ``shape`` whose address is 4 bytes past a 256-byte boundary."""
    raw = rt.aligned_empty((int(torch.tensor(shape).prod()) + 64,), torch.device("cpu"))
    return raw[offset_floats : offset_floats + int(torch.tensor(shape).prod())].view(shape)


def test_misaligned_inputs_and_outputs_go_through_aligned_copies(tmp_path, fake_gpu):
    """Issue 20, defect 6: TensorRT refuses addresses that are not 256-byte aligned (the stand-in returns
    False, as ``set_tensor_address`` does); an offset view is staged through an aligned buffer."""
    trt = FakeTensorRT()
    backend = rt.TensorRTBackend(_plan(tmp_path), device="cpu", trt=trt)
    a, b, out = _offset_view((1, 3, 8, 8)), _offset_view((1, 3, 8, 8)), _offset_view((1, 3, 8, 8))
    assert a.is_contiguous() and not rt.is_aligned(a) and not rt.is_aligned(out)
    a.copy_(torch.rand(1, 3, 8, 8))
    b.copy_(torch.rand(1, 3, 8, 8))
    got = backend.run({"a": a, "b": b}, out={"out": out})["out"]
    assert got is out
    torch.testing.assert_close(out, a + b)  # the result came back into the caller's offset view
    assert all(address % 256 == 0 for context in trt.contexts for address in context.addresses.values())
    b.add_(1.0)  # the staging buffers are refreshed on every run
    backend.run({"a": a, "b": b}, out={"out": out})
    torch.testing.assert_close(out, a + b)


def test_the_stand_in_refuses_what_tensorrt_refuses(tmp_path, fake_gpu):
    engine = FakeTensorRT().Runtime(None).deserialize_cuda_engine(b"PLAN")
    context = engine.create_execution_context()
    assert not context.set_tensor_address("a", 256 + 4)  # misaligned
    assert not context.set_tensor_address("nope", 256)  # not an I/O tensor of the engine
    assert not context.set_input_shape("out", (1, 3, 8, 8))  # an output
    assert not context.set_input_shape("a", (1, 3, 8))  # another rank
    assert not context.set_input_shape("a", (1, 3, 8, 9))  # another canvas
    assert not context.execute_async_v3(1000)  # nothing bound


def test_cuda_graphs_capture_each_shape_on_its_own_context_and_stream(tmp_path, fake_gpu):
    """Issue 20, defect 5: one execution context per captured shape (a replay must not find another shape's
    bindings on its context), the warm-up and the capture on the backend's stream, then replays only."""
    trt = FakeTensorRT()
    backend = rt.TensorRTBackend(_plan(tmp_path), device="cpu", cuda_graph=True, trt=trt)
    stream = backend._stream.cuda_stream
    results = {}
    for batch in (1, 2, 1, 2):
        a, b = torch.rand(batch, 3, 8, 8), torch.rand(batch, 3, 8, 8)
        fake_gpu.log.clear()
        got = backend.run({"a": a, "b": b})["out"]
        results.setdefault(batch, []).append(list(fake_gpu.log))
        if len(results[batch]) == 1:  # captured: the graph's buffers hold the warm-up's result
            torch.testing.assert_close(got, a + b)
    assert [c.number for c in trt.contexts] == [0, 1, 2]  # the plain context, then one per shape
    assert results[1][0] == [
        ("wait", stream, 0), ("execute", 1, stream), ("capture_begin", 0, stream), ("execute", 1, stream),
        ("capture_end", 0), ("replay", 0), ("wait", 0, stream),
    ]  # fmt: skip
    assert results[2][0][1:5] == [
        ("execute", 2, stream),
        ("capture_begin", 1, stream),
        ("execute", 2, stream),
        ("capture_end", 1),
    ]
    assert results[1][1] == [("wait", stream, 0), ("replay", 0), ("wait", 0, stream)]
    assert results[2][1] == [("wait", stream, 0), ("replay", 1), ("wait", 0, stream)]
    assert trt.contexts[1].shapes["a"] == (1, 3, 8, 8) and trt.contexts[2].shapes["a"] == (2, 3, 8, 8)
    assert 0 not in trt.streams


def test_graph_capture_is_thread_local_on_the_given_stream(monkeypatch):
    """Issue 20, defect 5: ``capture_error_mode="thread_local"``, so other server threads' CUDA calls during
    a capture neither break it nor are refused."""
    seen = {}
    monkeypatch.setattr(torch.cuda, "graph", lambda graph, **kwargs: seen.update(kwargs) or "ctx")
    assert rt.TorchCuda().capture("graph", "stream") == "ctx"
    assert seen == {"stream": "stream", "capture_error_mode": "thread_local"}


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
