import numpy as np
import pytest

from realtime.catalog import CANVAS_MULTIPLE_PX
from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.prepare import (
    CropBox,
    PersonBox,
    choose_canvas,
    crop_and_resize,
    face_boxes,
    find_crop,
    person_box,
    person_height_px,
)


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
    joints[:, :, 0] = 200
    conf = np.ones((2, NUM_JOINTS), np.float32)
    # The margin above and below lies outside the frame (nothing was recorded there): the window is the
    # frame's height, and a square canvas of a 400-px-wide frame needs black bands on both sides.
    box = find_crop(joints, conf, 256, 256, frame_width=400, frame_height=720)
    assert (box.y0, box.height) == (0, 720) and box.width == 720 and box.x0 == -((720 - 400) // 2)


def test_person_box_is_the_union_with_a_margin_clamped_to_the_frame():
    joints = np.zeros((3, NUM_JOINTS, 2), np.float32)
    joints[:, :, 0] = np.linspace(100, 200, NUM_JOINTS)
    joints[:, :, 1] = np.linspace(50, 450, NUM_JOINTS)
    joints[1, :, 0] += 60  # the person steps right in one frame
    conf = np.ones((3, NUM_JOINTS), np.float32)
    conf[2, 0] = 0.0  # a missing joint is no extreme
    joints[2, 0] = (-1000, -1000)
    box = person_box(joints, conf, frame_width=414, frame_height=480)
    margin = 0.1 * 400  # of the larger side of the extent (y 50..450)
    assert box.x0 == pytest.approx(100 - margin, abs=1) and box.y0 == pytest.approx(50 - margin, abs=1)
    assert box.x1 == pytest.approx(260 + margin, abs=1.5)  # the 99th percentile of the right edges
    assert box.y1 == 480  # clamped to the frame
    with pytest.raises(ValueError, match="no person"):
        person_box(joints, np.zeros_like(conf), 414, 480)


@pytest.mark.parametrize(
    ("box_wh", "pixels", "expected"),
    [
        ((260.0, 475.0), 65536, (192, 352)),  # a portrait framing (target_fashion.mp4's kind)
        ((100.0, 100.0), 65536, (256, 256)),  # square stays 256x256
        ((475.0, 260.0), 65536, (352, 192)),
        ((300.0, 500.0), 4 * 65536, (384, 640)),  # the budget scales both sides
        ((10.0, 1000.0), 65536, (128, 512)),  # the aspect kept within 1:4 .. 4:1
        ((1.0, 1.0), 1024, (32, 32)),  # at least one multiple per side
    ],
)
def test_choose_canvas_keeps_the_aspect_the_pixel_budget_and_the_multiple(box_wh, pixels, expected):
    box = PersonBox(100.0, 100.0, 100.0 + box_wh[0], 100.0 + box_wh[1])
    width, height = choose_canvas(box, 4000, 4000, pixels)
    assert (width, height) == expected
    assert width % CANVAS_MULTIPLE_PX == 0 and height % CANVAS_MULTIPLE_PX == 0


def test_choose_canvas_errors():
    with pytest.raises(ValueError, match="x0 < x1"):
        PersonBox(10.0, 0.0, 10.0, 100.0)
    with pytest.raises(ValueError, match="impossible"):
        choose_canvas(PersonBox(0.0, 0.0, 100.0, 100.0), 400, 400, pixels=CANVAS_MULTIPLE_PX**2 - 1)


def test_a_chosen_canvas_crop_fills_the_frame_without_a_band():
    # A person filling a portrait 414x540 frame's height: the chosen canvas's crop stays inside the frame
    # (a little of the window's side margin given up rather than a black band at the top and bottom), has the
    # canvas's aspect, and holds the person.
    rng = np.random.default_rng(1)
    joints = rng.uniform([140, 30], [280, 520], size=(40, NUM_JOINTS, 2)).astype(np.float32)
    conf = np.ones((40, NUM_JOINTS), np.float32)
    window = person_box(joints, conf, 414, 540)
    width, height = choose_canvas(window, 414, 540)
    assert height > width and width * height == pytest.approx(65536, rel=0.1)
    box = find_crop(joints, conf, width, height, frame_width=414, frame_height=540)
    assert box.width * height == box.height * width
    assert box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.width <= 414 and box.y0 + box.height <= 540
    assert box.height >= 0.9 * window.height and box.width >= 0.9 * window.width
    inside = (joints[..., 0] >= box.x0) & (joints[..., 0] <= box.x0 + box.width)
    assert inside.all()  # only margin was given up


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


def test_the_canvas_is_chosen_by_default_forced_by_size_and_budgeted_by_pixels(tmp_path):
    from train.cli import build_prepare_parser as build_parser

    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    args = build_parser().parse_args([str(video), "--out", "o"])
    assert (args.size, args.pixels) == (None, 65536)
    args = build_parser().parse_args([str(video), "--out", "o", "--pixels", "100000"])
    assert (args.size, args.pixels) == (None, 100000)
    assert build_parser().parse_args([str(video), "--out", "o", "--size", "256x256"]).size == (256, 256)
    with pytest.raises(SystemExit):  # one or the other
        build_parser().parse_args([str(video), "--out", "o", "--size", "256x256", "--pixels", "1000"])
    assert "multiples of 32" in build_parser().format_help().replace("\n", " ").replace("  ", " ")


def test_person_height_is_the_median_keypoint_height():
    joints = np.zeros((3, NUM_JOINTS, 2), np.float32)
    joints[:, :, 1] = np.linspace(0, 1, NUM_JOINTS) * np.array([100, 200, 300])[:, None]
    conf = np.ones((3, NUM_JOINTS), np.float32)
    conf[2] = 0.0
    assert person_height_px(joints, conf) == pytest.approx(150.0)
    assert np.isnan(person_height_px(joints, np.zeros_like(conf)))
