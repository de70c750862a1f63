"""The reference appearance, the warped appearance prior and the garment colour
(realtime/model/appearance.py), and target data through prepare, fit, export and the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY_MODEL_OVERRIDES, make_tiny_prepared, standing_pose
from realtime.model.appearance import (
    APPEARANCE_PRIOR,
    EXCLUDE_FRAMES,
    MIN_REFERENCE_GAP_FRAMES,
    REFERENCE_IMAGES,
    REFERENCE_KEYPOINTS,
    AppearancePrior,
    body_orientation,
    choose_reference_parts,
    garment_masks,
    recolor_garment,
    reference_frame_indices,
)
from realtime.model.inputs import (
    FrameContext,
    GeneratorInputs,
    InputRole,
    TensorSpec,
    declare_input,
    produce_frame_inputs,
)
from realtime.pose.estimators import PoseFrame
from realtime.pose.render import body_part_labels
from realtime.pose.skeleton import BODY_PART_INDEX, NUM_BODY_PARTS, NUM_JOINTS, Joint

SIZE = 96


def _keypoints(joints: np.ndarray, frame: int, confidence: float = 1.0) -> np.ndarray:
    """``(NUM_JOINTS, 4)`` reference keypoints of one pose."""
    out = np.zeros((NUM_JOINTS, 4), np.float32)
    out[:, :2], out[:, 2], out[:, 3] = joints, confidence, frame
    return out


def _mirrored(joints: np.ndarray, width: int) -> np.ndarray:
    """The same pose seen from the back: x mirrored, so the person's left is on the image's left."""
    out = joints.copy()
    out[:, 0] = width - out[:, 0]
    return out


def _arm_up(joints: np.ndarray) -> np.ndarray:
    """The right arm raised straight up from the shoulder."""
    out = joints.copy()
    shoulder = out[Joint.RIGHT_SHOULDER]
    out[Joint.RIGHT_ELBOW] = shoulder + (0, -14)
    out[Joint.RIGHT_WRIST] = shoulder + (0, -28)
    return out


def test_orientation_tells_front_from_back_and_profile() -> None:
    front = torch.from_numpy(standing_pose(SIZE, SIZE))
    back = torch.from_numpy(_mirrored(standing_pose(SIZE, SIZE), SIZE))
    profile = front.clone()
    profile[:, 0] = SIZE / 2  # every joint on one vertical line
    present = torch.ones(3, NUM_JOINTS, dtype=torch.bool)
    facing, yaw = body_orientation(torch.stack([front, back, profile]), present)
    assert facing[0] > 0.3 and facing[1] < -0.3 and abs(float(facing[2])) < 1e-6
    assert torch.all(yaw.abs() < 1e-6)  # the nose between the ears in all three


def test_each_part_comes_from_the_nearest_reference() -> None:
    front = standing_pose(SIZE, SIZE)
    refs = torch.from_numpy(
        np.stack(
            [_keypoints(front, 0), _keypoints(_mirrored(front, SIZE), 100), _keypoints(_arm_up(front), 200)]
        )
    )
    drive = torch.from_numpy(np.stack([front, _mirrored(front, SIZE), _arm_up(front)]))
    choice = choose_reference_parts(refs, drive, torch.ones(3, NUM_JOINTS))
    torso, arm = BODY_PART_INDEX["torso"], BODY_PART_INDEX["right_upper_arm"]
    assert choice.shape == (3, NUM_BODY_PARTS) and choice.dtype == torch.int64
    assert choice[0, torso] == 0 and choice[0, arm] == 0  # front, arm down
    assert choice[1, torso] == 1  # from the back: the back view
    assert choice[2, arm] == 2 and choice[2, BODY_PART_INDEX["right_lower_arm"]] == 2  # arm up: that view
    assert choice[2, BODY_PART_INDEX["left_upper_arm"]] == 0  # the other arm is down in both: facing decides

    # Training: the frame's own reference (and any within EXCLUDE_FRAMES) is avoided while another has
    # the part.
    frames = torch.tensor([0, EXCLUDE_FRAMES, 200 + EXCLUDE_FRAMES + 1])
    choice = choose_reference_parts(
        refs, torch.from_numpy(np.stack([front] * 3)), torch.ones(3, NUM_JOINTS), frames
    )
    assert choice[0, torso] != 0 and choice[1, torso] != 0 and choice[2, torso] == 0

    # A reference without the part's joints cannot supply it; with no reference at all, -1.
    refs_no_arm = refs.clone()
    refs_no_arm[:, Joint.RIGHT_ELBOW, 2] = 0.0
    choice = choose_reference_parts(refs_no_arm, drive, torch.ones(3, NUM_JOINTS))
    assert torch.all(choice[:, arm] == -1) and torch.all(choice[:, torso] >= 0)
    with pytest.raises(ValueError, match="reference_keypoints"):
        choose_reference_parts(refs[..., :3], drive, torch.ones(3, NUM_JOINTS))


def test_reference_frames_cover_views_and_are_spread_in_time() -> None:
    front, back, up = (
        standing_pose(SIZE, SIZE),
        _mirrored(standing_pose(SIZE, SIZE), SIZE),
        _arm_up(standing_pose(SIZE, SIZE)),
    )
    # 200 frames: front for 0-79 (frame 40 the widest), back for 80-139, the arm up for 140-199.
    joints = np.stack([front] * 80 + [back] * 60 + [up] * 60).astype(np.float32)
    joints[40, Joint.LEFT_SHOULDER, 0] += 3  # the most frontal frame
    confidence = np.ones(joints.shape[:2], np.float32)
    confidence[150:, Joint.LEFT_KNEE] = 0.1  # arm-up frames after 150 lack a body joint
    picks = reference_frame_indices(joints, confidence, count=3)
    assert picks.dtype == np.int64 and picks[0] == 40
    assert {int(p) // 10 for p in picks[1:]} <= set(range(8, 15))  # one back, one arm-up (before 150)
    assert any(80 <= p < 140 for p in picks) and any(140 <= p < 150 for p in picks)
    assert np.diff(np.sort(picks)).min() >= MIN_REFERENCE_GAP_FRAMES or len(set(picks.tolist())) < 3
    with pytest.raises(ValueError):
        reference_frame_indices(joints[:0], confidence[:0])


def _person(joints: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured person image ``(4, H, W)`` (RGB by x and y, person mask from the part labels) for a pose."""
    labels = body_part_labels(
        torch.from_numpy(joints)[None], torch.ones(1, NUM_JOINTS), height=SIZE, width=SIZE
    )[0]
    mask = (labels >= 0).float()
    y, x = torch.meshgrid(torch.linspace(0.2, 1, SIZE), torch.linspace(0.2, 1, SIZE), indexing="ij")
    image = torch.stack([x, y, 0.5 * torch.ones_like(x), mask])
    return image, mask


