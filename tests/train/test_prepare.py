import numpy as np
import pytest

from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.prepare import CropBox, crop_and_resize, face_boxes, find_crop


def test_crop_keeps_every_joint_has_the_canvas_aspect_and_stays_in_frame_where_it_fits():
    rng = np.random.default_rng(0)
    joints = rng.uniform([300, 100], [500, 600], size=(50, NUM_JOINTS, 2)).astype(np.float32)
    conf = np.ones((50, NUM_JOINTS), np.float32)
    box = find_crop(joints, conf, 512, 256, frame_width=1920, frame_height=1080)
    assert box.width == 2 * box.height
    inside = (
        (joints[..., 0] >= box.x0)
        & (joints[..., 0] <= box.x0 + box.width)
        & (joints[..., 1] >= box.y0)
        & (joints[..., 1] <= box.y0 + box.height)
    )
    assert inside.mean() > 0.98  # 1st/99th percentiles, plus margin
    assert 0 <= box.y0 and box.y0 + box.height <= 1080 and 0 <= box.x0


def test_crop_larger_than_the_frame_is_centered_on_it():
    joints = np.zeros((2, NUM_JOINTS, 2), np.float32)
    joints[:, :, 1] = np.linspace(0, 700, NUM_JOINTS)  # a person as tall as the 720-px frame
    joints[:, :, 0] = 600
    conf = np.ones((2, NUM_JOINTS), np.float32)
    box = find_crop(joints, conf, 256, 256, frame_width=1280, frame_height=720)
    assert box.height > 720 and box.y0 == -((box.height - 720) // 2)


def test_crop_of_an_empty_video_is_an_error():
    with pytest.raises(ValueError, match="no person"):
        find_crop(np.zeros((3, NUM_JOINTS, 2)), np.zeros((3, NUM_JOINTS)), 64, 64, 100, 100)


def test_crop_and_resize_pads_outside_with_black():
    image = np.full((10, 10, 3), 200, np.uint8)
    out = crop_and_resize(image, CropBox(x0=-10, y0=0, width=20, height=10), 20, 10)
    assert out.shape == (10, 20, 3)
    assert out[:, :8].max() == 0 and out[:, 12:].min() == 200
    mask = crop_and_resize(np.full((10, 10), 255, np.uint8), CropBox(0, 0, 10, 10), 5, 5)
    assert mask.shape == (5, 5) and mask.min() == 255


def test_face_boxes_are_fixed_size_and_nan_without_a_face():
    joints = np.zeros((2, NUM_JOINTS, 2), np.float32)
    conf = np.zeros((2, NUM_JOINTS), np.float32)
    joints[0, Joint.LEFT_EAR], joints[0, Joint.RIGHT_EAR] = (110, 50), (90, 50)
    joints[0, Joint.NOSE] = (100, 56)
    conf[0, [Joint.LEFT_EAR, Joint.RIGHT_EAR, Joint.NOSE]] = 1.0
    boxes, side = face_boxes(joints, conf)
    assert side == 32.0  # 1.6 x the 20-px ear-to-ear distance
    center = np.mean([(110, 50), (90, 50), (100, 56)], axis=0)
    np.testing.assert_allclose(boxes[0], [*(center - 16), *(center + 16)], rtol=1e-6)
    assert np.isnan(boxes[1]).all()


def test_the_pose_estimator_and_the_mask_source_are_chosen_on_the_command_line(tmp_path):
    from realtime.catalog import POSE_ESTIMATORS, PoseEstimatorEntry
    from train.cli import build_prepare_parser as build_parser

    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    args = build_parser().parse_args([str(video), "--out", str(tmp_path / "out")])
    assert (args.pose_estimator, args.mask_source) == ("mediapipe", "mediapipe")
    args = build_parser().parse_args([str(video), "--out", "o", "--mask-source", "none"])
    assert args.mask_source == "none"
    with pytest.raises(SystemExit):
        build_parser().parse_args([str(video), "--out", "o", "--pose-estimator", "nope"])
    # The choices come from the table: an entry registered before the parser is built is offered.
    entry = PoseEstimatorEntry("realtime.pose.estimators:MediaPipePose", gives_mask=False)
    POSE_ESTIMATORS["plugin"] = entry
    try:
        args = build_parser().parse_args([str(video), "--out", "o", "--pose-estimator", "plugin"])
        assert args.pose_estimator == "plugin"
        with pytest.raises(SystemExit):  # it gives no mask
            build_parser().parse_args([str(video), "--out", "o", "--mask-source", "plugin"])
    finally:
        del POSE_ESTIMATORS["plugin"]
