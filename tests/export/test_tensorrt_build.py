"""The fp16 ONNX conversion (run here in ONNX Runtime) and the TensorRT build's call sequence against a
recording stand-in ``tensorrt`` module."""

import json
import shutil
import sys

import numpy as np
import onnx
import pytest
from fake_tensorrt import FOREIGN_CACHE, FakeTensorRT
from onnx import TensorProto, helper, numpy_helper

import export.tensorrt as et
import realtime.model.tensorrt_backend as rt
from export.cli import tensorrt_main
from realtime.model.backends import BackendError


def test_fp16_graph_keeps_instance_norm_and_io_in_fp32_and_matches_fp32(tiny_face_engine, tmp_path):
    for name in ("tiny.onnx", "tiny.face.onnx"):
        dst = tmp_path / name.replace(".onnx", ".fp16.onnx")
        error = et.write_fp16_onnx(tiny_face_engine.parent / name, dst)
        assert error <= et.FP16_VS_FP32_ATOL and error > 0  # it did run in fp16
        model = onnx.load(str(dst))
        graph = model.graph
        assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (*graph.input, *graph.output))
        assert {i.data_type for i in graph.initializer} == {TensorProto.FLOAT16}  # conv weights
        typed = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in (*typed.graph.value_info, *graph.input)}
        constants = {n.output[0]: n.attribute[0].t.data_type for n in graph.node if n.op_type == "Constant"}
        norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
        convs = [n for n in graph.node if n.op_type == "Conv"]
        assert norms and convs
        for node in norms:
            assert types[node.input[0]] == TensorProto.FLOAT and types[node.output[0]] == TensorProto.FLOAT
            assert constants[node.input[1]] == constants[node.input[2]] == TensorProto.FLOAT
        assert all(types[n.input[0]] == TensorProto.FLOAT16 for n in convs)


def test_fp16_graph_beyond_its_tolerance_writes_nothing(tiny_engine, tmp_path):
    dst = tmp_path / "x.fp16.onnx"
    with pytest.raises(et.TensorRTExportError, match="differs from fp32"):
        et.write_fp16_onnx(tiny_engine, dst, atol=0.0)
    assert not dst.exists() and not list(tmp_path.glob("*.tmp"))


