import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from conftest import shared_video, standing_pose, train_tiny
from kernels.rasterize import RenderParams
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.dataset import FramePairs, load_prepared
from train.synthetic import (
    ANGLE_SPECS,
    RESTRICTED_MOTION,
    MotionConfig,
    angle_specs,
    estimate_orientation,
    estimate_scale_px_per_m,
    evaluate_synthetic,
    generate_motion,
    main,
    mannequin_pose,
    render_background,
    render_mannequin,
    write_synthetic_dataset,
)

W = H = 128
HANGING = {
    "right_shoulder_elevation": 0.0,
    "left_shoulder_elevation": 0.0,
    "right_elbow_flexion": 0.0,
    "left_elbow_flexion": 0.0,
}


def render(joints, conf, size=(W, H)):
    return render_mannequin(joints, conf, width=size[0], height=size[1])


def forearm_middle(joints, side):
    mid = (joints[Joint[f"{side}_ELBOW"]] + joints[Joint[f"{side}_WRIST"]]) / 2
    return int(mid[1]), int(mid[0])  # row, column


def without(conf, *joints):
    conf = conf.copy()
    conf[list(joints)] = 0.0
    return conf


def test_render_is_deterministic_with_the_documented_shapes_and_dtypes():
    joints = standing_pose(W, H, 0.7)
    conf = np.ones(NUM_JOINTS, np.float32)
    a, b = render(joints, conf), render(joints.copy(), conf.copy())
    assert a.image.shape == (H, W, 3) and a.image.dtype == np.uint8
    assert a.mask.shape == (H, W) and a.mask.dtype == np.uint8
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    wide = render(joints * 2, conf, size=(2 * W, H))  # any canvas, joints off it are fine
    assert wide.image.shape == (H, 2 * W, 3)
    with pytest.raises(ValueError, match="expected joints"):
        render_mannequin(joints[:5], conf[:5], width=W, height=H)


def test_nothing_to_draw_gives_the_empty_room():
    empty = render(np.zeros((NUM_JOINTS, 2), np.float32), np.zeros(NUM_JOINTS, np.float32))
    np.testing.assert_array_equal(empty.image, render_background(W, H))
    assert empty.mask.max() == 0
    nan = render(np.full((NUM_JOINTS, 2), np.nan, np.float32), np.ones(NUM_JOINTS, np.float32))
    np.testing.assert_array_equal(nan.image, empty.image)


@pytest.mark.parametrize("yaw, near, far", [(math.pi / 2, "RIGHT", "LEFT"), (-math.pi / 2, "LEFT", "RIGHT")])
def test_in_profile_the_near_arm_covers_the_torso_and_the_far_arm_is_behind_it(yaw, near, far):
    joints, conf = mannequin_pose({"yaw": yaw, **HANGING}, width=W, height=H)
    orientation = estimate_orientation(joints, conf > 0.5, estimate_scale_px_per_m(joints, conf > 0.5))
    assert abs(orientation.cos_yaw) < 0.2 and np.sign(orientation.sin_yaw) == np.sign(yaw)
    full = render(joints, conf).image
    # Hanging arms overlap the torso in profile: removing the far forearm changes nothing where it lies...
    row, col = forearm_middle(joints, far)
    hidden = render(joints, without(conf, Joint[f"{far}_WRIST"])).image
    np.testing.assert_array_equal(
        full[row - 1 : row + 2, col - 1 : col + 2], hidden[row - 1 : row + 2, col - 1 : col + 2]
    )
    # ...removing the near one uncovers the torso behind it.
    row, col = forearm_middle(joints, near)
    uncovered = render(joints, without(conf, Joint[f"{near}_WRIST"])).image
    assert np.abs(full[row, col].astype(int) - uncovered[row, col].astype(int)).max() > 20


def test_facing_the_camera_the_arms_are_in_front_of_the_torso():
    angles = {"right_shoulder_elevation": 1.2, "right_shoulder_plane": 2.0, "right_elbow_flexion": 0.0}
    joints, conf = mannequin_pose(angles, width=W, height=H)  # the right arm reaches across the chest
    wrist = joints[Joint.RIGHT_WRIST]
    chest = (joints[Joint.NECK] * 2 + joints[Joint.MID_HIP]) / 3
    assert abs(wrist[0] - chest[0]) < abs(joints[Joint.RIGHT_SHOULDER][0] - chest[0])
    full = render(joints, conf).image
    row, col = forearm_middle(joints, "RIGHT")
    uncovered = render(joints, without(conf, Joint.RIGHT_WRIST)).image
    assert np.abs(full[row, col].astype(int) - uncovered[row, col].astype(int)).max() > 20


