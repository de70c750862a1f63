"""train.metrics: known answers for every measure, with a stand-in pose estimator and with MediaPipe."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import real_video, standing_pose
from realtime.pose.estimators import MediaPipePose, PoseFrame
from realtime.pose.skeleton import LIMB_INDEX, NUM_JOINTS, NUM_LIMBS, Joint
from train.metrics import (
    ARM_JOINTS,
    BODY_LIMBS,
    BODY_MARGIN_FRAC,
    MIRRORED_JOINTS,
    PSNR_MAX_DB,
    TABLE_COLUMNS,
    EvaluationResult,
    FrameEvaluator,
    LimbAgreementEvaluator,
    body_crop_slices,
    evaluate_frames,
    face_crop_slices,
    find_person_box,
    frame_change_levels,
    is_still,
    json_safe,
    limb_agreement,
    limb_direction_errors_deg,
    markdown_table,
    present_joints,
    psnr_db,
    ssim,
)

H = W = 64


class FakeEstimator:
    """Returns the given poses in order, one per call."""

    def __init__(self, poses: list[PoseFrame]) -> None:
        self.poses = list(poses)
        self.frames: list[np.ndarray] = []

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        self.frames.append(rgb)
        return self.poses[len(self.frames) - 1]


def textured(seed: int = 0, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """A smooth random uint8 (H, W, 3) image."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (shape[0] // 4, shape[1] // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((shape[1], shape[0]), Image.Resampling.BICUBIC))


def pose(joints: np.ndarray, confidence: float | np.ndarray = 1.0) -> PoseFrame:
    conf = np.broadcast_to(np.asarray(confidence, np.float32), (NUM_JOINTS,)).copy()
    return PoseFrame(joints.astype(np.float32), conf, 0.0, (W, H))


