"""Training pairs in poses and garment colours the recording never showed (train/novel_poses.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import standing_pose
from realtime.model.appearance import AppearancePrior
from realtime.model.inputs import GeneratorInputs
from realtime.pose.render import body_part_labels
from realtime.pose.skeleton import BODY_PART_INDEX, NUM_JOINTS, Joint
from train.config import DEFAULT_CONFIG_PATH, AugmentConfig, load_config
from train.dataset import FramePairs, load_prepared
from train.novel_poses import (
    random_garment_colour,
    recolour_frames,
    sample_novel_pose,
    warp_to_novel_pose,
)

SIZE = 128
BONES = (
    (Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW), (Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST),
    (Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW), (Joint.LEFT_ELBOW, Joint.LEFT_WRIST),
    (Joint.RIGHT_HIP, Joint.RIGHT_KNEE), (Joint.RIGHT_KNEE, Joint.RIGHT_ANKLE),
    (Joint.LEFT_HIP, Joint.LEFT_KNEE), (Joint.LEFT_KNEE, Joint.LEFT_ANKLE),
)  # fmt: skip
STILL = (Joint.NOSE, Joint.NECK, Joint.RIGHT_SHOULDER, Joint.LEFT_SHOULDER, Joint.MID_HIP, Joint.RIGHT_HIP)


def pair_of_poses() -> tuple[np.ndarray, np.ndarray]:
    joints = np.stack([standing_pose(SIZE, SIZE, 0.0), standing_pose(SIZE, SIZE, 0.5) + 2.0]).astype(
        np.float32
    )
    return joints, np.ones((2, NUM_JOINTS), np.float32)


def direction(joints: np.ndarray, a: Joint, b: Joint) -> float:
    d = joints[b] - joints[a]
    return math.atan2(float(d[1]), float(d[0]))


def test_novel_poses_keep_bone_lengths_and_give_both_frames_the_same_arms() -> None:
    joints, confidence = pair_of_poses()
    seen_arm_moves = 0
    for seed in range(20):
        novel, moved = sample_novel_pose(joints, confidence, 20.0, torch.Generator().manual_seed(seed))
        assert novel.shape == joints.shape and novel.dtype == np.float32
        for a, b in BONES:
            np.testing.assert_allclose(
                np.linalg.norm(novel[:, b] - novel[:, a], axis=-1),
                np.linalg.norm(joints[:, b] - joints[:, a], axis=-1),
                rtol=1e-4,
            )
        np.testing.assert_array_equal(novel[:, list(STILL)], joints[:, list(STILL)])  # torso and head stay
        if "right_upper_arm" in moved:
            seen_arm_moves += 1
            upper = [direction(novel[f], Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW) for f in range(2)]
            lower = [direction(novel[f], Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST) for f in range(2)]
            assert upper[0] == pytest.approx(upper[1], abs=1e-4)  # the same new direction in both frames
            assert lower[0] == pytest.approx(lower[1], abs=1e-4)
        else:
            np.testing.assert_array_equal(novel[:, Joint.RIGHT_WRIST], joints[:, Joint.RIGHT_WRIST])
        if "left_upper_leg" not in moved:
            np.testing.assert_array_equal(novel[:, Joint.LEFT_ANKLE], joints[:, Joint.LEFT_ANKLE])
    assert 10 <= seen_arm_moves < 20  # each arm moves with probability 0.8


def test_a_limb_with_a_missing_joint_stays_and_no_legs_without_a_leg_angle() -> None:
    joints, confidence = pair_of_poses()
    confidence[1, Joint.LEFT_ELBOW] = 0.0  # missing in one frame of the pair
    joints[0, Joint.RIGHT_SHOULDER] = np.nan
    for seed in range(10):
        novel, moved = sample_novel_pose(joints, confidence, 0.0, torch.Generator().manual_seed(seed))
        assert not {"left_upper_arm", "right_upper_arm"} & set(moved)
        assert not any("leg" in name for name in moved)
        np.testing.assert_array_equal(novel[:, Joint.LEFT_WRIST], joints[:, Joint.LEFT_WRIST])
    with pytest.raises(ValueError, match="expected joints"):
        sample_novel_pose(joints[0], confidence[0], 20.0)


def part_coloured_frame(joints: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (F, 3, H, W) painted by body part (right arm red, torso blue, the rest green) over grey, their
    masks (F, 1, H, W) and a white plate (3, H, W)."""
    labels = body_part_labels(
        torch.from_numpy(joints), torch.ones(joints.shape[:2]), height=SIZE, width=SIZE, radius_px=6.0
    )
    right_arm = (labels == BODY_PART_INDEX["right_upper_arm"]) | (
        labels == BODY_PART_INDEX["right_lower_arm"]
    )
    torso = labels == BODY_PART_INDEX["torso"]
    person = labels >= 0
    frames = torch.full((len(joints), 3, SIZE, SIZE), 0.5)
    colour = torch.tensor([0.0, 0.8, 0.0])[:, None]
    for f in range(len(joints)):
        frames[f][:, person[f]] = colour
        frames[f][:, torso[f]] = torch.tensor([0.0, 0.0, 0.9])[:, None]
        frames[f][:, right_arm[f]] = torch.tensor([0.9, 0.0, 0.0])[:, None]
    return frames, person[:, None].float(), torch.ones(3, SIZE, SIZE)


