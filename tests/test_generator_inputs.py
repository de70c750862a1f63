"""Adding a generator input end to end: declare it, produce it, train, export, run.

The only code this takes is the declaration below (and the config key that selects it): no file of the
project changes. That is the acceptance of the generator-input declaration (DESIGN.md, "Generator inputs").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared, standing_pose
from realtime.model.bundle import read_bundle
from realtime.model.inputs import (
    FrameContext,
    GeneratorInputs,
    InputRole,
    TensorSpec,
    declare_input,
    forget_input,
)
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.pose.skeleton import NUM_JOINTS

#: A dummy one-channel input: the stick figure's silhouette (where any limb is drawn).
SILHOUETTE = TensorSpec("silhouette", 1, InputRole.PER_FRAME, "test input: the stick figure's coverage")


def produce_silhouette(context: FrameContext) -> torch.Tensor:
    return context.stick_figure.amax(dim=1, keepdim=True)


@pytest.fixture
def silhouette_declared():
    declare_input(SILHOUETTE, produce_silhouette)
    yield SILHOUETTE
    forget_input(SILHOUETTE.name)


def test_a_declared_input_trains_exports_and_runs(silhouette_declared, tmp_path: Path) -> None:
    from export.onnx import export_onnx
    from train.checkpoint import load_generator
    from train.config import load_config
    from train.fit import fit

    data = make_tiny_prepared(tmp_path / "prepared")
    config = load_config(None, [*TINY_MODEL_OVERRIDES, "steps=2", "generator.extra_inputs=[silhouette]"])
    checkpoint = fit(data, tmp_path / "run", config)

    generator, _ = load_generator(checkpoint)
    assert generator.inputs.names == ("stick_figure", "previous_frame", "silhouette")
    assert generator.model[1].in_channels == 7  # sized from the declaration: 3 + 3 + 1

    report = export_onnx(checkpoint, tmp_path / "dummy.onnx")
    graph = onnx.load(str(report.onnx_path)).graph
    assert [i.name for i in graph.input] == ["stick_figure", "previous_frame", "silhouette"]
    bundle = read_bundle(report.onnx_path)
    assert bundle.generator_inputs == GeneratorInputs((*generator.inputs.inputs[:2], SILHOUETTE))

    joints = standing_pose(64, 64)
    confidence = np.ones(NUM_JOINTS, np.float32)
    frames = {}
    for engine in (report.onnx_path, report.onnx_path.with_suffix(".pt")):
        retargeter = Retargeter(Target.load(engine), live=False)
        retargeter.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
        frames[engine.suffix] = [
            retargeter.generate(PoseFrame(joints, confidence, t, (64, 64))) for t in (0, 1)
        ]
    assert frames[".onnx"][1].generated.shape == (64, 64, 3)
    for onnx_result, torch_result in zip(frames[".onnx"], frames[".pt"], strict=True):
        assert np.abs(onnx_result.generated.astype(int) - torch_result.generated.astype(int)).max() <= 1

    # The input is fed and used: a different silhouette changes the generated frame.
    target = Target.load(report.onnx_path)
    stick = torch.zeros(1, 3, 64, 64)
    stick[..., 20:40, 28:36] = 1.0
    inputs = {"stick_figure": stick, "previous_frame": torch.zeros_like(stick)}
    with_silhouette = target.generate({**inputs, "silhouette": stick[:, :1]}).clone()
    without = target.generate({**inputs, "silhouette": torch.zeros(1, 1, 64, 64)})
    assert not torch.equal(with_silhouette, without)


def test_an_undeclared_input_fails_with_the_declared_names() -> None:
    from train.config import load_config
    from train.models import generator_inputs

    config = load_config(None, ["generator.extra_inputs=[nothing_like_this]"])
    with pytest.raises(KeyError, match="declared: .*stick_figure"):
        generator_inputs(config.generator)


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a producer"):
        declare_input(TensorSpec("orphan", 1, InputRole.PER_FRAME))
    with pytest.raises(ValueError, match="declared already"):
        declare_input(TensorSpec("stick_figure", 1, InputRole.PER_FRAME), produce_silhouette)
    with pytest.raises(ValueError, match="state input"):
        GeneratorInputs((TensorSpec("state", 1, InputRole.STATE),))
    spec = GeneratorInputs.of(["stick_figure", "previous_frame"])
    assert GeneratorInputs.from_json(spec.to_json()) == spec and spec.in_channels == 6 and spec.temporal
