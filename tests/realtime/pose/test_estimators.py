"""Pose estimators in one table (realtime/catalog.py POSE_ESTIMATORS, realtime/pose/estimators.py): chosen by
name, recorded in the prepared data and the sidecar, and built by name by prepare, the pipeline and the
evaluation. A second entry (MediaPipe with other thresholds) is registered and followed end to end."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime.catalog import (
    DEFAULT_POSE_ESTIMATOR,
    MASK_SOURCE_NONE,
    POSE_ESTIMATORS,
    PoseEstimatorEntry,
    UnknownPoseEstimatorError,
    mask_source_names,
    pose_estimator_entry,
    pose_estimator_names,
    register_pose_estimator,
)
from realtime.pose.estimators import MediaPipePose, PoseEstimator, open_pose_estimator, pose_estimator_class
from realtime.pose.skeleton import NUM_JOINTS

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The second entry: MediaPipe with stricter thresholds than the default's 0.5 and 0.5.
STRICT = "mediapipe-strict"
STRICT_ENTRY = PoseEstimatorEntry(
    implementation="realtime.pose.estimators:MediaPipePose",
    options={"model_complexity": 1, "min_detection_confidence": 0.8, "min_tracking_confidence": 0.7},
    gives_mask=True,
    description="MediaPipe Pose with stricter thresholds (a test entry)",
)


@pytest.fixture
def strict():
    """``STRICT`` registered for one test."""
    register_pose_estimator(STRICT, STRICT_ENTRY)
    try:
        yield STRICT
    finally:
        POSE_ESTIMATORS.pop(STRICT, None)


@pytest.fixture
def mediapipe_calls(monkeypatch):
    """The keyword arguments of every ``mediapipe.solutions.pose.Pose`` built during the test (the real one
    is still built and run)."""
    solutions = pytest.importorskip("mediapipe").solutions.pose
    real = solutions.Pose
    calls: list[dict[str, object]] = []

    def recording_pose(**kwargs: object):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(solutions, "Pose", recording_pose)
    return calls


def thresholds(calls: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    """(detection threshold, tracking threshold, segmentation) of each MediaPipe graph built."""
    return [
        (c["min_detection_confidence"], c["min_tracking_confidence"], c["enable_segmentation"]) for c in calls
    ]


# -- the table --------------------------------------------------------------------------------------------


def test_the_table_is_light_and_mediapipe_is_its_default():
    heavy = ("numpy", "mediapipe", "torch", "av")
    probe = f"import sys, realtime.catalog\nprint([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
    assert DEFAULT_POSE_ESTIMATOR == "mediapipe" and pose_estimator_names()[0] == "mediapipe"
    assert pose_estimator_class(pose_estimator_entry("mediapipe")) is MediaPipePose
    assert mask_source_names() == ("mediapipe", MASK_SOURCE_NONE)


def test_register_adds_an_entry_and_never_replaces_one_silently(strict):
    assert pose_estimator_entry(STRICT) is STRICT_ENTRY
    assert pose_estimator_names() == ("mediapipe", STRICT)
    assert mask_source_names() == ("mediapipe", STRICT, MASK_SOURCE_NONE)
    with pytest.raises(ValueError, match="already registered"):
        register_pose_estimator(STRICT, STRICT_ENTRY)
    with pytest.raises(ValueError, match="already registered"):
        register_pose_estimator("mediapipe", STRICT_ENTRY)
    assert POSE_ESTIMATORS["mediapipe"] is not STRICT_ENTRY
    other = dataclasses.replace(STRICT_ENTRY, options={"min_detection_confidence": 0.9})
    register_pose_estimator(STRICT, other, replace=True)
    assert pose_estimator_entry(STRICT) is other
    for name in ("", "none", "has space", "a/b"):
        with pytest.raises(ValueError, match="use letters"):
            register_pose_estimator(name, STRICT_ENTRY)
    with pytest.raises(TypeError, match="PoseEstimatorEntry"):
        register_pose_estimator("x", {"implementation": "a:b"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:attribute"):
        PoseEstimatorEntry(implementation="realtime.pose.estimators.MediaPipePose")


def test_unknown_names_fail_with_the_known_names(tmp_path):
    with pytest.raises(UnknownPoseEstimatorError, match=r"unknown pose estimator 'nope'; known: mediapipe"):
        pose_estimator_entry("nope")
    with pytest.raises(ValueError, match=r"'nope'.*known: mediapipe"):
        open_pose_estimator("nope", video_mode=False)
    from train.prepare import prepare

    video = tmp_path / "never_read.mp4"  # the names are checked before the video is opened
    with pytest.raises(ValueError, match=r"'nope'.*known: mediapipe"):
        prepare(video, tmp_path / "out", pose_estimator="nope")
    with pytest.raises(ValueError, match=r"mask source 'nope'.*mediapipe, none"):
        prepare(video, tmp_path / "out", mask_source="nope")


def test_an_implementation_that_is_not_there_or_not_an_estimator_is_named():
    with pytest.raises(ImportError, match="has no 'Nope'"):
        pose_estimator_class(PoseEstimatorEntry("realtime.pose.estimators:Nope"))
    with pytest.raises(TypeError, match="not a PoseEstimator subclass"):
        pose_estimator_class(PoseEstimatorEntry("realtime.pose.skeleton:Joint"))


def test_a_mask_is_refused_by_an_estimator_that_gives_none(monkeypatch):
    monkeypatch.setitem(POSE_ESTIMATORS, "maskless", dataclasses.replace(STRICT_ENTRY, gives_mask=False))
    with pytest.raises(ValueError, match="'maskless' gives no person mask; estimators that do: mediapipe"):
        open_pose_estimator("maskless", video_mode=True, with_mask=True)
    assert "maskless" not in mask_source_names()


def test_the_interface_is_abstract_and_a_context_manager():
    with pytest.raises(TypeError):
        PoseEstimator()  # type: ignore[abstract]
    closed = []

    class Constant(PoseEstimator):
        def estimate(self, rgb, timestamp_ms=0.0):
            raise AssertionError("not called")

        def close(self):
            closed.append(True)

    with Constant() as estimator:
        assert isinstance(estimator, Constant)
    assert closed == [True]


# -- MediaPipe --------------------------------------------------------------------------------------------


def test_entry_options_reach_mediapipe(strict, mediapipe_calls):
    with open_pose_estimator(STRICT, video_mode=False) as estimator:
        assert isinstance(estimator, MediaPipePose)
        pose = estimator.estimate(np.zeros((48, 64, 3), np.uint8), 5.0)
        assert pose.is_empty and pose.image_size == (64, 48) and pose.timestamp_ms == 5.0
    with open_pose_estimator(video_mode=True, with_mask=True):
        pass
    assert mediapipe_calls[0] == {
        "static_image_mode": True, "model_complexity": 1, "smooth_landmarks": False,
        "enable_segmentation": False, "min_detection_confidence": 0.8, "min_tracking_confidence": 0.7,
    }  # fmt: skip
    # The default entry builds MediaPipe exactly as the hard-wired class did.
    assert mediapipe_calls[1] == {
        "static_image_mode": False, "model_complexity": 1, "smooth_landmarks": True,
        "enable_segmentation": True, "min_detection_confidence": 0.5, "min_tracking_confidence": 0.5,
    }  # fmt: skip


def test_mediapipe_refuses_options_out_of_range_and_frames_after_close():
    with pytest.raises(ValueError, match="model_complexity is 0, 1 or 2"):
        MediaPipePose(model_complexity=3)
    with pytest.raises(ValueError, match="min_detection_confidence must be in"):
        MediaPipePose(min_detection_confidence=1.5)
    pytest.importorskip("mediapipe")
    estimator = MediaPipePose(video_mode=False)
    with pytest.raises(ValueError, match="uint8"):
        estimator.estimate(np.zeros((8, 8, 3), np.float32))
    estimator.close()
    estimator.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        estimator.estimate(np.zeros((8, 8, 3), np.uint8))


# -- recorded: prepared data, checkpoint, sidecar ------------------------------------------------------------


def test_meta_and_sidecars_written_before_the_field_read_as_mediapipe(tiny_prepared, tiny_engine):
    from realtime.model.bundle import TargetBundle, read_bundle
    from train.dataset import PreparedMeta, load_prepared

    meta = json.loads((tiny_prepared / "meta.json").read_text())
    del meta["pose_estimator"], meta["mask_source"]
    old = PreparedMeta.from_json(meta)
    assert (old.pose_estimator, old.mask_source) == ("mediapipe", "mediapipe")
    assert load_prepared(tiny_prepared).meta == old
    sidecar = read_bundle(tiny_engine).to_json()
    assert sidecar["pose_estimator"] == "mediapipe"
    del sidecar["pose_estimator"]
    assert TargetBundle.from_json(sidecar).pose_estimator == "mediapipe"


def test_the_checkpoint_carries_the_datas_estimator_into_the_sidecar(tiny_engine):
    from train.checkpoint import bundle_for_checkpoint, load_checkpoint

    checkpoint = load_checkpoint(tiny_engine.parent / "run" / "checkpoint.pt")
    assert bundle_for_checkpoint(checkpoint, "tiny").pose_estimator == "mediapipe"
    strict_data = dataclasses.replace(checkpoint.data_meta, pose_estimator=STRICT)
    bundle = bundle_for_checkpoint(dataclasses.replace(checkpoint, data_meta=strict_data), "tiny")
    assert bundle.pose_estimator == STRICT  # recorded even where this process does not know it


def test_prepare_estimates_with_the_named_entry_and_records_it(tmp_path, strict, mediapipe_calls, caplog):
    from conftest import shared_video
    from train.dataset import load_prepared
    from train.prepare import prepare

    video = shared_video("target_fashion.mp4")
    meta = prepare(
        video, tmp_path / "strict", canvas_width=64, canvas_height=64, max_frames=6, pose_estimator=STRICT
    )
    assert (meta.pose_estimator, meta.mask_source) == (STRICT, "mediapipe")
    assert load_prepared(tmp_path / "strict").meta == meta
    # Pass 1: the strict entry; pass 2: the strict entry for poses and MediaPipe's default for masks.
    assert thresholds(mediapipe_calls) == [(0.8, 0.7, False), (0.8, 0.7, False), (0.5, 0.5, True)]
    assert np.load(tmp_path / "strict" / "masks.npy").max() > 0

    mediapipe_calls.clear()
    with caplog.at_level(logging.WARNING, logger="train.prepare"):
        meta = prepare(
            video, tmp_path / "no_masks", canvas_width=64, canvas_height=64, max_frames=6,
            pose_estimator=STRICT, mask_source=MASK_SOURCE_NONE,
        )  # fmt: skip
    assert (meta.pose_estimator, meta.mask_source) == (STRICT, "none")
    assert thresholds(mediapipe_calls) == [(0.8, 0.7, False), (0.8, 0.7, False)]
    assert np.load(tmp_path / "no_masks" / "masks.npy").max() == 0
    assert "all zeros" in caplog.text and "body-region metrics need another mask source" in caplog.text

    mediapipe_calls.clear()
    meta = prepare(
        video, tmp_path / "one_run", canvas_width=64, canvas_height=64, max_frames=6, pose_estimator=STRICT,
        mask_source=STRICT,
    )  # fmt: skip
    assert meta.mask_source == STRICT
    assert thresholds(mediapipe_calls) == [(0.8, 0.7, False), (0.8, 0.7, True)]  # poses and masks: one run


# -- used: the pipeline and the evaluation ----------------------------------------------------------------


def _engine_with_estimator(tiny_engine: Path, folder: Path, name: str) -> Path:
    """A copy of the tiny engine whose sidecar names the pose estimator ``name``."""
    folder.mkdir()
    engine = Path(shutil.copy(tiny_engine, folder / tiny_engine.name))
    sidecar = json.loads(tiny_engine.with_suffix(".json").read_text())
    sidecar["pose_estimator"] = name
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    return engine


def test_the_pipeline_builds_the_estimator_the_sidecar_names(tiny_engine, tmp_path, strict, mediapipe_calls):
    from conftest import shared_video
    from realtime.model.pipeline import Retargeter, Target
    from realtime.offline.retarget import retarget_frames

    target = Target.load(_engine_with_estimator(tiny_engine, tmp_path / "strict", STRICT))
    assert target.bundle.pose_estimator == STRICT
    retargeter = Retargeter(target, live=True)  # live: built at once
    try:
        assert retargeter.pose_estimator == STRICT
        assert thresholds(mediapipe_calls) == [(0.8, 0.7, False)]
        assert mediapipe_calls[0]["static_image_mode"] is False
        result = retargeter.process(np.zeros((64, 48, 3), np.uint8), 0.0)
        assert result.generated.shape == (*target.canvas_size[::-1], 3)
    finally:
        retargeter.close()
    mediapipe_calls.clear()
    frames = list(retarget_frames(target, shared_video("source_dance.mp4"), max_frames=3, median_window=1))
    assert len(frames) == 3 and frames[0].source_poses.frames_with_person >= 1
    assert thresholds(mediapipe_calls) == [(0.8, 0.7, False)]  # offline: one tracking estimator


def test_a_sidecar_naming_an_unknown_estimator_is_a_clear_error(tiny_engine, tmp_path):
    from conftest import shared_video
    from realtime.model.pipeline import Retargeter, Target
    from realtime.offline.retarget import retarget_frames

    target = Target.load(_engine_with_estimator(tiny_engine, tmp_path / "unknown", "openpose-plugin"))
    message = r"pose estimator 'openpose-plugin', which this process does not know \(known: mediapipe\)"
    for live in (True, False):
        with pytest.raises(UnknownPoseEstimatorError, match=message):
            Retargeter(target, live=live)
    with pytest.raises(ValueError, match=message):
        next(retarget_frames(target, shared_video("source_dance.mp4"), max_frames=2))


def test_the_evaluation_judges_with_the_targets_estimator(tiny_engine, tiny_prepared, tmp_path, strict):
    from realtime.model.pipeline import Target
    from train.evaluate import evaluate_model
    from train.metrics import FrameEvaluator

    target = Target.load(_engine_with_estimator(tiny_engine, tmp_path / "strict", STRICT))
    opened: list[tuple[str, bool]] = []

    def recording_open(name: str = DEFAULT_POSE_ESTIMATOR, *, video_mode: bool, with_mask: bool = False):
        opened.append((name, video_mode))
        return open_pose_estimator(name, video_mode=video_mode, with_mask=with_mask)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("realtime.pose.estimators.open_pose_estimator", recording_open)
        evaluation = evaluate_model(target, tiny_prepared)
    assert opened == [(STRICT, False)]
    assert evaluation.result.pose.num_frames == 1
    frame = np.zeros((32, 32, 3), np.uint8)
    joints, confidence = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS)
    with FrameEvaluator(pose_estimator="nope") as evaluator:
        with pytest.raises(UnknownPoseEstimatorError, match="'nope'; known: mediapipe"):
            evaluator.add(frame, frame, joints, confidence)
