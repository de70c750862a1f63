import json

import numpy as np
import onnxruntime as ort
import pytest

from export.onnx import ExportError, export_onnx, main
from realtime.bundle import BundleError, TargetBundle, read_bundle


def test_tiny_export_writes_a_verified_engine_and_its_sidecar(tiny_engine, tmp_path):
    bundle = read_bundle(tiny_engine)
    assert (bundle.canvas_width, bundle.canvas_height) == (64, 64)
    assert bundle.temporal and bundle.checkpoint_step == 1 and len(bundle.checkpoint_sha256) == 64
    assert set(bundle.versions) >= {"torch", "onnx", "onnxruntime", "mediapipe"}
    session = ort.InferenceSession(str(tiny_engine), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["stick_figure", "previous_frame"]
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)  # dynamic batch axis
    (out,) = session.run(["frame"], {"stick_figure": x, "previous_frame": x})
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    assert TargetBundle.from_json(json.loads(tiny_engine.with_suffix(".json").read_text())) == bundle


def test_cli_prints_the_maximum_error(tiny_engine, tmp_path, capsys):
    checkpoint = tiny_engine.parent / "run" / "checkpoint.pt"
    assert main([str(checkpoint), str(tmp_path / "again.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - torch| =" in printed
    error = float(printed.split("max |onnxruntime - torch| = ")[1].split()[0])
    assert 0 <= error <= 1e-4


def test_export_refuses_bad_inputs(tiny_engine, tmp_path, capsys):
    checkpoint = tiny_engine.parent / "run" / "checkpoint.pt"
    with pytest.raises(ExportError, match=".onnx"):
        export_onnx(checkpoint, tmp_path / "x.plan")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main([str(corrupt), str(tmp_path / "y.onnx")]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "y.onnx").exists()


def test_sidecar_errors_are_clear(tiny_engine, tmp_path):
    engine = tmp_path / "lonely.onnx"
    engine.write_bytes(tiny_engine.read_bytes())
    with pytest.raises(BundleError, match="no sidecar"):
        read_bundle(engine)
    engine.with_suffix(".json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        read_bundle(engine)
    data = json.loads(tiny_engine.with_suffix(".json").read_text())
    data["format_version"] = 99
    engine.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="format version"):
        read_bundle(engine)