def test_the_head_shows_where_it_looks():
    def head_and_rest(angles):
        joints, conf = mannequin_pose(angles, width=W, height=H)
        out = render(joints, conf)
        center = joints[[Joint.RIGHT_EAR, Joint.LEFT_EAR]].mean(axis=0).round().astype(int)
        box = (slice(center[1] - 12, center[1] + 12), slice(center[0] - 12, center[0] + 12))
        rest = out.image.copy()
        rest[box] = 0
        # The head's silhouette at nose height leans towards the nose (the nose bump sticks out).
        row = out.mask[int(round(joints[Joint.NOSE, 1]))].astype(float)
        lean = (row * (np.arange(W) + 0.5)).sum() / row.sum() - center[0]
        return out.image[box], rest, lean, joints[Joint.NOSE, 0] - center[0]

    left, rest_left, lean_left, nose_left = head_and_rest({"neck_yaw": 0.9})
    right, rest_right, lean_right, nose_right = head_and_rest({"neck_yaw": -0.9})
    front, rest_front, _, _ = head_and_rest({})
    np.testing.assert_array_equal(rest_left, rest_right)  # only the head changed...
    np.testing.assert_array_equal(rest_left, rest_front)
    for a, b in ((left, right), (left, front), (right, front)):  # ...and it changed visibly
        assert np.abs(a.astype(int) - b.astype(int)).max() > 40
    assert np.sign(nose_left) == -np.sign(nose_right)
    assert np.sign(lean_left) == np.sign(nose_left) and np.sign(lean_right) == np.sign(nose_right)
    # Facing away, the face (nose bump, eyes) is not drawn.
    joints, conf = mannequin_pose({"yaw": math.pi}, width=W, height=H)
    assert conf[[Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE]].max() == 0
    with_face = conf.copy()
    with_face[[Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE]] = 1.0
    assert not np.array_equal(render(joints, conf).image, render(joints, with_face).image)


def test_the_mask_is_the_mannequins_silhouette():
    joints, conf = mannequin_pose({"right_shoulder_elevation": 1.5}, width=W, height=H)
    out = render(joints, conf)
    background = render_background(W, H)
    changed = np.abs(out.image.astype(int) - background.astype(int)).max(axis=-1) > 0
    ankle_y = joints[[Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE], 1].max()
    above_shadow = np.arange(H)[:, None] < ankle_y - 8
    # Outside the silhouette only the contact shadow under the feet changes the room.
    assert not (changed & (out.mask == 0) & above_shadow).any()
    # Inside it the figure covers the room; the silhouette is one solid figure of plausible size.
    assert (changed[out.mask == 255]).mean() > 0.99
    assert 0.03 < (out.mask > 127).mean() < 0.3
    ys, xs = np.nonzero(out.mask > 127)
    assert ys.min() < joints[Joint.NOSE, 1] < joints[Joint.RIGHT_ANKLE, 1] < ys.max() + 1


