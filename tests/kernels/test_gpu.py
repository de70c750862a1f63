"""CUDA kernels against the reference and the CPU build; skipped without a GPU and pycuda."""

import pytest
import torch
from kernel_cases import random_case, random_poses

from bench.gpu_backends import median_ms
from kernels._build import cuda_available_reason
from kernels.rasterize import RenderParams
from realtime.pose.render import rasterize_stick_figure, warp_body_parts

_reason = "no CUDA device" if not torch.cuda.is_available() else cuda_available_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_reason is not None, reason=f"CUDA kernels: {_reason}")]


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (4, 37, 53), (3, 256, 256), (2, 512, 512)])
def test_rasterize_cuda_matches_reference_and_cpu(batch, height, width):
    params = RenderParams(limb_thickness_px=3.3, joint_radius_px=2.7, confidence_threshold=0.4)
    xy, conf = random_poses(0, batch, height, width)
    ref = rasterize_stick_figure(xy, conf, height=height, width=width, params=params, impl="ref")
    got = rasterize_stick_figure(
        xy.cuda(), conf.cuda(), height=height, width=width, params=params, impl="cuda"
    )
    assert got.device.type == "cuda" and got.shape == ref.shape
    torch.testing.assert_close(got.cpu(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (3, 64, 64), (2, 71, 45), (1, 256, 256)])
def test_part_warp_cuda_matches_the_cpu_build_and_the_reference(batch, height, width):
    case = random_case(0, batch, height, width)
    radius = 0.08 * min(height, width) + 0.5
    ref = warp_body_parts(*case, radius_px=radius, impl="ref")
    cpu = warp_body_parts(*case, radius_px=radius, impl="cpu")
    got = warp_body_parts(*(t.cuda() for t in case), radius_px=radius, impl="cuda").cpu()
    assert (got - ref).abs().max() < 1 / 255
    torch.testing.assert_close(got, cpu, atol=1e-5, rtol=0)


def test_launch_on_a_side_stream_is_ordered_with_it():
    xy, conf = random_poses(1, 8, 256, 256)
    xy, conf = xy.cuda(), conf.cuda()
    params = RenderParams()
    expected = rasterize_stick_figure(xy, conf, height=256, width=256, params=params, impl="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        moved = xy * 1.0  # produced on the side stream just before the launch
        got = rasterize_stick_figure(moved, conf, height=256, width=256, params=params, impl="cuda")
        total = got.sum()  # consumed on the side stream just after
    side.synchronize()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(total, expected.sum())


@pytest.mark.parametrize("size", [256, 512])
def test_timings(size, record_property):
    xy, conf = (t.cuda() for t in random_poses(2, 1, size, size))
    case = [t.cuda() for t in random_case(2, 1, size, size)]
    params = RenderParams.for_canvas(size, size)

    raster = median_ms(
        lambda: rasterize_stick_figure(xy, conf, height=size, width=size, params=params, impl="cuda"),
        runs=200,
    )
    warp = median_ms(lambda: warp_body_parts(*case, impl="cuda"), runs=200)
    record_property("rasterize_ms", raster)
    record_property("part_warp_ms", warp)
    print(f"\n{size}x{size} CUDA median: rasterize {raster:.3f} ms, part warp {warp:.3f} ms")
    assert raster < 5 and warp < 20  # generous: launch overheads included