def test_a_constant_shared_by_fp32_and_fp16_inputs_is_refused():
    scale = numpy_helper.from_array(np.ones(3, np.float32), "scale")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["n"]),
            helper.make_node("Mul", ["n", "scale"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        [scale, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(et.TensorRTExportError, match="'scale' feeds both fp32 and fp16"):
        et.convert_to_fp16(model)


@pytest.mark.parametrize(
    ("version", "strongly_typed_flag", "flags"),
    [("10.13.0.35", True, 1 << 1), ("11.0.0.1", True, 1 << 0), ("12.0.0", False, 0)],
    ids=["tensorrt10", "tensorrt11", "flag-gone"],
)
def test_build_call_sequence_profile_and_timing_cache(
    tiny_engine, tmp_path, version, strongly_typed_flag, flags
):
    trt = FakeTensorRT(version, strongly_typed_flag=strongly_typed_flag)
    cache = tmp_path / "cache.bin"
    plan = et.build_plan(tiny_engine, tmp_path / "t.plan", max_batch=3, timing_cache=cache, trt=trt)
    assert plan.read_bytes() == b"PLAN" and cache.read_bytes() == b"+timings"
    # TensorRT 10: STRONGLY_TYPED is 1 (EXPLICIT_BATCH 0); TensorRT 11: 0 (deprecated, always on); later: gone
    assert trt.calls[trt.names().index("create_network")] == ("create_network", (flags,))
    assert trt.names()[1:] == [
        "create_network", "parse_from_file", "set_shape", "set_shape", "add_optimization_profile",
        "create_timing_cache", "set_timing_cache", "build_serialized_network",
    ]  # fmt: skip
    shapes = [args for name, args in trt.calls if name == "set_shape"]
    assert shapes == [
        ("stick_figure", (1, 3, 64, 64), (1, 3, 64, 64), (3, 3, 64, 64)),
        ("previous_frame", (1, 3, 64, 64), (1, 3, 64, 64), (3, 3, 64, 64)),
    ]
    assert ("set_timing_cache", (b"", False)) in trt.calls
    trt.calls.clear()
    et.build_plan(tiny_engine, tmp_path / "t2.plan", timing_cache=cache, trt=trt)  # the next build reuses it
    assert ("create_timing_cache", (b"+timings",)) in trt.calls and cache.read_bytes() == b"+timings+timings"


def test_a_timing_cache_from_another_gpu_is_replaced_and_the_plan_written(tiny_engine, tmp_path):
    """Issue 20, defect 2: ``set_timing_cache`` returns False for a foreign cache and sets nothing; the build
    must not then fail on ``get_timing_cache()`` being None after the whole build, before the plan."""
    trt = FakeTensorRT()
    cache = tmp_path / "cache.bin"
    cache.write_bytes(FOREIGN_CACHE + b" from an A100")
    plan = et.build_plan(tiny_engine, tmp_path / "t.plan", timing_cache=cache, trt=trt)
    assert plan.read_bytes() == b"PLAN"
    sets = [args for name, args in trt.calls if name == "set_timing_cache"]
    assert sets == [(FOREIGN_CACHE + b" from an A100", False), (b"", False)]  # refused, then a new one
    assert cache.read_bytes() == b"+timings"  # this machine's cache replaces the foreign one


def test_a_build_without_a_cache_to_write_back_keeps_the_plan(tiny_engine, tmp_path, monkeypatch, caplog):
    trt = FakeTensorRT()
    cache = tmp_path / "cache.bin"
    cache.write_bytes(b"old")
    real_builder = trt.Builder

    def builder(logger):
        b = real_builder(logger)
        make_config = b.create_builder_config

        def config():
            c = make_config()
            c.get_timing_cache = lambda: None  # as TensorRT does when no cache is set
            return c

        b.create_builder_config = config
        return b

    trt.Builder = builder
    plan = et.build_plan(tiny_engine, tmp_path / "t.plan", timing_cache=cache, trt=trt)
    assert plan.read_bytes() == b"PLAN" and cache.read_bytes() == b"old"
    assert "kept no cache" in caplog.text


def test_the_stand_in_checks_flags_and_the_profile_against_the_network(tiny_engine):
    trt = FakeTensorRT("10.13.0.35")
    builder = trt.Builder(None)
    with pytest.raises(ValueError, match="undefined flag bits"):
        builder.create_network(1 << 7)
    network = builder.create_network(1 << 1)
    trt.OnnxParser(network, None).parse_from_file(str(tiny_engine))
    config, profile = builder.create_builder_config(), builder.create_optimization_profile()
    profile.set_shape("stick_figure", (1, 3, 64, 64), (1, 3, 64, 64), (2, 3, 64, 64))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is None  # previous_frame has no profile
    profile.set_shape("previous_frame", (1, 3, 64), (1, 3, 64), (2, 3, 64))
    assert builder.build_serialized_network(network, config) is None  # wrong rank
    profile.set_shape("previous_frame", (1, 3, 64, 64), (1, 3, 64, 64), (2, 3, 64, 64))
    assert builder.build_serialized_network(network, config) == b"PLAN"
    assert config.get_timing_cache() is None  # none set


def test_build_failures_are_reported(tiny_engine, tmp_path):
    trt = FakeTensorRT()
    trt.parse_ok = False
    with pytest.raises(et.TensorRTExportError, match=r"cannot parse .*In node 3 \(Conv\): unsupported"):
        et.build_plan(tiny_engine, tmp_path / "t.plan", trt=trt)
    trt.parse_ok, trt.build_result = True, None
    with pytest.raises(et.TensorRTExportError, match="could not build"):
        et.build_plan(tiny_engine, tmp_path / "t.plan", trt=trt)
    assert not (tmp_path / "t.plan").exists()


def test_export_builds_both_plans_and_records_the_build_in_the_sidecar(
    tiny_face_engine, tmp_path, monkeypatch
):
    for path in tiny_face_engine.parent.glob("tiny*"):
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(rt, "cuda_device_info", lambda device: ("Fake GPU", (9, 0)))
    verified = []
    monkeypatch.setattr(
        et, "verify_plan", lambda plan, src, record, atol, trt=None: verified.append(plan) or 0.01
    )
    trt = FakeTensorRT()
    report = et.export_tensorrt(tmp_path / "tiny.onnx", tmp_path / "tiny.plan", trt=trt)
    assert verified == [tmp_path / "tiny.plan", tmp_path / "tiny.face.plan"]
    assert report.face_plan_path == tmp_path / "tiny.face.plan" and report.face_fp16_vs_fp32_error is not None
    assert (tmp_path / "tiny.fp16.onnx").is_file() and (tmp_path / et.TIMING_CACHE_NAME).is_file()
    versions = json.loads((tmp_path / "tiny.json").read_text())["versions"]
    assert {k: versions[k] for k in rt.PLAN_RECORD_KEYS} == {
        "tensorrt": "10.13.0.35", "tensorrt_gpu": "Fake GPU", "tensorrt_compute_capability": "9.0",
        "tensorrt_precision": "fp16",
    }  # fmt: skip
    assert versions["torch"]  # the export's own versions are kept
    face_plan = tmp_path / "tiny.face.plan"
    here = {"tensorrt_version": "10.13.0.35", "gpu_name": "Fake GPU", "compute_capability": (9, 0)}
    rt.check_plan_record(rt.read_plan_record(face_plan), face_plan, **here)


def test_cli_without_tensorrt_says_what_to_install(tiny_engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert tensorrt_main([str(tiny_engine), str(tiny_engine.with_suffix(".plan"))]) == 2
    assert "pip install 'dance-live[gpu]'" in capsys.readouterr().err
    with pytest.raises(BackendError):
        et.build_plan(tiny_engine, tmp_path / "x.plan")
    with pytest.raises(et.TensorRTExportError, match="one stem"):
        et.export_tensorrt(tiny_engine, tmp_path / "other.plan", trt=FakeTensorRT())