def sequence(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Driving joints (n, J, 2) standing still and full confidence (n, J)."""
    joints = np.stack([standing_pose(W, H)] * n)
    return joints, np.ones((n, NUM_JOINTS), np.float32)


# -- SSIM, PSNR ----------------------------------------------------------------------------------------------


def test_identical_frames_score_perfectly() -> None:
    image = textured()
    assert ssim(image, image) == pytest.approx(1.0)
    assert psnr_db(image, image) == PSNR_MAX_DB  # capped, not infinite
    assert psnr_db(image, image, max_db=60.0) == 60.0


def test_a_shifted_frame_scores_lower() -> None:
    image = textured()
    shifted = np.roll(image, 3, axis=1)
    assert ssim(shifted, image) < 0.95
    assert 0 < psnr_db(shifted, image) < 40


def test_psnr_known_value() -> None:
    real = np.zeros((8, 8, 3), np.uint8)
    generated = np.full((8, 8, 3), 10, np.uint8)  # MSE 100
    assert psnr_db(generated, real) == pytest.approx(10 * math.log10(255**2 / 100))


def test_image_checks() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(textured(), textured(shape=(32, 32)))
    with pytest.raises(ValueError, match="uint8"):
        psnr_db(textured().astype(np.float32), textured())
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(np.zeros((5, 5, 3), np.uint8), np.zeros((5, 5, 3), np.uint8))


# -- face crop -----------------------------------------------------------------------------------------------


def test_face_crop_inside_the_canvas_widens_to_whole_pixels() -> None:
    assert face_crop_slices([10.5, 20.2, 30.5, 40.0], W, H) == (slice(20, 40), slice(10, 31))


def test_face_crop_clipped_at_the_canvas_border() -> None:
    assert face_crop_slices([-6, -4, 12, 10], W, H) == (slice(0, 10), slice(0, 12))
    assert face_crop_slices([55, 50, 75, 70], W, H) == (slice(50, 64), slice(55, 64))


@pytest.mark.parametrize(
    "box",
    [
        [np.nan] * 4,  # no face in this frame
        [70, 10, 90, 30],  # off the canvas
        [60, 10, 80, 30],  # 4 pixels left on the canvas: narrower than SSIM's window
        [10, 10, 14, 30],  # too narrow
    ],
)
def test_face_crop_unusable(box: list[float]) -> None:
    assert face_crop_slices(box, W, H) is None


def test_face_figures_skip_frames_without_a_face_box() -> None:
    real = np.stack([textured(i) for i in range(3)])
    generated = real.copy()
    generated[1, :20, :20] = 0  # damage the face of frame 1 only
    joints, conf = sequence(3)
    boxes = np.array([[0, 0, 20, 20], [0, 0, 20, 20], [np.nan] * 4], np.float32)
    estimator = FakeEstimator([pose(j) for j in joints])
    result = evaluate_frames(generated, real, joints, conf, boxes, estimator=estimator)
    assert result.face.num_frames == 2 and result.face.frame_indices == [0, 1]
    assert result.face.ssim_per_frame[0] == pytest.approx(1.0) and result.face.ssim_per_frame[1] < 0.5
    assert result.face.ssim < result.frame.ssim  # the damage weighs more on the crop than on the frame
    no_faces = evaluate_frames(
        real, real, joints, conf, np.full((3, 4), np.nan), estimator=FakeEstimator([pose(j) for j in joints])
    )
    assert no_faces.face.num_frames == 0 and math.isnan(no_faces.face.ssim)
    assert no_faces.to_json()["face"]["ssim"] is None


# -- body region ---------------------------------------------------------------------------------------------


def test_person_box_from_the_mask_else_the_keypoints() -> None:
    joints = np.full((NUM_JOINTS, 2), 30.0)
    joints[Joint.NOSE] = (20.0, 10.0)
    joints[Joint.RIGHT_ANKLE] = (40.0, 50.0)
    conf = np.ones(NUM_JOINTS)
    conf[Joint.LEFT_ANKLE] = 0.2  # below the threshold: left out even far away
    joints[Joint.LEFT_ANKLE] = (60.0, 63.0)
    np.testing.assert_array_equal(find_person_box(joints, conf), [20, 10, 40, 50])
    mask = np.zeros((H, W), np.uint8)
    mask[5:9, 12:15] = 255
    mask[30, 50] = 127  # under MASK_THRESHOLD: not the person
    np.testing.assert_array_equal(find_person_box(joints, conf, mask=mask), [12, 5, 15, 9])
    # an empty mask falls back to the keypoints; nothing at all gives NaN
    empty = np.zeros((H, W), np.uint8)
    np.testing.assert_array_equal(find_person_box(joints, conf, mask=empty), [20, 10, 40, 50])
    assert np.isnan(find_person_box(joints, np.zeros(NUM_JOINTS), mask=empty)).all()
    with pytest.raises(ValueError, match="uint8"):
        find_person_box(joints, conf, mask=mask.astype(np.float32))


def test_body_region_grows_the_box_by_the_margin_and_clips() -> None:
    assert BODY_MARGIN_FRAC == 0.10
    # a 20 x 40 box grows 2 px left and right and 4 px up and down
    assert body_crop_slices([20, 10, 40, 50], W, H) == (slice(6, 54), slice(18, 42))
    assert body_crop_slices([20, 10, 40, 50], W, H, margin_frac=0.0) == (slice(10, 50), slice(20, 40))
    assert body_crop_slices([0, 30, 64, 64], W, H) == (slice(26, 64), slice(0, 64))  # clipped
    assert body_crop_slices([np.nan] * 4, W, H) is None
    assert body_crop_slices([30, 30, 31, 31], W, H) is None  # smaller than SSIM's window
    with pytest.raises(ValueError, match="margin"):
        body_crop_slices([20, 10, 40, 50], W, H, margin_frac=-0.1)


def test_body_figures_judge_the_person_not_the_background() -> None:
    """A frame right everywhere but on the person: the whole frame still scores high, the body low."""
    real = np.stack([textured(i) for i in range(2)])
    generated = real.copy()
    generated[:, 20:40, 24:40] = 128  # the person (box 24-40 x 20-40) drawn flat grey
    joints, conf = sequence(2)
    person = np.tile(np.array([[24, 20, 40, 40]], np.float32), (2, 1))
    result = evaluate_frames(
        generated, real, joints, conf, None, person, estimator=FakeEstimator([pose(j) for j in joints])
    )
    assert result.body.num_frames == 2 and result.body.frame_indices == [0, 1]
    assert result.body.ssim < result.frame.ssim - 0.1 and result.body.psnr_db < result.frame.psnr_db
    # the body crop is exactly the grown box: its SSIM is the one of that crop
    rows, cols = body_crop_slices(person[0], W, H)
    assert result.body.ssim_per_frame[0] == pytest.approx(ssim(generated[0][rows, cols], real[0][rows, cols]))
    # without person boxes the present driving joints give the box; a frame with nobody is not scored
    nobody = conf.copy()
    nobody[1] = 0
    by_joints = evaluate_frames(
        generated, real, joints, nobody, estimator=FakeEstimator([pose(j) for j in joints])
    )
    assert by_joints.body.frame_indices == [0]
    box = find_person_box(joints[0], conf[0])
    rows, cols = body_crop_slices(box, W, H)
    assert by_joints.body.ssim == pytest.approx(ssim(generated[0][rows, cols], real[0][rows, cols]))
    with pytest.raises(ValueError, match="person boxes"):
        evaluate_frames(generated, real, joints, conf, None, person[:1], estimator=FakeEstimator([]))


# -- pose fidelity -------------------------------------------------------------------------------------------


def test_pose_distance_known_offset() -> None:
    joints, conf = sequence(2)
    detected = [pose(joints[0] + np.array([3.0, 4.0])), pose(joints[1])]  # 5 px off in frame 0, exact in 1
    frames = np.stack([textured(0), textured(1)])
    result = evaluate_frames(frames, frames, joints, conf, estimator=FakeEstimator(detected))
    assert result.pose.pose_distance_px == pytest.approx(2.5)  # mean over all found joints of both frames
    assert result.pose.pose_distance_px_per_frame == pytest.approx([5.0, 0.0])
    assert result.pose.pose_distance_px_per_joint["left_wrist"] == pytest.approx(2.5)
    assert result.pose.missed_joint_rate == 0.0 and result.pose.num_driving_joints == 2 * NUM_JOINTS


def test_missed_joints_counted_over_present_driving_joints() -> None:
    joints, conf = sequence(1)
    conf[0, Joint.LEFT_ANKLE] = 0.2  # absent from the driving pose: neither missed nor found
    found = np.ones(NUM_JOINTS, np.float32)
    found[[Joint.LEFT_WRIST, Joint.RIGHT_WRIST, Joint.LEFT_ANKLE]] = 0.1  # not found by the estimator
    frames = textured()[None]
    result = evaluate_frames(frames, frames, joints, conf, estimator=FakeEstimator([pose(joints[0], found)]))
    assert result.pose.num_driving_joints == NUM_JOINTS - 1
    assert result.pose.num_missed_joints == 2
    assert result.pose.missed_joint_rate == pytest.approx(2 / (NUM_JOINTS - 1))
    assert result.pose.missed_joint_rate_per_joint["left_wrist"] == 1.0
    assert math.isnan(result.pose.missed_joint_rate_per_joint["left_ankle"])
    assert result.pose.pose_distance_px == 0.0


def test_nobody_found_misses_every_joint() -> None:
    joints, conf = sequence(2)
    frames = np.stack([textured(0), textured(1)])
    empty = [PoseFrame.empty(0.0, (W, H))] * 2
    result = evaluate_frames(frames, frames, joints, conf, estimator=FakeEstimator(empty))
    assert result.pose.missed_joint_rate == 1.0 and result.pose.num_frames_without_person == 2
    assert math.isnan(result.pose.pose_distance_px)


def test_mediapipe_finds_nobody_in_a_blank_frame() -> None:
    joints, conf = sequence(1)
    blank = np.zeros((1, 128, 128, 3), np.uint8)
    result = evaluate_frames(blank, blank, joints * 2, conf)  # the default estimator: MediaPipe
    assert result.pose.missed_joint_rate == 1.0 and result.pose.num_frames_without_person == 1


def _taiji_frame() -> np.ndarray:
    from realtime.video import read_frames

    rgb, _ = next(read_frames(real_video("target_taiji.mp4"), 1))
    square = rgb[:, 100:820]  # 720x720 around the person in the 1280x720 video
    return np.asarray(Image.fromarray(square).resize((256, 256), Image.Resampling.BILINEAR))


def test_mediapipe_pose_distance_on_a_real_frame() -> None:
    frame = _taiji_frame()
    with MediaPipePose(video_mode=False) as estimator:
        own = estimator.estimate(frame)
        assert (own.confidence >= 0.5).sum() >= 20  # the person is found
        same = evaluate_frames(frame[None], frame[None], own.joints_px[None], own.confidence[None],
                               estimator=estimator)  # fmt: skip
        assert same.pose.pose_distance_px < 0.5 and same.pose.missed_joint_rate == 0.0
        shifted = np.zeros_like(frame)
        shifted[:, 12:] = frame[:, :-12]  # the person 12 px to the right
        moved = evaluate_frames(shifted[None], frame[None], own.joints_px[None], own.confidence[None],
                                estimator=estimator)  # fmt: skip
        assert moved.pose.pose_distance_px == pytest.approx(12, abs=2)
        assert moved.frame.ssim < same.frame.ssim


# -- temporal stability --------------------------------------------------------------------------------------


def test_is_still() -> None:
    joints, conf = sequence(1)
    j, c = joints[0], conf[0]
    assert is_still(j, c, j + 1.0, c)  # 1.41 px < 2 px
    assert not is_still(j, c, j + 2.0, c)
    assert is_still(j, c, j, c, still_threshold_px=1e-9)  # an exact copy is still
    fewer = c.copy()
    fewer[Joint.NOSE] = 0.0
    assert not is_still(j, c, j, fewer)  # a joint disappeared: the stick figure changed
    moved_absent = j.copy()
    moved_absent[Joint.NOSE] += 50
    assert is_still(j, fewer, moved_absent, fewer)  # absent joints do not count
    none = np.zeros_like(c)
    assert is_still(j, none, j + 100, none)  # two blank stick figures
    assert present_joints(np.full((NUM_JOINTS, 2), np.nan), c).sum() == 0


def test_frame_change_levels() -> None:
    image = textured()
    assert frame_change_levels(image, image) == 0.0
    brighter = (image.astype(np.int16) + 5).clip(0, 255).astype(np.uint8)
    expected = np.abs(brighter.astype(float) - image).mean()
    assert frame_change_levels(image, brighter) == pytest.approx(expected)
    assert frame_change_levels(brighter, image) == pytest.approx(expected)


def test_constant_output_is_perfectly_stable() -> None:
    joints, conf = sequence(4)
    constant = np.repeat(textured()[None], 4, axis=0)
    real = np.stack([textured(i) for i in range(4)])
    result = evaluate_frames(constant, real, joints, conf, estimator=FakeEstimator([pose(j) for j in joints]))
    assert result.temporal.num_pairs == 3 and result.temporal.num_still_pairs == 3
    assert result.temporal.still_change_levels == 0.0 and result.temporal.change_levels == 0.0
    assert result.temporal.real_still_change_levels > 10  # the real frames differ


def test_temporal_stability_only_over_still_pairs() -> None:
    joints, conf = sequence(4)
    joints[2:] += 10.0  # the pose jumps at frame 2 and then stays: pairs (0, 1) and (2, 3) are still
    frames = np.stack([textured(0), textured(0), textured(1), textured(1) // 2])
    result = evaluate_frames(frames, frames, joints, conf, estimator=FakeEstimator([pose(j) for j in joints]))
    assert result.temporal.still_pair_indices == [1, 3]
    expected = np.mean([0.0, frame_change_levels(frames[2], frames[3])])
    assert result.temporal.still_change_levels == pytest.approx(expected)
    assert result.temporal.real_still_change_levels == pytest.approx(expected)  # real = generated here
    assert result.temporal.change_levels > result.temporal.still_change_levels


def test_no_still_pair_gives_nan() -> None:
    joints, conf = sequence(3)
    joints += 5.0 * np.arange(3)[:, None, None]  # the whole body steps 5 px per frame
    frames = np.stack([textured(i) for i in range(3)])
    result = evaluate_frames(frames, frames, joints, conf, estimator=FakeEstimator([pose(j) for j in joints]))
    assert result.temporal.num_still_pairs == 0 and math.isnan(result.temporal.still_change_levels)


# -- entry point, results ------------------------------------------------------------------------------------


def test_evaluate_frames_checks_its_inputs() -> None:
    frames = np.stack([textured(0), textured(1)])
    joints, conf = sequence(2)
    with pytest.raises(ValueError, match="one shape"):
        evaluate_frames(frames, frames[:1], joints, conf, estimator=FakeEstimator([]))
    with pytest.raises(ValueError, match="driving joints"):
        evaluate_frames(frames, frames, joints[:1], conf[:1], estimator=FakeEstimator([]))
    with pytest.raises(ValueError, match="face boxes"):
        evaluate_frames(frames, frames, joints, conf, np.zeros((2, 3)), estimator=FakeEstimator([]))
    with pytest.raises(ValueError, match="uint8"):
        evaluate_frames(frames / 255.0, frames / 255.0, joints, conf, estimator=FakeEstimator([]))


def test_frame_evaluator_rejects_a_size_change() -> None:
    joints, conf = sequence(1)
    evaluator = FrameEvaluator(estimator=FakeEstimator([pose(joints[0])] * 2))
    evaluator.add(textured(), textured(), joints[0], conf[0])
    with pytest.raises(ValueError, match="earlier ones"):
        evaluator.add(textured(shape=(32, 32)), textured(shape=(32, 32)), joints[0], conf[0])


def _result() -> EvaluationResult:
    joints, conf = sequence(2)
    frames = np.stack([textured(0), textured(1)])
    return evaluate_frames(
        frames, np.roll(frames, 2, axis=2), joints, conf, np.tile([[0, 0, 20, 20]], (2, 1)),
        estimator=FakeEstimator([pose(j) for j in joints]),
    )  # fmt: skip


def test_summary_and_json() -> None:
    result = _result()
    summary = result.summary()
    assert summary["num_frames"] == 2 and summary["face_num_frames"] == 2 and summary["body_num_frames"] == 2
    assert 0 < summary["body_ssim"] < 1 and 0 < summary["body_psnr_db"] < PSNR_MAX_DB
    assert 0 < summary["ssim"] < 1 and summary["pose_distance_px"] == 0.0
    assert summary["num_still_pairs"] == 1  # the driving pose stands still; the output changes
    assert summary["temporal_change_levels"] == pytest.approx(frame_change_levels(textured(0), textured(1)))
    text = json.dumps(result.to_json(), allow_nan=False)  # standard JSON: no NaN
    assert json.loads(text)["frame"]["num_frames"] == 2
    assert json_safe({"a": [math.inf, 1.0, (math.nan,)]}) == {"a": [None, 1.0, [None]]}


def test_markdown_table() -> None:
    result = _result()
    table = markdown_table({"A": result, "B": result}, {"A": 12.34})
    lines = table.splitlines()
    assert lines[0].startswith("| model | frames | SSIM |") and lines[0].count("|") == len(TABLE_COLUMNS) + 2
    rows = [line for line in lines if line.startswith(("| A |", "| B |"))]
    assert len(rows) == 2
    assert rows[0].endswith("| 12.3 |") and rows[1].endswith("| n/a |")  # B has no generator timing
    assert "| 0.0% |" in rows[0]  # missed joints
    assert "stillness threshold 2 px" in table
    assert "| body SSIM | body PSNR (dB) |" in lines[0]
    assert "grown by 10% of the box's width and height on each side" in table


# -- limb-direction agreement -------------------------------------------------------------------------------


def rotated(joints: np.ndarray, joint: Joint, about: Joint, degrees: float) -> np.ndarray:
    """``joints`` with ``joint`` turned ``degrees`` about ``about`` (a leaf joint: one limb changes)."""
    out = joints.astype(np.float64).copy()
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    v = out[joint] - out[about]
    out[joint] = out[about] + np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])
    return out


def test_limb_directions_ignore_scale_and_translation_and_measure_known_angles() -> None:
    source = standing_pose(256, 256).astype(np.float64)
    ones = np.ones(NUM_JOINTS)
    # The output canvas is another size: scaled and moved, every direction agrees.
    moved = 0.5 * source + np.array([7.0, -3.0])
    np.testing.assert_allclose(limb_direction_errors_deg(source, ones, moved, ones), 0.0, atol=1e-9)
    # Four leaf limbs turned by known angles; the sign of a turn does not matter.
    output = moved
    turns = {"right_forearm": (Joint.RIGHT_WRIST, Joint.RIGHT_ELBOW, 30.0),
             "left_forearm": (Joint.LEFT_WRIST, Joint.LEFT_ELBOW, -90.0),
             "left_toe": (Joint.LEFT_BIG_TOE, Joint.LEFT_ANKLE, 180.0),
             "right_ear": (Joint.RIGHT_EAR, Joint.RIGHT_EYE, 150.0)}  # fmt: skip
    for joint, about, degrees in turns.values():
        output = rotated(output, joint, about, degrees)
    errors = limb_direction_errors_deg(source, ones, output, ones)
    assert errors.shape == (NUM_LIMBS,)
    expected = np.zeros(NUM_LIMBS)
    for name, (_, _, degrees) in turns.items():
        expected[LIMB_INDEX[name]] = abs(degrees)
    np.testing.assert_allclose(errors, expected, atol=1e-9)
    # Across the +-180 degree seam: 170 and -170 degrees are 20 degrees apart, not 340.
    a, b = source.copy(), source.copy()
    a[Joint.RIGHT_WRIST] = a[Joint.RIGHT_ELBOW] + 10 * np.array(
        [math.cos(math.radians(170)), math.sin(math.radians(170))]
    )
    b[Joint.RIGHT_WRIST] = b[Joint.RIGHT_ELBOW] + 10 * np.array(
        [math.cos(math.radians(-170)), math.sin(math.radians(-170))]
    )
    assert limb_direction_errors_deg(a, ones, b, ones)[LIMB_INDEX["right_forearm"]] == pytest.approx(20.0)
    # A joint missing on either side (low confidence, NaN) or a zero-length limb: not measured.
    low = ones.copy()
    low[Joint.RIGHT_WRIST] = 0.49
    nan = output.copy()
    nan[Joint.LEFT_WRIST] = np.nan
    collapsed = output.copy()
    collapsed[Joint.LEFT_BIG_TOE] = collapsed[Joint.LEFT_ANKLE]
    assert np.isnan(limb_direction_errors_deg(source, low, output, ones)[LIMB_INDEX["right_forearm"]])
    assert np.isnan(limb_direction_errors_deg(source, ones, output, low)[LIMB_INDEX["right_forearm"]])
    assert np.isnan(limb_direction_errors_deg(source, ones, nan, ones)[LIMB_INDEX["left_forearm"]])
    assert np.isnan(limb_direction_errors_deg(source, ones, collapsed, ones)[LIMB_INDEX["left_toe"]])
    # Batched over frames.
    batch = limb_direction_errors_deg(np.stack([source, source]), np.stack([ones, ones]),
                                      np.stack([moved, output]), np.stack([ones, ones]))  # fmt: skip
    np.testing.assert_allclose(batch, np.stack([np.zeros(NUM_LIMBS), expected]), atol=1e-9)
    with pytest.raises(ValueError, match="differ in shape"):
        limb_direction_errors_deg(source, ones, np.stack([source, source]), np.stack([ones, ones]))
    with pytest.raises(ValueError, match="expected joints"):
        limb_direction_errors_deg(source[:5], ones[:5], source[:5], ones[:5])


def test_limb_agreement_figures_and_missed_elbows_and_wrists_are_exact() -> None:
    source = standing_pose(256, 256).astype(np.float64)
    ones = np.ones(NUM_JOINTS)
    output = 0.5 * source
    for joint, about, degrees in ((Joint.RIGHT_WRIST, Joint.RIGHT_ELBOW, 30.0),
                                  (Joint.LEFT_WRIST, Joint.LEFT_ELBOW, -90.0),
                                  (Joint.LEFT_BIG_TOE, Joint.LEFT_ANKLE, 180.0),
                                  (Joint.RIGHT_EAR, Joint.RIGHT_EYE, 150.0)):  # fmt: skip
        output = rotated(output, joint, about, degrees)
    # Frame 1: the same pose; the output loses the right wrist (0.3 < 0.5) and the left elbow; the source
    # does not see its left wrist (not counted, whatever the output shows).
    source_conf_1 = ones.copy()
    source_conf_1[Joint.LEFT_WRIST] = 0.2
    output_conf_1 = ones.copy()
    output_conf_1[Joint.RIGHT_WRIST] = 0.3
    output_conf_1[Joint.LEFT_ELBOW] = 0.0
    # Frame 2: nobody found on the output.
    sources = np.stack([source, source, source])
    source_conf = np.stack([ones, source_conf_1, ones])
    outputs = np.stack([output, 0.5 * source, np.zeros_like(source)])
    output_conf = np.stack([ones, output_conf_1, np.zeros(NUM_JOINTS)])
    result = limb_agreement(sources, source_conf, outputs, output_conf)
    # Body limbs only (BODY_LIMBS: 13; the toe and the ear are not): frame 0: 11 at 0, the right forearm
    # at 30 and the left at 90 degrees; frame 1: 13 less right_forearm, left_upper_arm and left_forearm = 10
    # at 0; frame 2: none.
    angles = [0.0] * 11 + [30.0, 90.0] + [0.0] * 10
    assert len(BODY_LIMBS) == 13
    assert result.num_frames == 3 and result.num_frames_without_person == 1
    assert result.num_measurements == len(angles) == 23
    assert result.median_deg == 0.0
    # 90th percentile of 23 sorted values: position 0.9 * 22 = 19.8, between two zeros (21 zeros).
    assert result.p90_deg == pytest.approx(np.percentile(angles, 90)) and result.p90_deg == 0.0
    assert result.mean_deg == pytest.approx(120.0 / 23)
    assert result.median_deg_per_limb["right_forearm"] == pytest.approx(30.0)  # measured once (frame 0)
    assert math.isnan(result.median_deg_per_limb["left_toe"])  # not a body limb: never measured
    assert result.num_measurements_per_limb["left_toe"] == 0
    assert result.num_measurements_per_limb["left_forearm"] == 1
    assert result.num_measurements_per_limb["spine"] == 2
    assert result.median_deg_per_frame[:2] == [0.0, 0.0] and math.isnan(result.median_deg_per_frame[2])
    assert result.num_frames_mirrored == 0
    # Elbows and wrists: 4 + 3 + 4 seen on the source; missed 0 + 2 + 4.
    assert len(ARM_JOINTS) == 4
    assert (result.num_source_arm_joints, result.num_missed_arm_joints) == (11, 6)
    assert result.missed_arm_joint_rate == pytest.approx(6 / 11)
    summary = result.summary()
    assert summary["limb_direction_median_deg"] == 0.0 and summary["missed_arm_joint_rate"] == 6 / 11
    # Only frame 0: the 13 angles (11 zeros, 30, 90); p90 at position 0.9 * 12 = 10.8 of the sorted values,
    # 0.8 of the way from a 0 (position 10) to the 30 (position 11): 24 degrees.
    first = limb_agreement(sources[:1], source_conf[:1], outputs[:1], output_conf[:1])
    assert first.p90_deg == pytest.approx(24.0) and first.median_deg == 0.0
    assert first.missed_arm_joint_rate == 0.0
    # Nothing measured: NaN (null in JSON), not zero.
    empty = limb_agreement(sources[2:], source_conf[2:], outputs[2:], output_conf[2:])
    assert math.isnan(empty.median_deg) and math.isnan(empty.p90_deg) and empty.missed_arm_joint_rate == 1.0
    assert json.loads(json.dumps(empty.to_json()))["median_deg"] is None


def test_limb_agreement_evaluator_runs_the_estimator_on_source_then_output() -> None:
    source = standing_pose(W, H)
    output = rotated(0.5 * source, Joint.RIGHT_WRIST, Joint.RIGHT_ELBOW, 45.0)
    estimator = FakeEstimator([pose(source), pose(output)])
    source_rgb, output_rgb = textured(1, (96, 80)), textured(2)
    with LimbAgreementEvaluator(estimator=estimator) as evaluator:
        found = evaluator.add(source_rgb, output_rgb)
        result = evaluator.result()
    assert [f.shape for f in estimator.frames] == [source_rgb.shape, output_rgb.shape]
    assert found[0].joints_px is estimator.poses[0].joints_px
    assert result.num_measurements == len(BODY_LIMBS)
    assert result.median_deg_per_limb["right_forearm"] == pytest.approx(45.0)
    assert result.p90_deg == pytest.approx(0.0) and result.missed_arm_joint_rate == 0.0
    with pytest.raises(ValueError, match="confidence_threshold"):
        LimbAgreementEvaluator(confidence_threshold=1.5)


def test_markdown_table_puts_limb_columns_beside_the_body() -> None:
    source = standing_pose(256, 256).astype(np.float64)
    ones = np.ones((1, NUM_JOINTS))
    output = rotated(source, Joint.RIGHT_WRIST, Joint.RIGHT_ELBOW, 30.0)[None]
    agreement = limb_agreement(source[None], ones, output, ones)
    result = _result()
    table = markdown_table({"A": result, "B": result}, {"A": 1.0}, {"A": {"dance": agreement}})
    lines = table.splitlines()
    header = lines[0]
    assert (
        "| body PSNR (dB) | limb dir. median / p90 (deg), dance | elbows+wrists missed, dance | face SSIM |"
        in header
    )
    assert header.count("|") == len(TABLE_COLUMNS) + 2 + 2
    rows = [line for line in lines if line.startswith(("| A |", "| B |"))]
    assert f"| 0.0 / {np.percentile([0.0] * 12 + [30.0], 90):.1f} | 0.0% |" in rows[0]
    assert "| n/a | n/a |" in rows[1]  # B was not driven by the source
    assert "Limb dir. (unseen poses, no ground truth)" in table
    assert (
        "A, driven by dance: 1 frames, 13 limb angles, 4 source elbows and wrists; nobody found in 0 "
        "generated frames; sides swapped on 0"
    ) in table


def test_an_output_labelled_the_other_way_round_is_compared_with_its_sides_swapped() -> None:
    # The same pose with its left and right labels exchanged (as an estimator may label a figure seen from
    # behind): as labelled, the clavicles and pelvis point the other way (180 degrees); with the sides
    # swapped back it is the source's pose.
    source = standing_pose(256, 256).astype(np.float64)
    ones = np.ones((1, NUM_JOINTS))
    relabelled = source[list(MIRRORED_JOINTS)]
    assert MIRRORED_JOINTS[Joint.RIGHT_WRIST] == Joint.LEFT_WRIST
    assert MIRRORED_JOINTS[Joint.NECK] == Joint.NECK
    result = limb_agreement(source[None], ones, relabelled[None], ones)
    assert result.num_frames_mirrored == 1 and result.median_deg == 0.0 and result.p90_deg == 0.0
    # A pose that really differs is not hidden by the swap: one forearm turned by 60 degrees stays 60.
    turned = rotated(relabelled, Joint.LEFT_WRIST, Joint.LEFT_ELBOW, 60.0)  # the source's right forearm
    result = limb_agreement(source[None], ones, turned[None], ones)
    assert result.median_deg_per_limb["right_forearm"] == pytest.approx(60.0)
