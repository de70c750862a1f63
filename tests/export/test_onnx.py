import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export.cli import onnx_main as main
from export.onnx import ExportError, export_onnx
from realtime.model.bundle import BundleError, TargetBundle, read_bundle


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


def test_local_and_face_export_writes_two_verified_models(tiny_face_engine):
    from train.checkpoint import load_face_generator, load_generator
    from train.models import LocalEnhancer

    bundle = read_bundle(tiny_face_engine)
    face_path = tiny_face_engine.parent / "tiny.face.onnx"
    assert bundle.face_model == face_path.name and face_path.is_file()
    session = ort.InferenceSession(str(face_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["face_stick_figure", "face_frame"]
    assert [o.name for o in session.get_outputs()] == ["face_residual"]
    # Both graphs match PyTorch within the export tolerance, at batch 3 too.
    checkpoint = tiny_face_engine.parent / "run" / "checkpoint.pt"
    generator, _ = load_generator(checkpoint)
    face, _ = load_face_generator(checkpoint)
    assert isinstance(generator, LocalEnhancer) and face is not None
    rng = np.random.default_rng(4)
    stick, previous = rng.random((2, 3, 3, 64, 64), dtype=np.float32)
    main = ort.InferenceSession(str(tiny_face_engine), providers=["CPUExecutionProvider"])
    (frame,) = main.run(["frame"], {"stick_figure": stick, "previous_frame": previous})
    with torch.no_grad():
        expected = generator(torch.from_numpy(stick), torch.from_numpy(previous)).numpy()
    assert np.abs(frame - expected).max() <= 1e-4
    crops, frames = rng.random((2, 3, 3, 12, 12), dtype=np.float32)
    (residual,) = session.run(["face_residual"], {"face_stick_figure": crops, "face_frame": frames})
    with torch.no_grad():
        expected = face(torch.from_numpy(crops), torch.from_numpy(frames)).numpy()
    assert np.abs(residual - expected).max() <= 1e-4 and np.abs(residual).max() > 0


def test_cli_reports_the_face_model(tiny_face_engine, tmp_path, capsys):
    checkpoint = tiny_face_engine.parent / "run" / "checkpoint.pt"
    assert main([str(checkpoint), str(tmp_path / "again.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "wrote the face model" in printed and (tmp_path / "again.face.onnx").is_file()
    assert read_bundle(tmp_path / "again.onnx").face_model == "again.face.onnx"


def test_every_stage_exports(tiny_face_engine, tmp_path):
    """The global stage (trained at half the canvas) and the local stage export on their own too."""
    run = tiny_face_engine.parent / "run"
    for stage in ("global", "local"):
        report = export_onnx(run / stage / "checkpoint.pt", tmp_path / f"{stage}.onnx")
        assert report.face_onnx_path is None and report.bundle.face_model is None
        assert report.max_abs_error <= 1e-4 and report.bundle.canvas_width == 64