def test_the_prior_moves_the_reference_into_the_pose() -> None:
    pose = standing_pose(SIZE, SIZE)
    image, mask = _person(pose)
    images = image[None].repeat(2, 1, 1, 1)
    keypoints = torch.from_numpy(np.stack([_keypoints(pose, 0), _keypoints(pose, 100)]))
    prior = AppearancePrior()

    # The reference's own pose: the prior is the reference (premultiplied) with its mask as coverage.
    same = prior(images, keypoints, torch.from_numpy(pose)[None], torch.ones(1, NUM_JOINTS))
    assert same.shape == (1, 4, SIZE, SIZE) and same.dtype == torch.float32
    inside = mask > 0.5
    assert float((same[0, 3] - mask).abs().mean()) < 0.02
    assert float((same[0, :3, inside] - image[:3, inside]).abs().mean()) < 0.02

    # Moved 10 px right and 6 px down: the prior moves with it.
    moved = same.new_tensor(pose + np.float32([10, 6]))[None]
    shifted = prior(images, keypoints, moved, torch.ones(1, NUM_JOINTS))
    expected = torch.roll(same, shifts=(6, 10), dims=(-2, -1))
    assert float((shifted - expected)[..., 8:-8, 12:-12].abs().mean()) < 0.01
    # A pose with no joints present gets an empty prior, not an error.
    empty = prior(images, keypoints, moved, torch.zeros(1, NUM_JOINTS))
    assert float(empty.abs().max()) == 0.0


