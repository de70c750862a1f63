import numpy as np
import pytest
import torch
from kernel_cases import random_poses

from kernels._build import cxx_compiler
from kernels.rasterize import RenderParams
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.skeleton import (
    JOINT_COLORS,
    LIMB_INDEX,
    LIMBS,
    NUM_JOINTS,
    Joint,
    joint_colors,
    limb_arrays,
)

PARAMS = RenderParams(limb_thickness_px=4.0, joint_radius_px=0.0, confidence_threshold=0.5)
needs_cxx = pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler for the CPU build")
IMPLS = ["ref", pytest.param("cpu", marks=needs_cxx)]


def pose_with(joints: dict[Joint, tuple[float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-image batch where only ``joints`` are present."""
    xy = torch.zeros(1, NUM_JOINTS, 2)
    conf = torch.zeros(1, NUM_JOINTS)
    for joint, (x, y) in joints.items():
        xy[0, joint] = torch.tensor([x, y])
        conf[0, joint] = 1.0
    return xy, conf


def color_of(limb: str) -> torch.Tensor:
    return torch.tensor(LIMBS[LIMB_INDEX[limb]].color, dtype=torch.float32) / 255


@pytest.mark.parametrize("impl", IMPLS)
def test_a_limb_is_drawn_in_its_exact_color_with_an_antialiased_edge(impl):
    xy, conf = pose_with({Joint.RIGHT_ELBOW: (8.0, 16.0), Joint.RIGHT_WRIST: (24.0, 16.0)})
    img = rasterize_stick_figure(xy, conf, height=32, width=32, params=PARAMS, impl=impl)[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    color = color_of("right_forearm")
    # Pixel centers at y = 15.5 and 16.5 are 0.5 px from the segment: full coverage (half width 2 + 0.5).
    torch.testing.assert_close(img[:, 15, 16], color)
    torch.testing.assert_close(img[:, 16, 16], color)
    # y = 17.5 is 1.5 px away: coverage 2 + 0.5 - 1.5 = 1; y = 18.5 is 2.5 px away: coverage 0 (edge).
    torch.testing.assert_close(img[:, 17, 16], color)
    torch.testing.assert_close(img[:, 18, 16], torch.zeros(3))
    # Round cap: 1.5 px beyond the wrist along the limb, 0.5 px off its axis -> distance ~1.58 -> 0.92.
    expected = (2.5 - float(np.hypot(1.5, 0.5))) * color
    torch.testing.assert_close(img[:, 15, 25], expected)
    assert img.min() >= 0 and img.max() <= 1


@pytest.mark.parametrize("impl", IMPLS)
def test_missing_joint_hides_its_limbs_and_far_pixels_stay_black(impl):
    xy, conf = pose_with({Joint.RIGHT_ELBOW: (8.0, 16.0), Joint.RIGHT_WRIST: (24.0, 16.0)})
    conf[0, Joint.RIGHT_WRIST] = 0.49  # below the threshold
    img = rasterize_stick_figure(xy, conf, height=32, width=32, params=PARAMS, impl=impl)
    assert img.abs().max() == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_later_limb_covers_earlier_one_where_they_cross(impl):
    xy, conf = pose_with(
        {
            Joint.MID_HIP: (16.0, 30.0),  # spine: vertical, drawn first
            Joint.NECK: (16.0, 2.0),
            Joint.RIGHT_SHOULDER: (2.0, 2.0),  # right clavicle: horizontal from the neck, drawn later
        }
    )
    img = rasterize_stick_figure(xy, conf, height=32, width=32, params=PARAMS, impl=impl)[0]
    torch.testing.assert_close(img[:, 1, 15], color_of("right_clavicle"))
    torch.testing.assert_close(img[:, 20, 15], color_of("spine"))


@pytest.mark.parametrize("impl", IMPLS)
def test_joint_discs_and_a_zero_length_limb(impl):
    params = RenderParams(limb_thickness_px=2.0, joint_radius_px=3.0)
    xy, conf = pose_with({Joint.RIGHT_ELBOW: (10.0, 10.0), Joint.RIGHT_WRIST: (10.0, 10.0)})
    img = rasterize_stick_figure(xy, conf, height=20, width=20, params=params, impl=impl)[0]
    wrist_color = torch.tensor(JOINT_COLORS[Joint.RIGHT_WRIST], dtype=torch.float32) / 255
    torch.testing.assert_close(img[:, 9, 9], wrist_color)  # the wrist's disc is drawn last, on top
    assert img[:, 9, 14].abs().max() == 0  # 4.5 px away: outside the 3 px disc's ramp


@pytest.mark.parametrize("impl", IMPLS)
def test_joints_off_canvas_and_non_finite_missing_joints(impl):
    xy, conf = pose_with({Joint.RIGHT_ELBOW: (-500.0, -500.0), Joint.RIGHT_WRIST: (-400.0, -500.0)})
    xy[0, Joint.LEFT_WRIST] = float("nan")  # missing (confidence 0): must not poison the image
    img = rasterize_stick_figure(xy, conf, height=16, width=16, params=PARAMS, impl=impl)
    assert torch.isfinite(img).all() and img.abs().max() == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_batch_equals_single_images(impl):
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(3, NUM_JOINTS, 2, generator=gen) * 48
    conf = torch.rand(3, NUM_JOINTS, generator=gen)
    params = RenderParams()
    batch = rasterize_stick_figure(xy, conf, height=48, width=40, params=params, impl=impl)
    for i in range(3):
        single = rasterize_stick_figure(
            xy[i : i + 1], conf[i : i + 1], height=48, width=40, params=params, impl=impl
        )
        torch.testing.assert_close(batch[i : i + 1], single)
    assert batch.shape == (3, 3, 48, 40)


def test_bad_inputs_raise_clear_errors():
    xy, conf = pose_with({})
    with pytest.raises(ValueError, match="joints_px must be"):
        rasterize_stick_figure(xy[:, :5], conf[:, :5], height=8, width=8, params=PARAMS)
    with pytest.raises(ValueError, match="float32"):
        rasterize_stick_figure(xy.double(), conf, height=8, width=8, params=PARAMS)
    with pytest.raises(ValueError, match="impl"):
        rasterize_stick_figure(xy, conf, height=8, width=8, params=PARAMS, impl="fast")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        rasterize_stick_figure(xy, conf, height=8, width=8, params=PARAMS, impl="cuda")
    with pytest.raises(ValueError, match="thickness"):
        RenderParams(limb_thickness_px=0)


def dense_stick_figure(xy, conf, height, width, params):
    """The drawing model evaluated on every pixel (no windows): what the reference must equal."""
    parents, children, limb_rgb = (torch.from_numpy(a) for a in limb_arrays())
    present = conf >= params.confidence_threshold
    py = (torch.arange(height) + 0.5).view(1, -1, 1)
    px = (torch.arange(width) + 0.5).view(1, 1, -1)
    out = torch.zeros(xy.shape[0], 3, height, width)

    def over(out, alpha, color):
        return out * (1 - alpha[:, None]) + color.view(1, 3, 1, 1) * alpha[:, None]

    for i in range(len(parents)):
        a, b = xy[:, parents[i]].view(-1, 2, 1, 1), xy[:, children[i]].view(-1, 2, 1, 1)
        d = b - a
        length_sq = (d * d).sum(1)
        t = (((px - a[:, 0]) * d[:, 0] + (py - a[:, 1]) * d[:, 1]) / length_sq.clamp_min(1e-12)).clamp(0, 1)
        dist = torch.hypot(px - a[:, 0] - t * d[:, 0], py - a[:, 1] - t * d[:, 1])
        drawn = (present[:, parents[i]] & present[:, children[i]]).float().view(-1, 1, 1)
        out = over(out, (params.limb_thickness_px / 2 + 0.5 - dist).clamp(0, 1) * drawn, limb_rgb[i])
    for j in range(NUM_JOINTS):
        dist = torch.hypot(px - xy[:, j, 0].view(-1, 1, 1), py - xy[:, j, 1].view(-1, 1, 1))
        alpha = (params.joint_radius_px + 0.5 - dist).clamp(0, 1) * present[:, j].float().view(-1, 1, 1)
        out = over(out, alpha, torch.from_numpy(joint_colors())[j])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_windowed_reference_equals_every_pixel_evaluation(seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(4, NUM_JOINTS, 2, generator=gen) * 120 - 30  # some joints off the 60x80 canvas
    conf = torch.rand(4, NUM_JOINTS, generator=gen)
    xy[0, 3] = xy[0, 2]  # a zero-length limb where both ends are present
    params = RenderParams(limb_thickness_px=3.5, joint_radius_px=2.5, confidence_threshold=0.3)
    got = rasterize_stick_figure(xy, conf, height=60, width=80, params=params, impl="ref")
    torch.testing.assert_close(got, dense_stick_figure(xy, conf, 60, 80, params), atol=1e-5, rtol=0)


@needs_cxx
@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (4, 37, 53), (3, 256, 256), (2, 129, 64)])
def test_cpu_build_matches_the_reference(batch, height, width):
    """Tolerance 1e-5 everywhere: both compute the same float32 formula (no edge exception needed)."""
    params = RenderParams(limb_thickness_px=3.3, joint_radius_px=2.7, confidence_threshold=0.4)
    for seed in range(3):
        xy, conf = random_poses(seed, batch, height, width)
        ref = rasterize_stick_figure(xy, conf, height=height, width=width, params=params, impl="ref")
        cpu = rasterize_stick_figure(xy, conf, height=height, width=width, params=params, impl="cpu")
        assert cpu.shape == ref.shape and cpu.dtype == torch.float32
        torch.testing.assert_close(cpu, ref, atol=1e-5, rtol=0)
    if batch > 1:
        assert cpu[1].abs().max() == 0  # the all-missing image stays black


@needs_cxx
def test_cpu_build_with_no_discs_and_non_contiguous_inputs():
    params = RenderParams(limb_thickness_px=6.0, joint_radius_px=0.0)
    xy, conf = random_poses(7, 3, 64, 64)
    xy_t = xy.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    ref = rasterize_stick_figure(xy, conf, height=64, width=64, params=params, impl="ref")
    cpu = rasterize_stick_figure(xy_t, conf, height=64, width=64, params=params, impl="cpu")
    torch.testing.assert_close(cpu, ref, atol=1e-5, rtol=0)


def test_render_params_follow_the_canvas_pixel_count_not_its_short_side():
    square = RenderParams.for_canvas(256, 256)
    assert (square.limb_thickness_px, square.joint_radius_px) == (4.0, 3.0)
    portrait = RenderParams.for_canvas(192, 352)  # about 256x256's pixels: a person filling it draws as thick
    assert portrait.limb_thickness_px == pytest.approx(4.0 * np.sqrt(192 * 352) / 256, abs=0.01)
    assert 4.0 <= portrait.limb_thickness_px < 4.2
    assert RenderParams.for_canvas(512, 512).limb_thickness_px == 8.0
