import pytest
import torch
from kernel_cases import random_case, standing

from kernels._build import cxx_compiler
from kernels.part_warp import fit_part_transforms
from kernels.part_warp import warp_body_parts as warp_op
from realtime.pose.render import default_part_radius_px, warp_body_parts
from realtime.pose.skeleton import (
    BODY_PART_INDEX,
    BODY_PARTS,
    NUM_BODY_PARTS,
    NUM_JOINTS,
    Joint,
    body_part_arrays,
)

needs_cxx = pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler for the CPU build")
IMPLS = ["ref", pytest.param("cpu", marks=needs_cxx)]
H = W = 64


def textured(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, H, W, generator=gen) * 0.9 + 0.1  # strictly positive
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    mask = (((xx - 32) / 20) ** 2 + ((yy - 34) / 30) ** 2 <= 1).float().expand(batch, H, W).contiguous()
    return image, mask


def part_labels_of(xy, conf, radius=6.0):
    """The reference's label map, through the op: warp an image whose value is 1 + part index."""
    from kernels.part_warp import _flat_segments, part_labels_ref

    _, segments = body_part_arrays()
    a, b, part = _flat_segments(torch.from_numpy(segments))
    return part_labels_ref(
        xy, conf, a, b, part, height=H, width=W, radius_sq=radius * radius, confidence_threshold=0.5
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_identity_pose_returns_the_masked_input_inside_the_parts(impl):
    image, mask = textured(2)
    xy, conf = standing(2)
    out = warp_body_parts(image, mask, xy, conf, xy, conf, radius_px=6.0, impl=impl)
    assert out.shape == image.shape and out.dtype == torch.float32
    covered = (part_labels_of(xy, conf) >= 0)[:, None].float()
    torch.testing.assert_close(out, image * mask[:, None] * covered, atol=1e-5, rtol=0)
    assert covered.mean() > 0.2  # the parts cover much of the person


@pytest.mark.parametrize("impl", IMPLS)
def test_a_translation_of_all_joints_moves_the_image(impl):
    image, mask = textured()
    xy, conf = standing()
    shift = torch.tensor([5.0, -3.0])
    out = warp_body_parts(image, mask, xy, conf, xy + shift, conf, radius_px=6.0, impl=impl)
    expected = warp_body_parts(image, mask, xy, conf, xy, conf, radius_px=6.0, impl=impl)
    expected = torch.roll(expected, shifts=(-3, 5), dims=(2, 3))
    expected[:, :, -3:, :] = 0  # rolled in from the other side: empty after a real shift
    expected[:, :, :, :5] = 0
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_missing_joints_skip_their_parts(impl):
    image, mask = textured()
    xy, conf = standing()
    full = warp_body_parts(image, mask, xy, conf, xy, conf, radius_px=6.0, impl=impl)
    target_conf = conf.clone()
    target_conf[0, Joint.RIGHT_WRIST] = 0.0  # the right lower arm loses one of its two joints
    out = warp_body_parts(image, mask, xy, conf, xy, target_conf, radius_px=6.0, impl=impl)
    labels = part_labels_of(xy, conf)[:, None].expand_as(image)
    lower_arm = labels == BODY_PART_INDEX["right_lower_arm"]
    # Skipped, not given to another part (up to grid_sample's rounding at the pixel centers).
    assert lower_arm.any() and out[lower_arm].abs().max() < 1e-4
    torch.testing.assert_close(out[~lower_arm], full[~lower_arm], atol=1e-4, rtol=0)
    nothing = warp_body_parts(image, mask, xy, conf, xy, torch.zeros_like(conf), radius_px=6.0, impl=impl)
    assert nothing.abs().max() == 0  # every joint missing: every part skipped


def test_a_limb_transform_keeps_the_width_and_maps_the_joints():
    xy, conf = standing()
    target = xy.clone()
    # Rotate the right lower arm by 90 degrees about the elbow and halve its length.
    elbow, wrist = xy[0, Joint.RIGHT_ELBOW], xy[0, Joint.RIGHT_WRIST]
    d = wrist - elbow
    target[0, Joint.RIGHT_WRIST] = elbow + 0.5 * torch.stack([-d[1], d[0]])
    part_joints, _ = body_part_arrays()
    forward, inverse, active = fit_part_transforms(xy, conf, target, conf, torch.from_numpy(part_joints))
    assert active.all()
    p = BODY_PART_INDEX["right_lower_arm"]
    a, t = forward[0, p, :, :2], forward[0, p, :, 2]
    for joint in (Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST):
        torch.testing.assert_close(a @ xy[0, joint].double() + t, target[0, joint].double())
    across = torch.stack([-d[1], d[0]]).double() / d.norm()
    torch.testing.assert_close((a @ across).norm(), torch.tensor(1.0, dtype=torch.float64))  # width kept
    identity = forward[0, BODY_PART_INDEX["torso"]]
    torch.testing.assert_close(identity, torch.eye(2, 3, dtype=torch.float64))  # unchanged parts: identity
    torch.testing.assert_close(inverse[0, p, :, :2] @ a, torch.eye(2, dtype=torch.float64))


def test_degenerate_transforms():
    xy, conf = standing()
    target = xy.clone()
    target[0, Joint.LEFT_WRIST] = target[0, Joint.LEFT_ELBOW]  # zero-length target limb: skipped
    source = xy.clone()
    source[0, Joint.RIGHT_KNEE] = source[0, Joint.RIGHT_HIP]  # zero-length source limb: a translation
    target[0, Joint.RIGHT_KNEE] += torch.tensor([3.0, 1.0])
    target[0, Joint.RIGHT_HIP] += torch.tensor([3.0, 1.0])
    part_joints, _ = body_part_arrays()
    forward, _, active = fit_part_transforms(source, conf, target, conf, torch.from_numpy(part_joints))
    assert not active[0, BODY_PART_INDEX["left_lower_arm"]]
    thigh = forward[0, BODY_PART_INDEX["right_upper_leg"]]
    assert active[0, BODY_PART_INDEX["right_upper_leg"]]
    torch.testing.assert_close(thigh[:, :2], torch.eye(2, dtype=torch.float64))
    moved = (target[0, Joint.RIGHT_KNEE] + target[0, Joint.RIGHT_HIP]) / 2 - source[0, Joint.RIGHT_HIP]
    torch.testing.assert_close(thigh[:, 2], moved.double())  # the translation of the means


def test_body_part_table():
    assert NUM_BODY_PARTS == 10 and len({p.name for p in BODY_PARTS}) == 10
    part_joints, part_segments = body_part_arrays()
    assert part_joints.shape == (10, 6) and part_segments.shape == (10, 5, 2)
    assert part_joints.min() == -1 and part_joints.max() < NUM_JOINTS
    for part in BODY_PARTS:  # every segment's joints are among the part's or the torso's midpoints
        assert len(part.joints) >= 2 and len(part.segments) >= 1


def test_bad_inputs_raise_clear_errors():
    image, mask = textured()
    xy, conf = standing()
    with pytest.raises(ValueError, match="person_mask must be"):
        warp_body_parts(image, mask[:, :10], xy, conf, xy, conf, impl="ref")
    with pytest.raises(ValueError, match="float32"):
        warp_body_parts(image.double(), mask, xy, conf, xy, conf, impl="ref")
    with pytest.raises(ValueError, match="target_joints_px must match"):
        warp_body_parts(image, mask, xy, conf, xy[:, :5], conf, impl="ref")
    with pytest.raises(ValueError, match="radius_px"):
        warp_body_parts(image, mask, xy, conf, xy, conf, radius_px=0.0, impl="ref")
    with pytest.raises(ValueError, match="impl"):
        warp_body_parts(image, mask, xy, conf, xy, conf, impl="fast")
    part_joints, part_segments = (torch.from_numpy(a) for a in body_part_arrays())
    with pytest.raises(ValueError, match="joint indices"):
        warp_op(image, mask, xy, conf, xy, conf, part_joints + 40, part_segments, radius_px=5.0, impl="ref")


def near_label_edge(labels: torch.Tensor) -> torch.Tensor:
    """bool (B, H, W): source pixels whose 3x3 neighbourhood holds more than one label."""
    lab = labels.float()[:, None]
    hi = torch.nn.functional.max_pool2d(lab, 3, 1, 1)
    lo = -torch.nn.functional.max_pool2d(-lab, 3, 1, 1)
    return (hi != lo)[:, 0]


@needs_cxx
@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (3, 64, 64), (2, 71, 45), (1, 256, 256)])
def test_cpu_build_matches_the_reference(batch, height, width):
    """Max abs difference < 1/255 at every pixel; in practice ~1e-5 (the same float32 formulas, the
    reference reaching the sample position through grid_sample's normalized coordinates)."""
    for seed in range(3):
        case = random_case(seed, batch, height, width)
        radius = 0.08 * min(height, width) + 0.5
        ref = warp_body_parts(*case, radius_px=radius, impl="ref")
        cpu = warp_body_parts(*case, radius_px=radius, impl="cpu")
        diff = (cpu - ref).abs()
        assert diff.max() < 1 / 255, f"max abs diff {diff.max():.2e}"
        assert (ref > 0).float().mean() > 0.05 or height < 8
        if batch > 1:
            assert cpu[1].abs().max() == 0


def test_the_default_reach_follows_the_canvas_pixel_count_not_its_short_side():
    assert default_part_radius_px(256, 256) == pytest.approx(20.48)
    # a portrait canvas of about 256x256's pixels (a person filling it is as large): about the same reach
    assert default_part_radius_px(192, 352) == pytest.approx(0.08 * (192 * 352) ** 0.5)
    assert 20.48 < default_part_radius_px(192, 352) < 21.0 and default_part_radius_px(160, 352) > 18.9