def test_motion_respects_joint_limits_is_smooth_seeded_and_changes_depth():
    config = MotionConfig()
    motion = generate_motion(1200, W, H, seed=3, config=config)
    lo = np.array([s.lo_rad for s in ANGLE_SPECS], np.float32)
    hi = np.array([s.hi_rad for s in ANGLE_SPECS], np.float32)
    assert motion.angles_rad.shape == (1200, len(ANGLE_SPECS))
    assert (motion.angles_rad >= lo - 1e-6).all() and (motion.angles_rad <= hi + 1e-6).all()
    # Smooth: angles change by less than 0.35 rad (20 degrees) per frame at 24 fps (a quick spin or kick),
    # and that change itself changes by less than 0.12 rad per frame (no jerks).
    step = np.abs(np.diff(motion.angles_rad, axis=0))
    assert step.max() < 0.35 and np.percentile(step, 99) < 0.15
    assert np.abs(np.diff(motion.angles_rad, n=2, axis=0)).max() < 0.12
    # Joints move smoothly on the canvas too (no jumps), and the figure uses much of each angle's range.
    assert np.linalg.norm(np.diff(motion.joints_px, axis=0), axis=-1).max() < 0.08 * H
    assert ((motion.angles_rad.max(0) - motion.angles_rad.min(0)) / (hi - lo)).mean() > 0.4
    # It walks towards and away from the camera, so far and near foot positions differ.
    foot_y = motion.joints_px[:, [Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE], 1].max(axis=1)
    assert np.percentile(foot_y, 90) - np.percentile(foot_y, 10) > 0.06 * H
    assert np.ptp(motion.root_m[:, 2]) > 0.5 * (config.camera.far_m - config.camera.near_m)
    # Seeded.
    again = generate_motion(1200, W, H, seed=3)
    np.testing.assert_array_equal(motion.joints_px, again.joints_px)
    assert not np.array_equal(motion.joints_px, generate_motion(1200, W, H, seed=4).joints_px)
    assert motion.confidence.dtype == np.float32 and set(np.unique(motion.confidence)) <= {0.0, 1.0}


def test_the_default_motion_is_unchanged_by_the_presets():
    # Figures of generate_motion written down before the restricted motion existed: same seed, same keypoints.
    motion = generate_motion(200, 256, 256, seed=0)
    assert float(motion.joints_px.astype(np.float64).sum()) == pytest.approx(1296330.311405182, rel=1e-7)
    assert float(motion.confidence.sum()) == 4509.0
    np.testing.assert_allclose(motion.joints_px[0, Joint.RIGHT_WRIST], [84.75169, 142.54482], atol=1e-3)
    np.testing.assert_allclose(motion.joints_px[123, Joint.LEFT_ANKLE], [148.29758, 229.97449], atol=1e-3)
    np.testing.assert_allclose(motion.joints_px[199, Joint.LEFT_WRIST], [169.07471, 143.94274], atol=1e-3)
    other = generate_motion(50, 192, 256, seed=7)
    assert float(other.joints_px.astype(np.float64).sum()) == pytest.approx(298583.27195739746, rel=1e-7)
    default = generate_motion(200, 256, 256, seed=0, config=MotionConfig())
    np.testing.assert_array_equal(motion.joints_px, default.joints_px)


def wrist_below_shoulder_px(motion) -> np.ndarray:
    """Per frame, the smaller of the two sides' wrist y - shoulder y in pixels (> 0: both hands lower)."""
    px = motion.joints_px
    sides = [px[:, Joint[f"{s}_WRIST"], 1] - px[:, Joint[f"{s}_SHOULDER"], 1] for s in ("RIGHT", "LEFT")]
    return np.minimum(*sides)


