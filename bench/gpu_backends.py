"""The CUDA PyTorch backend's speed: generator and face model ms/frame at each canvas, GFLOP per frame (from
the convolutions' shapes), and the fraction of this GPU's measured fp16 matmul peak that this is.

``python -m bench.gpu_backends --sizes 256 512 --json OUT.json`` (needs a CUDA device). Medians of CUDA-event
timings after warm-up; the peak is the median of ``torch.matmul`` on 8192x8192 fp16 matrices.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from realtime.model.backends import TorchBackend
from realtime.model.inputs import FACE_INPUTS
from realtime.model.nets import GeneratorSpec, build_network


def conv_gflop(module: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Multiply-adds x 2 of every Conv2d/ConvTranspose2d in one forward pass, in GFLOP."""
    total = 0

    def hook(layer, args, out):
        nonlocal total
        kh, kw = layer.kernel_size
        per_output = (layer.in_channels // layer.groups) * kh * kw
        # a transposed convolution's work is counted at its input positions
        positions = (
            args[0][0].numel() // layer.in_channels if isinstance(layer, torch.nn.ConvTranspose2d) else 0
        )
        if isinstance(layer, torch.nn.ConvTranspose2d):
            total += 2 * positions * layer.in_channels * layer.out_channels * kh * kw // layer.groups
        else:
            total += 2 * out[0].numel() * per_output

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]  # fmt: skip
    with torch.inference_mode():
        module(*[x[:1] for x in inputs])
    for h in handles:
        h.remove()
    return total / 1e9


def median_ms(fn, runs: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def matmul_peak_tflops(dtype: torch.dtype = torch.float16, n: int = 8192) -> float:
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    return 2 * n**3 / (median_ms(lambda: torch.matmul(a, b), 30) * 1e-3) / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    peak = matmul_peak_tflops()
    print(f"{torch.cuda.get_device_name()}: measured fp16 matmul peak {peak:.1f} TFLOP/s")
    rows = []
    nets = {
        "generator": GeneratorSpec("global", ngf=64, n_downsample=4, n_blocks=9),
        "face": GeneratorSpec("face", ngf=32, n_downsample=3, n_blocks=3, inputs=FACE_INPUTS),
    }
    for size in args.sizes:
        for what, spec in nets.items():
            side = size if what == "generator" else max(64, size // 4)
            for precision, graph in (("fp32", False), ("fp16", False), ("fp16", True)):
                module = build_network(spec).eval()
                gflop = conv_gflop(
                    module, [torch.rand(1, s.channels, side, side) for s in spec.inputs.inputs]
                )
                backend = TorchBackend.from_module(module, "cuda", precision=precision, channels_last=True,
                                                   cuda_graph=graph)  # fmt: skip
                feed = {
                    s.name: torch.rand(1, s.channels, side, side, device="cuda") for s in spec.inputs.inputs
                }
                ms = median_ms(lambda b=backend, f=feed: b.run(f), args.runs)
                row = {"net": what, "canvas": side, "precision": precision, "cuda_graph": graph, "ms": ms,
                       "gflop": gflop, "fraction_of_peak": gflop / (ms * 1e-3) / 1e3 / peak}  # fmt: skip
                rows.append(row)
                share = 100 * row["fraction_of_peak"]
                print(f"{what:9s} {side:4d}px {precision} graph={graph!s:5s} {ms:7.2f} ms {gflop:6.1f} GFLOP "
                      f"{share:5.1f}% of peak")  # fmt: skip
    if args.json is not None:
        args.json.write_text(
            json.dumps({"peak_tflops": peak, "device": torch.cuda.get_device_name(), "rows": rows})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