def test_the_prior_is_a_declared_input_that_carries_its_target_data() -> None:
    spec = GeneratorInputs.of(["stick_figure", "previous_frame", "appearance_prior"])
    assert spec.names == ("stick_figure", "previous_frame", "appearance_prior")
    assert spec.target_data == (REFERENCE_IMAGES, REFERENCE_KEYPOINTS) and spec.in_channels == 3 + 3 + 4
    assert spec.target_values == (REFERENCE_IMAGES, REFERENCE_KEYPOINTS)
    assert GeneratorInputs.from_json(spec.to_json()) == spec
    assert (
        "target_data" not in GeneratorInputs.of(["stick_figure"]).to_json()
    )  # older readers see nothing new
    with pytest.raises(ValueError, match="target data"):
        GeneratorInputs((APPEARANCE_PRIOR, REFERENCE_IMAGES))
    with pytest.raises(ValueError, match="not declared as target_data"):
        declare_input(TensorSpec("needy", 1), lambda c: c.stick_figure[:, :1], needs=("stick_figure",))
    with pytest.raises(ValueError, match="only a per_frame"):
        declare_input(TensorSpec("t", 1, InputRole.PER_TARGET), lambda f: f, needs=("reference_images",))

    pose = standing_pose(SIZE, SIZE)
    context = FrameContext(
        torch.from_numpy(pose)[None], torch.ones(1, NUM_JOINTS), torch.zeros(1, 3, SIZE, SIZE)
    )
    with pytest.raises(KeyError, match="prepare the target again"):
        produce_frame_inputs(spec, context)


def test_garment_recolour_hits_the_requested_colour_and_leaves_the_rest() -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab

    pose = standing_pose(SIZE, SIZE)
    image, _ = _person(pose)
    images, keypoints = image[None], torch.from_numpy(_keypoints(pose, 0))[None]
    upper = garment_masks(images, keypoints, "upper")[0] > 0.5
    assert upper.any() and not upper[: int(pose[Joint.NOSE, 1])].any()  # nothing above the nose
    for colour in ((0.8, 0.1, 0.1), (0.1, 0.6, 0.2), (0.9, 0.8, 0.2)):
        out = recolor_garment(images, keypoints, "upper", colour)
        median = out[0, :3, upper].median(dim=1).values.numpy()
        delta = deltaE_ciede2000(
            rgb2lab(np.float64(colour)[None, None]), rgb2lab(median[None, None].astype(np.float64))
        )
        assert float(np.asarray(delta).item()) < 3.0
        assert torch.equal(
            out[0, :, ~(garment_masks(images, keypoints, "upper")[0] > 0)],
            images[0, :, ~(garment_masks(images, keypoints, "upper")[0] > 0)],
        )
    with pytest.raises(ValueError, match="garment"):
        recolor_garment(images, keypoints, "hat", (0, 0, 0))
    with pytest.raises(ValueError, match="rgb"):
        recolor_garment(images, keypoints, "upper", (2, 0, 0))


def test_the_prior_is_prepared_trained_exported_and_run(tmp_path: Path) -> None:
    """Target data end to end: prepared (float32 keypoints), in the checkpoint, in NAME.target_inputs.npz but
    not a graph input, loaded by Target, fed to the prior's producer by the pipeline."""
    from export.onnx import export_onnx
    from realtime.model.bundle import read_bundle, read_target_inputs
    from realtime.model.pipeline import Retargeter, Target
    from train.checkpoint import load_checkpoint
    from train.config import load_config
    from train.dataset import FramePairs, load_prepared, target_input_path
    from train.fit import fit

    data = make_tiny_prepared(tmp_path / "prepared", num_frames=12, width=64, height=64)
    keypoints = np.load(target_input_path(data, REFERENCE_KEYPOINTS.name))
    images = np.load(target_input_path(data, REFERENCE_IMAGES.name))
    assert keypoints.dtype == np.float32 and keypoints.shape == (4, NUM_JOINTS, 4)
    assert images.shape == (4, 4, 64, 64) and 0 <= images.min() and images.max() <= 1
    prepared = load_prepared(data)
    assert np.all(keypoints[:, 0, 3] < prepared.meta.train_end)  # references from the training frames only

    pairs = FramePairs(
        prepared, inputs=GeneratorInputs.of(["stick_figure", "previous_frame", "appearance_prior"])
    )
    item = pairs[3]
    assert item["appearance_prior"].shape == (4, 64, 64) and float(item["appearance_prior"][3].max()) > 0.5
    assert "reference_images" not in item  # target data stays out of the batch

    config = load_config(
        None, [*TINY_MODEL_OVERRIDES, "steps=2", "generator.extra_inputs=[appearance_prior]"]
    )
    checkpoint = fit(data, tmp_path / "run", config)
    stored = load_checkpoint(checkpoint).target_inputs
    np.testing.assert_array_equal(stored["reference_keypoints"].numpy(), keypoints)

    engine = export_onnx(checkpoint, tmp_path / "prior.onnx").onnx_path
    graph = onnx.load(str(engine)).graph
    assert [i.name for i in graph.input] == ["stick_figure", "previous_frame", "appearance_prior"]
    bundle = read_bundle(engine)
    assert bundle.generator_inputs.target_data == (REFERENCE_IMAGES, REFERENCE_KEYPOINTS)
    loaded = read_target_inputs(engine, bundle)
    np.testing.assert_array_equal(loaded["reference_keypoints"], keypoints)  # float32 kept exactly

    target = Target.load(engine)
    assert tuple(target.per_target["reference_images"].shape) == (1, 4, 4, 64, 64)
    retargeter = Retargeter(target, live=False)
    joints, confidence = standing_pose(64, 64), np.ones(NUM_JOINTS, np.float32)
    retargeter.fit_source(np.stack([joints, joints]), np.stack([confidence, confidence]))
    result = retargeter.generate(PoseFrame(joints, confidence, 0, (64, 64)))
    assert result.generated.shape == (64, 64, 3)