def ankle_spacing_m(motion) -> np.ndarray:
    """Per frame, the distance in meters between the ankles on the floor (x and depth)."""
    ankles = motion.joints_m[:, [Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE]][..., [0, 2]]
    return np.linalg.norm(ankles[:, 0] - ankles[:, 1], axis=-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_restricted_motion_keeps_the_hands_low_and_the_feet_close(seed):
    motion = generate_motion(350, 256, 256, seed=seed, config=RESTRICTED_MOTION)
    specs = angle_specs(RESTRICTED_MOTION)
    lo, hi = np.array([s.lo_rad for s in specs]), np.array([s.hi_rad for s in specs])
    assert (motion.angles_rad >= lo - 1e-6).all() and (motion.angles_rad <= hi + 1e-6).all()
    # Hands below the shoulders on the canvas in every frame, and below the chest (20 cm under the neck).
    assert wrist_below_shoulder_px(motion).min() > 10
    chest_y_m = motion.joints_m[:, Joint.NECK, 1] - 0.20
    wrist_y_m = motion.joints_m[:, [Joint.RIGHT_WRIST, Joint.LEFT_WRIST], 1].max(axis=1)
    assert (wrist_y_m < chest_y_m).all()
    # No wide stance: the ankles stay within half a meter of each other; no crouch: the hips stay high.
    assert ankle_spacing_m(motion).max() < 0.5
    assert motion.joints_m[:, Joint.MID_HIP, 1].min() > 0.85
    # Walking a little and turning round: it moves on the floor, within a small area, and shows its back.
    assert 0.05 < np.ptp(motion.root_m[:, 0]) < 0.6 and np.ptp(motion.root_m[:, 2]) < 0.6
    yaw = motion.angles_rad[:, list(motion.angle_names).index("yaw")]
    assert np.abs(yaw).max() > math.pi / 2
    # The default motion breaks each of these bounds (the test can fail).
    dance = generate_motion(350, 256, 256, seed=seed)
    assert wrist_below_shoulder_px(dance).min() < 0 and ankle_spacing_m(dance).max() > 0.7


def test_motion_config_errors():
    with pytest.raises(ValueError, match="unknown angles"):
        MotionConfig(angle_limits=(ANGLE_SPECS[0].__class__("tail", 0.0, 1.0, 0.5, 1.0),))
    with pytest.raises(ValueError, match="strictly inside"):
        MotionConfig(angle_limits=(ANGLE_SPECS[0].__class__("yaw", 0.0, 1.0, 1.0, 1.0),))
    with pytest.raises(ValueError, match="floor_area_frac"):
        MotionConfig(floor_area_frac=0.0)


def test_dataset_is_a_prepared_directory_that_trains(tmp_path):
    report = write_synthetic_dataset(
        tmp_path / "data", num_frames=20, width=64, height=64, seed=1, progress=False
    )
    data = load_prepared(tmp_path / "data")
    meta = data.meta
    assert (
        meta.num_frames == 20 and meta.train_end == 17 and (meta.canvas_width, meta.canvas_height) == (64, 64)
    )
    assert meta.render == RenderParams.for_canvas(64, 64)
    assert meta.stats.near_foot_y_px >= meta.stats.far_foot_y_px
    # Exact poses: the runtime's default estimator is recorded; the masks are the renderer's.
    assert (meta.pose_estimator, meta.mask_source) == ("mediapipe", "renderer")
    assert report.size_bytes > 0 and report.render_ms_per_frame > 0
    assert (tmp_path / "data" / "preview.png").is_file()
    # Frames and masks are the renderer's; stick figures are the rasterizer's, of the same poses.
    i = 7
    rendered = render_mannequin(data.joints_px[i], data.confidence[i], width=64, height=64)
    np.testing.assert_array_equal(data.frames[i], rendered.image)
    np.testing.assert_array_equal(data.masks[i], rendered.mask)
    stick = rasterize_stick_figure(
        torch.from_numpy(data.joints_px[i : i + 1]), torch.from_numpy(data.confidence[i : i + 1]),
        height=64, width=64, params=meta.render,
    )  # fmt: skip
    expected = (stick[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(data.stick_figures[i], expected)
    assert len(FramePairs(data, "train")) == 16 and len(FramePairs(data, "heldout")) == 2
    train_tiny(tmp_path / "data", tmp_path / "run", steps=1)
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_writes_a_dataset_and_reports_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "d"), "--frames", "10", "--size", "32x48", "--seed", "2"]) == 0
    assert "10 frames" in capsys.readouterr().out
    assert load_prepared(tmp_path / "d").frames.shape == (10, 48, 32, 3)
    assert main(["--out", str(tmp_path / "e"), "--frames", "3"]) == 2
    assert "num_frames" in capsys.readouterr().err
    # The restricted motion: its own default length (350 frames), its poses in the dataset.
    restricted = ["--out", str(tmp_path / "r"), "--motion", "restricted", "--size", "32x32", "--seed", "1"]
    assert main(restricted) == 0
    assert "350 frames of restricted motion" in capsys.readouterr().out
    data = load_prepared(tmp_path / "r")
    expected = generate_motion(350, 32, 32, seed=1, config=RESTRICTED_MOTION)
    np.testing.assert_array_equal(np.asarray(data.joints_px), expected.joints_px)


