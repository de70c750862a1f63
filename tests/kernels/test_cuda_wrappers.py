"""The CUDA path of both kernels on the CPU: the ``__global__`` wrappers of ``kernels/*.cu`` compiled by g++
with ``kernels/cuda_host_shim.h`` and run over the launch grid as the GPU would, launched through the ops'
own CUDA code (argument checks, scratch buffers, ``launch_on_current_stream``) against a pycuda test double
(``fake_pycuda.py``), and compared with the PyTorch reference on random inputs with the degenerate cases.

These cover what the per-pixel functions' host build cannot: the wrappers' index arithmetic and bounds, the
grid and block the Python side chooses, the argument formats against the wrappers' signatures, the stream a
launch goes to, and no host synchronization per call (issue 20)."""

import shutil
from contextlib import contextmanager

import pytest
import torch
from fake_pycuda import HostBuildError, build_host_library, install
from kernel_cases import random_case, random_poses
from torch.overrides import TorchFunctionMode

from kernels import _build, part_warp, rasterize
from kernels.rasterize import RenderParams
from realtime.pose.render import rasterize_stick_figure, warp_body_parts

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed (host shim build)")
KERNELS = {"rasterize": rasterize.CUDA_ARG_FORMATS, "part_warp": part_warp.CUDA_ARG_FORMATS}


@pytest.fixture(params=[0, 77], ids=["default-stream", "side-stream"])
def gpu(request, monkeypatch):
    """The ops' CUDA path on CPU tensors: pycuda double, host-built wrappers, impl="cuda" accepted here."""
    double = install(monkeypatch, KERNELS, current_stream=request.param)
    monkeypatch.setattr(_build, "choose_impl", lambda op, impl, device: impl)
    monkeypatch.setattr(rasterize, "_cuda_fns", {})
    monkeypatch.setattr(part_warp, "_cuda_fns", {})
    return double