def test_the_frame_s_own_arm_is_warped_into_the_novel_pose_and_the_plate_shows_where_it_was() -> None:
    joints, confidence = pair_of_poses()
    frames, masks, plate = part_coloured_frame(joints)
    novel = joints.copy()
    for f in range(2):  # the right arm straight up
        shoulder = joints[f, Joint.RIGHT_SHOULDER]
        novel[f, Joint.RIGHT_ELBOW] = shoulder + [0.0, -17.0]
        novel[f, Joint.RIGHT_WRIST] = shoulder + [0.0, -32.0]
    out, out_masks = warp_to_novel_pose(
        frames, masks, torch.from_numpy(joints), torch.from_numpy(confidence), torch.from_numpy(novel),
        ("right_upper_arm", "right_lower_arm"), plate,
    )  # fmt: skip
    assert out.shape == frames.shape and out_masks.shape == masks.shape
    for f in range(2):
        x, y = (novel[f, Joint.RIGHT_ELBOW] + novel[f, Joint.RIGHT_WRIST]) / 2
        np.testing.assert_allclose(out[f, :, int(y), int(x)].numpy(), [0.9, 0.0, 0.0], atol=0.05)  # the arm
        assert float(out_masks[f, 0, int(y), int(x)]) > 0.95
        x, y = joints[f, Joint.RIGHT_WRIST]  # where the hand was, beside the hip: the plate now
        np.testing.assert_allclose(out[f, :, int(y), int(x)].numpy(), [1.0, 1.0, 1.0], atol=0.05)
        assert float(out_masks[f, 0, int(y), int(x)]) < 0.05
        x, y = joints[f, Joint.MID_HIP] - [0, 20]  # the torso is where it was
        np.testing.assert_allclose(out[f, :, int(y), int(x)].numpy(), [0.0, 0.0, 0.9], atol=1e-5)
    same = warp_to_novel_pose(frames, masks, torch.from_numpy(joints), torch.from_numpy(confidence),
                              torch.from_numpy(novel), (), plate)  # fmt: skip
    assert same[0] is frames and same[1] is masks  # nothing moved: the frames as they are


def test_recolouring_changes_the_garment_and_nothing_else() -> None:
    joints, confidence = pair_of_poses()
    frames, masks, _ = part_coloured_frame(joints)
    out = recolour_frames(
        frames, masks, torch.from_numpy(joints), torch.from_numpy(confidence), "lower", (0.9, 0.8, 0.1),
        AppearancePrior(),
    )  # fmt: skip
    for f in range(2):
        knee_to_hip = (joints[f, Joint.RIGHT_HIP] + joints[f, Joint.RIGHT_KNEE]) / 2  # the thigh: recoloured
        x, y = knee_to_hip.astype(int)
        r, g, b = out[f, :, y, x].tolist()
        assert r > 0.5 and g > 0.4 and b < 0.3
        x, y = (joints[f, Joint.MID_HIP] - [0, 20]).astype(int)  # the torso is not the lower garment
        assert torch.equal(out[f, :, y, x], frames[f, :, y, x])
    torch.testing.assert_close(out[:, :, :5, :5], frames[:, :, :5, :5])  # the room
    garment, rgb = random_garment_colour(torch.Generator().manual_seed(1))
    assert garment in {"upper", "lower"} and all(0 <= c <= 1 for c in rgb) and max(rgb) >= 0.2


def test_frame_pairs_move_a_share_of_pairs_into_novel_poses_and_colours(tiny_prepared: Path) -> None:
    data = load_prepared(tiny_prepared)
    inputs = GeneratorInputs.of(["stick_figure", "previous_frame", "appearance_prior", "background_plate"])
    real = FramePairs(data, inputs=inputs)[3]
    torch.manual_seed(0)
    never = AugmentConfig(enabled=True, joint_dropout_p=0.0, chain_dropout_p=0.0, jitter_px=0.0)
    everything = dataclasses.replace(never, novel_pose_p=1.0, garment_colour_p=1.0)
    pairs = FramePairs(data, inputs=inputs, augment=everything)
    changed = [pairs[3] for _ in range(4)]
    for item in changed:
        assert set(item) == set(real)
        assert not torch.equal(item["frame"], real["frame"])  # recoloured and in another pose
        torch.testing.assert_close(item["face_center"], real["face_center"])  # the head stays
    assert any(not torch.equal(item["stick_figure"], real["stick_figure"]) for item in changed)
    plain = FramePairs(data, inputs=inputs, augment=never)[3]
    assert torch.equal(plain["frame"], real["frame"]) and torch.equal(plain["mask"], real["mask"])
    with pytest.raises(ValueError, match="garment_colour_p needs the appearance prior"):
        FramePairs(data, augment=everything)  # a model without the prior cannot learn a garment's colour
    # A model without the plate still gets novel poses (the plate is made from the frames for them).
    assert FramePairs(data, augment=AugmentConfig(enabled=True, novel_pose_p=1.0))._plate is not None


def test_config_ranges() -> None:
    config = load_config(None, ["augment.novel_pose_p=0.3", "augment.garment_colour_p=0.2"])
    assert config.augment.novel_pose_p == 0.3 and config.augment.garment_colour_p == 0.2
    with pytest.raises(ValueError, match=r"augment\.novel_pose_p must be in \[0, 1\]"):
        load_config(None, ["augment.novel_pose_p=2"])
    with pytest.raises(ValueError, match=r"augment\.novel_leg_deg must be in \[0, 90\]"):
        load_config(None, ["augment.novel_leg_deg=120"])
    packaged = load_config(DEFAULT_CONFIG_PATH)
    assert packaged.augment.novel_pose_p > 0 and packaged.augment.garment_colour_p > 0