def test_bundled_target_loads_runs_in_its_canvas_and_draws_the_mannequin():
    from realtime.model.pipeline import Target
    from realtime.targets import DEFAULT_TARGET

    assert DEFAULT_TARGET.is_file() and DEFAULT_TARGET.with_suffix(".json").is_file()
    assert DEFAULT_TARGET.stat().st_size + DEFAULT_TARGET.with_suffix(".json").stat().st_size < 20 * 2**20
    target = Target.load(DEFAULT_TARGET)
    width, height = target.canvas_size
    assert (width, height) == (256, 256)
    # Unseen poses (a motion seed the model was not trained on), in order, each conditioned on the last.
    motion = generate_motion(8, width, height, seed=12345)
    params = target.bundle.render
    sticks = rasterize_stick_figure(
        torch.from_numpy(motion.joints_px), torch.from_numpy(motion.confidence), height=height, width=width,
        params=params,
    )  # fmt: skip
    previous = torch.zeros((1, 3, height, width))
    temporal = "previous_frame" in target.bundle.generator_inputs.names
    ssims = []
    for i in range(len(sticks)):
        inputs = {"stick_figure": sticks[i : i + 1], **({"previous_frame": previous} if temporal else {})}
        previous = target.generate(inputs).clone()
        assert previous.shape == (1, 3, height, width) and previous.dtype == torch.float32
        generated = (previous[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        truth = render_mannequin(motion.joints_px[i], motion.confidence[i], width=width, height=height).image
        ssims.append(structural_similarity(generated, truth, channel_axis=2, data_range=255))
    assert np.mean(ssims) > 0.8


def test_evaluate_synthetic_on_a_source_video(tiny_engine, tmp_path, monkeypatch):
    import realtime.offline.retarget

    video = shared_video("source_dance.mp4")
    calls = []
    offline = realtime.offline.retarget.retarget_frames

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return offline(*args, **kwargs)

    monkeypatch.setattr(realtime.offline.retarget, "retarget_frames", spy)
    result = evaluate_synthetic(tiny_engine, [video], tmp_path / "eval", max_frames=6)
    # driven through the offline retargeting that `python -m realtime.offline` runs, with its
    # default median
    assert calls == [{"max_frames": 6, "median_window": 5}]
    (source,) = result.sources
    assert source.num_frames == 6 and source.frames_with_person == 6
    assert -1 <= source.ssim <= 1 and np.isfinite(source.psnr_db)
    # the body region is the ground-truth mannequin's; the empty room is scored against the same ground truth
    assert source.body_frames == 6 and -1 <= source.body_ssim <= 1 and np.isfinite(source.body_psnr_db)
    assert source.background_body_ssim < source.background_ssim < 1
    assert source.background_body_psnr_db < source.background_psnr_db
    # Beside the body figures: the limb directions against the source frames (MediaPipe on both), and on the
    # ground-truth render their floor; MediaPipe finds the source dancer's elbows and wrists, so the missed
    # rates are measured.
    limbs = source.details["limb_agreement"]
    assert limbs["generated"]["num_frames"] == limbs["ground_truth_render"]["num_frames"] == 6
    assert limbs["generated"]["num_source_arm_joints"] > 0
    assert 0.0 <= source.missed_arm_joint_rate <= 1.0 and 0.0 <= source.reference_missed_arm_joint_rate <= 1.0
    assert source.missed_arm_joint_rate == pytest.approx(
        limbs["generated"]["num_missed_arm_joints"] / limbs["generated"]["num_source_arm_joints"]
    )
    for median, p90 in (
        (source.limb_direction_median_deg, source.limb_direction_p90_deg),
        (source.reference_limb_direction_median_deg, source.reference_limb_direction_p90_deg),
    ):
        assert (math.isnan(median) and math.isnan(p90)) or 0.0 <= median <= p90 <= 180.0
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert (tmp_path / "eval" / f"{video.stem}_sheet.png").is_file()


def test_train_evaluate_synthetic_cli(tiny_engine, tmp_path, capsys):
    from train.cli import evaluate_main

    video = shared_video("source_dance.mp4")
    out = tmp_path / "cli"
    args = ["--synthetic", "--engine", str(tiny_engine), "--source", str(video), "--out", str(out)]
    assert evaluate_main([*args, "--max-frames", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"{video.name}: 3 frames" in printed and "SSIM" in printed and "pose distance" in printed
    assert "body SSIM" in printed and "empty room against the same ground truth" in printed
    assert "limb directions against the source: median" in printed and "elbows+wrists missed" in printed
    assert (out / "metrics.json").is_file() and (out / f"{video.stem}_sheet.png").is_file()
    args[2] = str(tmp_path / "none.onnx")  # an engine that does not exist: argparse's one-line error, exit 2
    with pytest.raises(SystemExit) as exited:
        evaluate_main(args)
    assert exited.value.code == 2 and "none.onnx: no such file" in capsys.readouterr().err