def test_a_generator_blends_the_prior_where_it_trusts_it_and_it_covers() -> None:
    from realtime.model.nets import GeneratorSpec, GlobalGenerator, LocalEnhancer, blend_with_prior
    from train.config import load_config

    generated = torch.rand(1, 3, 8, 8) * 2 - 1
    prior = torch.rand(1, 4, 8, 8)
    prior[:, 3, :, :4] = 1.0  # covered on the left, not on the right
    prior[:, 3, :, 4:] = 0.0
    prior[:, :3] *= prior[:, 3:4]  # premultiplied
    trust, share = blend_with_prior(torch.cat([generated, torch.ones(1, 1, 8, 8)], 1), prior)
    ignore, _ = blend_with_prior(torch.cat([generated, -torch.ones(1, 1, 8, 8)], 1), prior)
    torch.testing.assert_close(share, prior[:, 3:4])  # full trust: the share is the coverage
    torch.testing.assert_close(trust[..., :4], prior[:, :3, :, :4])  # trusted and covered: the prior
    torch.testing.assert_close(trust[..., 4:], (generated[..., 4:] + 1) / 2)  # not covered: generated
    torch.testing.assert_close(ignore, (generated + 1) / 2)  # not trusted: generated everywhere

    spec_inputs = GeneratorInputs.of(["stick_figure", "previous_frame", "appearance_prior"])
    for cls, kind in ((GlobalGenerator, "global"), (LocalEnhancer, "local")):
        spec = GeneratorSpec(kind, 4, 2, 1, 1, 1, spec_inputs, blend_prior="appearance_prior")
        generator = cls(spec)
        assert GeneratorSpec.from_json(spec.to_json()) == spec
        prior = torch.rand(1, 4, 32, 32)
        prior[:, :3] *= prior[:, 3:4]  # premultiplied, as the producer makes it
        out = generator(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), prior)
        assert out.shape == (1, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(ValueError, match="4 channels"):
        GeneratorSpec("global", 4, 2, 1, inputs=spec_inputs, blend_prior="stick_figure")
    with pytest.raises(ValueError, match="not one of the inputs"):
        GeneratorSpec("global", 4, 2, 1, blend_prior="appearance_prior")
    # The light generator blends too (the real-time student), but not over a learned background.
    assert GeneratorSpec("mobile", 4, 2, 1, inputs=spec_inputs, blend_prior="appearance_prior").blend_prior
    with pytest.raises(ValueError, match="not a learned one"):
        GeneratorSpec(
            "mobile", 4, 2, 1, inputs=spec_inputs, blend_prior="appearance_prior", background_hw=(32, 32)
        )
    with pytest.raises(ValueError, match="must be one of generator.extra_inputs"):
        load_config(None, ["generator.blend_prior=appearance_prior"])
