"""The PyTorch backend's GPU options: reduced precision with normalization in fp32, channels-last, CUDA graphs
(on the CPU where they can run here, on CUDA where a GPU exists), and the pipeline kept on the device."""

import pytest
import torch

from realtime.model.backends import BackendError, TorchBackend, keep_norms_fp32
from realtime.model.nets import GeneratorSpec, build_network

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _generator(seed=0):
    torch.manual_seed(seed)
    return build_network(GeneratorSpec("global", ngf=8, n_downsample=2, n_blocks=1)).eval()


def _inputs(batch=1, size=32, seed=1, device="cpu"):
    rng = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(batch, 3, size, size, generator=rng).to(device)
        for n in ("stick_figure", "previous_frame")
    }


def test_reduced_precision_runs_normalization_in_fp32_and_stays_close():
    reference = TorchBackend.from_module(_generator())
    module = _generator()
    seen = []
    for m in module.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
    backend = TorchBackend.from_module(module, precision="bf16", channels_last=True)
    inputs = _inputs()
    got, want = backend.run(inputs)["frame"], reference.run(inputs)["frame"]
    assert got.dtype == torch.float32 and seen and set(seen) == {torch.float32}
    assert 0 < (got - want).abs().max() < 0.05  # bf16 convolutions (8 bits of mantissa), fp32 statistics


def test_channels_last_alone_changes_nothing():
    inputs = _inputs()
    want = TorchBackend.from_module(_generator()).run(inputs)["frame"]
    got = TorchBackend.from_module(_generator(), channels_last=True).run(inputs)["frame"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_options_are_checked():
    with pytest.raises(BackendError, match="unknown precision"):
        TorchBackend.from_module(_generator(), precision="int8")
    with pytest.raises(BackendError, match="cuda_graph=True needs a CUDA device"):
        TorchBackend.from_module(_generator(), cuda_graph=True)
    assert keep_norms_fp32(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.InstanceNorm2d(1))) == 1


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("size", [64, 256])
def test_cuda_fp16_graph_matches_fp32_cpu_and_replays_new_inputs(size):
    reference = TorchBackend.from_module(_generator())
    backend = TorchBackend.from_module(
        _generator(), "cuda", precision="fp16", channels_last=True, cuda_graph=True
    )
    for seed in (1, 2, 3):  # the first capture, then replays with new inputs copied in
        inputs = _inputs(size=size, seed=seed)
        got = backend.run({k: v.cuda() for k, v in inputs.items()})["frame"]
        assert got.device.type == "cuda"
        assert (got.cpu() - reference.run(inputs)["frame"]).abs().max() < 2e-2


@pytest.mark.gpu
@CUDA
def test_pipeline_render_generate_face_stay_on_the_device(tmp_path):
    """No synchronizing copy between the pose upload and the one download (sync debug mode raises on one)."""
    import numpy as np

    from realtime.model.face import FaceRefiner
    from realtime.model.inputs import FACE_INPUTS
    from realtime.model.pipeline import Retargeter, Target
    from realtime.pose.estimators import PoseFrame
    from realtime.pose.skeleton import NUM_JOINTS

    class FakeBundle:  # only what render/generate read
        pass

    target = Target.__new__(Target)
    target.backend = TorchBackend.from_module(_generator(), "cuda", precision="fp16")
    face = build_network(GeneratorSpec("face", ngf=8, n_downsample=2, n_blocks=1, inputs=FACE_INPUTS)).eval()
    target.face = FaceRefiner(TorchBackend.from_module(face, "cuda"), 16, 0.5)
    from kernels.rasterize import RenderParams
    from realtime.model.bundle import read_bundle  # noqa: F401  (the real sidecar type is not needed here)
    from realtime.model.inputs import TEMPORAL_INPUTS

    bundle = FakeBundle()
    bundle.render = RenderParams.for_canvas(64, 64)
    bundle.generator_inputs = TEMPORAL_INPUTS
    target.bundle, target.canvas_size = bundle, (64, 64)
    retargeter = Retargeter.__new__(Retargeter)
    retargeter.target = target
    retargeter._previous = torch.zeros((1, 3, 64, 64), device="cuda")
    retargeter._next = torch.empty_like(retargeter._previous)
    retargeter._state_inputs = ["previous_frame"]
    joints = np.random.default_rng(0).uniform(8, 56, (NUM_JOINTS, 2)).astype(np.float32)
    pose = PoseFrame(joints, np.ones(NUM_JOINTS, np.float32), 0.0, (64, 64))
    context = retargeter.render(pose)  # the upload of the pose happens here, before the check
    from realtime.model.inputs import produce_frame_inputs

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        inputs = produce_frame_inputs(TEMPORAL_INPUTS, context)
        inputs["previous_frame"] = retargeter._previous
        generated = target.generate(inputs, out=retargeter._next)
        refined = target.face.apply(context.stick_figure, generated, pose.joints_px, pose.confidence)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert refined.device.type == "cuda" and refined.shape == (1, 3, 64, 64)


def test_cuda_without_an_index_is_the_current_device_so_out_buffers_are_accepted(monkeypatch):
    """Issue 20, defect 1: ``torch.device("cuda") != torch.device("cuda", 0)``; the backend keeps the index,
    so a caller's ``out=`` tensor on ``cuda:0`` matches it."""
    from realtime.model.backends import resolve_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert torch.device("cuda") != torch.device("cuda", 0)  # PyTorch's comparison (pytorch/pytorch#115405)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    module = _generator()
    monkeypatch.setattr(module, "to", lambda *args, **kwargs: module)  # no CUDA here: stay on the CPU
    backend = TorchBackend.from_module(module, "cuda")
    assert backend.device == torch.device("cuda", 0)  # the device of every tensor on it, out= included


def test_cuda_graph_capture_is_thread_local(monkeypatch):
    """Issue 20, defect 5: the PyTorch backend captures with ``capture_error_mode="thread_local"``, so a
    pose thread's CUDA call during a capture neither breaks it nor is refused (PyTorch's CUDA stand-ins)."""
    import contextlib

    captures = []

    class Stream:
        cuda_stream = 7

        def __init__(self, *args, **kwargs):
            pass

        def wait_stream(self, other):
            pass

    class Graph:
        replays = 0

        def replay(self):
            Graph.replays += 1

    @contextlib.contextmanager
    def graph(g, **kwargs):
        captures.append(kwargs)
        yield

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    module = _generator()
    monkeypatch.setattr(module, "to", lambda *args, **kwargs: module)
    backend = TorchBackend.from_module(module, "cuda", cuda_graph=True)
    monkeypatch.setattr(backend, "device", torch.device("cpu"))  # the tensors here are CPU tensors
    backend.run(_inputs())
    assert captures == [{"capture_error_mode": "thread_local"}] and Graph.replays == 1
