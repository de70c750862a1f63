"""Kernel timings on this machine's CPU: reference vs the compiled CPU build, with their differences.

``python -m bench.kernels [--sizes 256 512] [--runs 200] [--ref-runs 30] [--device cpu|cuda] [--json F]``

For each canvas size, batch 1: the stick-figure rasterizer and the 10-part warp, each as the PyTorch
reference and as the compiled build (``impl="cpu"``, or ``"cuda"`` with ``--device cuda``), median
wall-clock milliseconds over ``--runs`` calls of the build and ``--ref-runs`` of the slow reference
(after warm-up; CUDA timings synchronize after each call), with the fastest call beside the median (on a
shared machine the median carries the other processes' load; the load average is printed),
then the max abs difference between the two, the fraction of pixels differing by more than 1/255, and
how many of those lie within a pixel of an edge (a pixel whose 3x3 neighbourhood in the reference output
is not constant). Poses: an upright person scaled to the canvas with seeded noise; the warp's target pose
moves every joint by about 5% of the canvas.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from kernels.rasterize import RenderParams
from realtime.pose.render import rasterize_stick_figure, warp_body_parts
from realtime.pose.skeleton import NUM_JOINTS, Joint

#: An upright person on a unit canvas (x, y in [0, 1]).
UPRIGHT = {
    Joint.NOSE: (0.50, 0.12), Joint.NECK: (0.50, 0.25), Joint.RIGHT_EYE: (0.47, 0.10),
    Joint.LEFT_EYE: (0.53, 0.10), Joint.RIGHT_EAR: (0.44, 0.11), Joint.LEFT_EAR: (0.56, 0.11),
    Joint.RIGHT_SHOULDER: (0.38, 0.25), Joint.LEFT_SHOULDER: (0.62, 0.25), Joint.RIGHT_ELBOW: (0.31, 0.40),
    Joint.LEFT_ELBOW: (0.69, 0.40), Joint.RIGHT_WRIST: (0.28, 0.56), Joint.LEFT_WRIST: (0.72, 0.56),
    Joint.MID_HIP: (0.50, 0.56), Joint.RIGHT_HIP: (0.42, 0.56), Joint.LEFT_HIP: (0.58, 0.56),
    Joint.RIGHT_KNEE: (0.41, 0.73), Joint.LEFT_KNEE: (0.59, 0.73), Joint.RIGHT_ANKLE: (0.41, 0.90),
    Joint.LEFT_ANKLE: (0.59, 0.90), Joint.RIGHT_HEEL: (0.39, 0.93), Joint.LEFT_HEEL: (0.61, 0.93),
    Joint.RIGHT_BIG_TOE: (0.36, 0.95), Joint.LEFT_BIG_TOE: (0.64, 0.95),
}  # fmt: skip


def inputs(size: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.zeros(1, NUM_JOINTS, 2)
    for joint, pos in UPRIGHT.items():
        xy[0, joint] = torch.tensor(pos) * size
    xy += torch.randn(1, NUM_JOINTS, 2, generator=gen) * 0.01 * size
    target = xy + torch.randn(1, NUM_JOINTS, 2, generator=gen) * 0.05 * size
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    mask = (((xx - size / 2) / (0.25 * size)) ** 2 + ((yy - 0.53 * size) / (0.45 * size)) ** 2 <= 1).float()
    tensors = {
        "xy": xy,
        "conf": torch.ones(1, NUM_JOINTS),
        "target": target,
        "image": torch.rand(1, 3, size, size, generator=gen),
        "mask": mask[None].contiguous(),
    }
    return {k: v.to(device) for k, v in tensors.items()}


def median_ms(fn, runs: int, cuda: bool) -> tuple[float, float]:
    for _ in range(min(10, runs)):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def compare(ref: torch.Tensor, got: torch.Tensor) -> dict[str, float | int]:
    diff = (got - ref).abs().amax(dim=1)  # (B, H, W): worst channel
    over = diff > 1 / 255
    padded = torch.nn.functional.pad(ref, (1, 1, 1, 1), mode="replicate")
    hi = torch.nn.functional.max_pool2d(padded, 3, 1).amax(1)
    lo = (-torch.nn.functional.max_pool2d(-padded, 3, 1)).amin(1)
    edge = hi != lo
    return {
        "max_abs_diff": float(diff.max()),
        "pixels": int(diff.numel()),
        "pixels_over_1_255": int(over.sum()),
        "fraction_over_1_255": float(over.float().mean()),
        "over_1_255_within_a_pixel_of_an_edge": int((over & edge).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--runs", type=int, default=200, help="timed calls of the compiled build")
    parser.add_argument("--ref-runs", type=int, default=30, help="timed calls of the reference")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    impl = "cuda" if cuda else "cpu"
    if cuda:
        machine = torch.cuda.get_device_name()
    else:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), ""
        )
        machine = f"{model or platform.processor()}, {torch.get_num_threads()} torch threads"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(
        f"machine: {machine}; torch {torch.__version__}; batch 1; medians of {args.runs} runs "
        f"({args.ref_runs} for the reference); load average {load}"
    )
    results: dict[str, object] = {
        "machine": machine,
        "runs": args.runs,
        "impl": impl,
        "load": load,
        "sizes": {},
    }
    for size in args.sizes:
        x = inputs(size, args.device)
        params = RenderParams.for_canvas(size, size)

        def raster(which: str, x=x, size=size, params=params) -> torch.Tensor:
            return rasterize_stick_figure(
                x["xy"], x["conf"], height=size, width=size, params=params, impl=which
            )

        def warp(which: str, x=x) -> torch.Tensor:
            return warp_body_parts(
                x["image"], x["mask"], x["xy"], x["conf"], x["target"], x["conf"], impl=which
            )

        row: dict[str, object] = {}
        for op, fn in (("rasterize", raster), ("part_warp", warp)):
            ref_ms, ref_min = median_ms(lambda fn=fn: fn("ref"), args.ref_runs, cuda)
            got_ms, got_min = median_ms(lambda fn=fn: fn(impl), args.runs, cuda)
            stats = compare(fn("ref").float().cpu(), fn(impl).float().cpu())
            row[op] = {"ref_ms": ref_ms, f"{impl}_ms": got_ms, f"{impl}_min_ms": got_min, **stats}
            print(
                f"{size}x{size} {op:9s}: ref {ref_ms:7.2f} ms | {impl} {got_ms:6.3f} ms "
                f"(fastest {got_min:.3f}; x{ref_ms / got_ms:.0f}) | max abs diff {stats['max_abs_diff']:.2e} "
                f"| > 1/255: {stats['pixels_over_1_255']}/{stats['pixels']} px "
                f"({stats['over_1_255_within_a_pixel_of_an_edge']} within a pixel of an edge)"
            )
        results["sizes"][str(size)] = row  # type: ignore[index]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
