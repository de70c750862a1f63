"""Pose corruption for robustness (dropout, chain dropout, jitter): statistics and the dataset's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import standing_pose
from realtime.pose.skeleton import NUM_JOINTS
from train.augment import LIMB_CHAINS, corrupt_pose
from train.config import AugmentConfig, load_config
from train.dataset import FramePairs, load_prepared

POSE = standing_pose(256, 256)
CONFIDENCE = np.ones(NUM_JOINTS, np.float32)


def corrupt_many(config: AugmentConfig, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = torch.Generator().manual_seed(seed)
    out = [corrupt_pose(POSE, CONFIDENCE, config, rng) for _ in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def test_joint_dropout_rate() -> None:
    _, confidence = corrupt_many(
        AugmentConfig(enabled=True, joint_dropout_p=0.2, chain_dropout_p=0, jitter_px=0)
    )
    dropped = confidence == 0
    assert dropped.mean() == pytest.approx(0.2, abs=0.01)  # 4000 x 23 draws: std of the mean ~0.001
    assert np.all(dropped.mean(axis=0) > 0.15) and np.all(dropped.mean(axis=0) < 0.25)  # every joint
    assert set(np.unique(confidence)) == {0.0, 1.0}  # the rest keep their confidence


def test_chain_dropout_drops_a_chain_from_a_joint_outward() -> None:
    _, confidence = corrupt_many(
        AugmentConfig(enabled=True, joint_dropout_p=0, chain_dropout_p=0.3, jitter_px=0)
    )
    dropped = confidence == 0
    frames_with_drops = dropped.any(axis=1)
    assert frames_with_drops.mean() == pytest.approx(0.3, abs=0.03)
    chains = [[int(j) for j in chain] for chain in LIMB_CHAINS]
    for row in dropped[frames_with_drops]:
        matches = [
            chain
            for chain in chains
            if row[chain].any() and not row[[j for j in range(NUM_JOINTS) if j not in chain]].any()
        ]
        assert len(matches) == 1, "exactly one chain loses joints"
        flags = row[matches[0]]
        start = int(np.argmax(flags))
        assert flags[start:].all() and not flags[:start].any(), "dropped from a joint to the chain's end"
    # Every chain, and every start joint within a chain, is drawn.
    assert all(dropped[:, chain[0]].any() and dropped[:, chain[-1]].any() for chain in chains)


def test_jitter_is_gaussian_with_the_given_std() -> None:
    joints, confidence = corrupt_many(
        AugmentConfig(enabled=True, joint_dropout_p=0, chain_dropout_p=0, jitter_px=2.0)
    )
    offsets = joints - POSE
    assert (confidence == 1).all()
    assert offsets.mean() == pytest.approx(0.0, abs=0.02)
    assert offsets.std() == pytest.approx(2.0, rel=0.02)
    assert np.mean(np.abs(offsets) < 2.0) == pytest.approx(0.6827, abs=0.01)  # one sigma


def test_corrupt_pose_leaves_its_inputs_alone_and_checks_shapes() -> None:
    pose, confidence = POSE.copy(), CONFIDENCE.copy()
    corrupt_pose(pose, confidence, AugmentConfig(enabled=True, joint_dropout_p=1.0))
    np.testing.assert_array_equal(pose, POSE)
    np.testing.assert_array_equal(confidence, CONFIDENCE)
    with pytest.raises(ValueError, match="expected joints"):
        corrupt_pose(POSE[:3], CONFIDENCE, AugmentConfig())


def test_config_keys_and_ranges() -> None:
    config = load_config(None, ["augment.enabled=true", "augment.jitter_px=0.5"])
    assert config.augment == AugmentConfig(enabled=True, jitter_px=0.5)
    assert not load_config(None).augment.enabled  # off by default
    with pytest.raises(ValueError, match=r"augment\.joint_dropout_p must be in \[0, 1\]"):
        load_config(None, ["augment.joint_dropout_p=1.5"])
    with pytest.raises(ValueError, match=r"augment\.jitter_px must be >= 0"):
        load_config(None, ["augment.jitter_px=-1"])


def test_frame_pairs_render_augmented_stick_figures_on_the_fly(tiny_prepared: Path) -> None:
    data = load_prepared(tiny_prepared)
    stored = FramePairs(data, "train")
    item = stored[2]
    assert set(item) == {
        "stick_figure_prev", "stick_figure", "frame_prev", "frame", "mask_prev", "mask",
        "face_center_prev", "face_center",
    }  # fmt: skip
    np.testing.assert_allclose(item["face_center"].numpy(), data.face_boxes[3].reshape(2, 2).mean(axis=0))
    # Without corruption, the on-the-fly drawing is the stored stick figure (up to its uint8 rounding).
    exact = AugmentConfig(enabled=True, joint_dropout_p=0, chain_dropout_p=0, jitter_px=0)
    clean = FramePairs(data, "train", augment=exact)
    assert torch.allclose(clean[2]["stick_figure"], item["stick_figure"], atol=0.5 / 255 + 1e-6)
    assert torch.allclose(clean[2]["stick_figure_prev"], item["stick_figure_prev"], atol=0.5 / 255 + 1e-6)
    # A disabled config keeps the stored figures; an enabled one changes them.
    assert FramePairs(data, "train", augment=AugmentConfig(enabled=False)).augment is None
    torch.manual_seed(0)
    noisy = FramePairs(data, "train", augment=AugmentConfig(enabled=True, joint_dropout_p=0.5, jitter_px=3.0))
    assert not torch.allclose(noisy[2]["stick_figure"], item["stick_figure"], atol=0.1)
    assert torch.equal(noisy[2]["frame"], item["frame"])  # frames are never touched


def test_frame_pairs_with_faces_only(tiny_prepared: Path) -> None:
    data = load_prepared(tiny_prepared)
    data.face_boxes = data.face_boxes.copy()
    data.face_boxes[3] = np.nan
    pairs = FramePairs(data, "train", require_face=True)
    assert 3 not in pairs.indices and 4 not in pairs.indices and len(pairs) == len(FramePairs(data)) - 2
    data.face_boxes[:] = np.nan
    with pytest.raises(ValueError, match="face stage needs visible faces"):
        FramePairs(data, "train", require_face=True)
