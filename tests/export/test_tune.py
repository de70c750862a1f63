"""Choosing a CPU engine's ONNX Runtime settings by measurement (export.tune, issue 19 item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.tune import Candidate, _choose, reference_inputs, tune_cpu_engine
from tests.conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared


def test_int8_is_kept_only_where_it_is_faster_at_kept_quality() -> None:
    fp32 = [Candidate(1, "fp32", 10.0, 0.0), Candidate(2, "fp32", 12.0, 0.0)]
    assert _choose(fp32, 0.05, 1.0) == fp32[0]  # the fastest fp32
    faster = Candidate(1, "int8", 8.0, 0.5)
    assert _choose([*fp32, faster], 0.05, 1.0) == faster
    assert _choose([*fp32, Candidate(1, "int8", 9.8, 0.5)], 0.05, 1.0) == fp32[0]  # 2% is not enough
    assert _choose([*fp32, Candidate(1, "int8", 5.0, 3.0)], 0.05, 1.0) == fp32[0]  # quality lost
    # Faster than fp32 at its own thread count, but not than the best fp32 setting: not kept.
    assert _choose([*fp32, Candidate(2, "int8", 10.5, 0.1)], 0.05, 1.0) == fp32[0]


def test_a_target_is_timed_on_its_own_reference_poses(tmp_path: Path) -> None:
    from export.onnx import export_onnx
    from realtime.model.pipeline import Target
    from train.config import load_config
    from train.fit import fit

    data = make_tiny_prepared(tmp_path / "prepared", num_frames=12, width=64, height=64)
    overrides = [*TINY_MODEL_OVERRIDES, "steps=1", "generator.extra_inputs=[appearance_prior]", "threads=1"]
    engine = export_onnx(
        fit(data, tmp_path / "run", load_config(None, overrides)), tmp_path / "t.onnx"
    ).onnx_path
    target = Target.load(engine, device="cpu", threads=1)

    samples = reference_inputs(target, count=3)
    assert len(samples) == 3 and list(samples[0]) == list(target.bundle.inputs)
    prior = samples[0]["appearance_prior"]
    assert prior.shape == (1, 4, 64, 64) and float(prior[:, 3].max()) > 0.5  # the reference parts land
    assert not np.array_equal(samples[0]["stick_figure"], samples[1]["stick_figure"])

    report = tune_cpu_engine(target, engine, threads=(1,), runs=2)
    kinds = [(c.threads, c.precision) for c in report.candidates]
    assert kinds == [(1, "fp32"), (1, "int8")]
    assert report.chosen in report.candidates and report.candidates[0].mean_abs_levels == 0.0
    assert all(c.median_ms > 0 for c in report.candidates)
    assert (report.int8_path is not None) == (report.chosen.precision == "int8")
    assert sorted(p.name for p in tmp_path.glob("t.*onnx")) == (
        ["t.int8.onnx", "t.onnx"] if report.int8_path else ["t.onnx"]
    )
    assert "| 1 | fp32 |" in report.table()


def test_a_target_without_reference_poses_is_timed_on_its_neutral_stand(tiny_engine: Path) -> None:
    """A generator without the appearance prior (like the bundled mannequin) has no reference poses: its
    inputs are its neutral standing pose at depths across its floor, and the export's tuning runs."""
    from realtime.model.pipeline import Target

    target = Target.load(tiny_engine, device="cpu", threads=1)
    assert "reference_keypoints" not in target.per_target
    samples = reference_inputs(target, count=4)
    figures = [s["stick_figure"] for s in samples]
    assert all(f.shape[-2:] == (64, 64) and float(f.max()) > 0.5 for f in figures)  # a figure is drawn
    assert not np.array_equal(figures[0], figures[1])  # other depths, other jitter
    report = tune_cpu_engine(target, tiny_engine, threads=(1,), runs=2, try_int8=False)
    assert [(c.threads, c.precision) for c in report.candidates] == [(1, "fp32")]