def _check_stream(gpu, names):
    """Each launch on the current stream itself (legacy default stream: pycuda's None) or on the bridge
    stream that waits for the current one before and is waited for after."""
    current = gpu.current.cuda_stream
    launches = [entry for entry in gpu.log if entry[0] == "launch"]
    assert [entry[1] for entry in launches] == names
    if current == 0:
        assert all(entry[2] is None for entry in launches) and len(gpu.log) == len(names)
        return
    (bridge,) = {entry[2] for entry in launches}
    assert bridge is not None and bridge != current
    expected = []
    for name in names:
        expected += [("wait", bridge, current), ("launch", name, bridge), ("wait", current, bridge)]
    assert gpu.log == expected


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (4, 37, 53), (3, 64, 64), (2, 17, 40)])
def test_rasterize_wrapper_matches_the_reference(gpu, batch, height, width):
    params = RenderParams(limb_thickness_px=3.3, joint_radius_px=2.7, confidence_threshold=0.4)
    xy, conf = random_poses(batch, batch, height, width)
    want = rasterize_stick_figure(xy, conf, height=height, width=width, params=params, impl="ref")
    got = rasterize_stick_figure(xy, conf, height=height, width=width, params=params, impl="cuda")
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    (launch,) = gpu.launches
    assert launch.grid == ((width + 15) // 16, (height + 15) // 16, batch) and launch.block == (16, 16, 1)
    _check_stream(gpu, ["rasterize_kernel"])


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (3, 64, 64), (2, 71, 45)])
def test_part_warp_wrappers_match_the_reference_and_the_cpu_build(gpu, batch, height, width):
    case = random_case(batch, batch, height, width)
    radius = 0.08 * min(height, width) + 0.5
    want = warp_body_parts(*case, radius_px=radius, impl="ref")
    cpu = warp_body_parts(*case, radius_px=radius, impl="cpu")
    got = warp_body_parts(*case, radius_px=radius, impl="cuda")
    assert (got - want).abs().max() < 1 / 255  # as the GPU test: bilinear taps of float32 positions
    torch.testing.assert_close(got, cpu, atol=1e-5, rtol=0)
    fit, labels, warp = gpu.launches
    num_parts = 10
    assert fit.grid == ((batch * num_parts + 63) // 64, 1, 1) and fit.block == (64, 1, 1)
    assert labels.grid == warp.grid == ((width + 15) // 16, (height + 15) // 16, batch)
    assert labels.block == warp.block == (16, 16, 1)
    _check_stream(gpu, ["part_fit_kernel", "part_labels_kernel", "part_warp_kernel"])


def test_a_grid_larger_than_the_image_writes_nothing_outside_it(gpu):
    """The wrappers' bounds: a 17x40 canvas has a partial last block in x and y; the output buffer's
    neighbours (a guard before and after) stay untouched."""
    params = RenderParams()
    xy, conf = random_poses(3, 2, 17, 40)
    conf[:] = 1.0
    xy = xy.clamp(-5, 45)
    guard = torch.full((3, 2 * 3 * 17 * 40 + 2 * 64), -7.0)
    out = guard[:, 64:-64].reshape(3, 2, 3, 17, 40)[0]
    args = (xy, conf, *(t.contiguous() for t in rasterize_tables()))
    rasterize._rasterize_cuda(*args, params=params, out=out)
    assert (guard[0, :64] == -7).all() and (guard[0, -64:] == -7).all() and (guard[1:] == -7).all()
    want = rasterize_stick_figure(xy, conf, height=17, width=40, params=params, impl="ref")
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def rasterize_tables():
    from realtime.pose.render import _limbs_on

    return _limbs_on(torch.device("cpu"))


class _SyncRecorder(TorchFunctionMode):
    """Records the tensor operations that would wait for the GPU on device tensors: reading values to the host
    (``int(t.min())``, ``item``, ``tolist``, ``bool``) and boolean-mask indexing (its size depends on the
    values)."""

    SYNCING = {"item", "tolist", "__int__", "__bool__", "__float__", "nonzero", "numpy", "masked_select"}

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in self.SYNCING:
            self.seen.append(name)
        if name == "__getitem__":
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                self.seen.append("boolean mask")
        return func(*args, **(kwargs or {}))


@contextmanager
def _recording():
    recorder = _SyncRecorder()
    with recorder:
        yield recorder


def test_no_host_synchronization_per_call_once_the_tables_are_checked(gpu):
    """Issue 20, defect 7: the index tables' values are read (``int(t.min())``) and the part segments
    compacted (boolean mask) once per table, not on every call: on a GPU each is a wait for the device."""
    params = RenderParams()
    xy, conf = random_poses(0, 2, 32, 32)
    case = random_case(0, 2, 32, 32)
    rasterize_stick_figure(xy, conf, height=32, width=32, params=params, impl="cuda")
    warp_body_parts(*case, radius_px=3.0, impl="cuda")
    with _recording() as first_call_of_new_tables:
        part_joints, part_segments = (t.clone() for t in _part_tables())
        part_warp.warp_body_parts(*case, part_joints, part_segments, radius_px=3.0, impl="cuda")
    assert {"__int__", "boolean mask"} <= set(first_call_of_new_tables.seen)  # the recorder sees them
    with _recording() as later:
        rasterize_stick_figure(xy, conf, height=32, width=32, params=params, impl="cuda")
        warp_body_parts(*case, radius_px=3.0, impl="cuda")
        part_warp.warp_body_parts(*case, part_joints, part_segments, radius_px=3.0, impl="cuda")
    assert later.seen == []
    part_segments[0, 0, 0] = 99  # modified in place: checked again
    with pytest.raises(ValueError, match="joint indices"):
        part_warp.warp_body_parts(*case, part_joints, part_segments, radius_px=3.0, impl="cuda")


def _part_tables():
    from realtime.pose.render import _part_tables as tables

    return tables[torch.device("cpu")]


def test_the_double_refuses_what_cuda_and_pycuda_refuse(gpu):
    fn = _build.load_cuda_module("rasterize", 0).get_function("rasterize_kernel")
    with pytest.raises(RuntimeError, match="before prepare"):
        fn.prepared_async_call((1, 1, 1), (16, 16, 1), None)
    fn.prepare(rasterize.CUDA_ARG_FORMATS["rasterize_kernel"])
    good = [0, 0, 23, 0, 0, 0, 0, 0, 1.0, 1.0, 0.5, 1, 1, 0]
    with _build.primary_context(0):
        with pytest.raises(TypeError, match="argument 2 = 23.0 does not fit format 'i'"):
            fn.prepared_async_call((1, 1, 1), (16, 16, 1), None, *good[:2], 23.0, *good[3:])
        with pytest.raises(ValueError, match="outside CUDA's limits"):
            fn.prepared_async_call((0, 1, 1), (16, 16, 1), None, *good)
        with pytest.raises(ValueError, match="more than 1024 threads"):
            fn.prepared_async_call((1, 1, 1), (64, 32, 1), None, *good)
    with pytest.raises(RuntimeError, match="no CUDA context"):
        fn.prepared_async_call((1, 1, 1), (16, 16, 1), None, *good)


def test_an_argument_format_that_does_not_match_the_wrapper_does_not_build(tmp_path):
    """The formats are checked against the wrappers' parameters by the host compiler (no nvcc needed)."""
    wrong = dict(rasterize.CUDA_ARG_FORMATS)
    wrong["rasterize_kernel"] = wrong["rasterize_kernel"].replace("PPi", "PPf", 1)
    with pytest.raises(HostBuildError, match="an int .* where the kernel takes a float"):
        build_host_library("rasterize", wrong, tmp_path)
    short = {"rasterize_kernel": rasterize.CUDA_ARG_FORMATS["rasterize_kernel"][:-1]}
    with pytest.raises(HostBuildError, match="argument count"):
        build_host_library("rasterize", short, tmp_path)


def test_every_global_function_is_launched_here():
    """Each ``__global__`` wrapper of every ``.cu`` file has a launch format, so the tests above run it."""
    import re

    for name, formats in KERNELS.items():
        source = (_build.KERNEL_DIR / f"{name}.cu").read_text()
        assert set(re.findall(r"__global__\s+void\s+(\w+)\s*\(", source)) == set(formats), name
    assert {p.stem for p in _build.KERNEL_DIR.glob("*.cu")} == set(KERNELS)
