"""``python -m bench.compose``: what the browser's frame costs to make from the generator's output, the old
way against the sink's way, on one core.

- joined (until the sinks): the pipeline joined stick figure | generated on the device (``torch.cat`` of the
  float tensors), converted the joined image to uint8 once and split it into two views; the stream joined
  the views again (``side_by_side()``, ``np.concatenate``) and copied that into an ``av.VideoFrame``
  (``from_ndarray``).
- sink: the pipeline converts each image to uint8 on its own (:func:`realtime.model.pipeline.to_uint8_hwc`)
  and the browser's sink writes both straight into the outgoing frame
  (:func:`realtime.serving.webrtc_track.compose_side_by_side`).

Prints the median and p95 microseconds per frame of each over ``--frames`` frames of random images at the
canvas size, alternating the two.
"""

from __future__ import annotations

import argparse
import time

import av
import numpy as np
import torch

from realtime.model.pipeline import to_uint8_hwc
from realtime.serving.webrtc_track import compose_side_by_side


def joined(stick: torch.Tensor, generated: torch.Tensor) -> av.VideoFrame:
    both = to_uint8_hwc(torch.cat([stick, generated], dim=2))
    width = stick.shape[-1]
    stick_u8, generated_u8 = both[:, :width], both[:, width:]
    return av.VideoFrame.from_ndarray(np.concatenate([stick_u8, generated_u8], axis=1), format="rgb24")


def sink(stick: torch.Tensor, generated: torch.Tensor) -> av.VideoFrame:
    return compose_side_by_side(to_uint8_hwc(stick), to_uint8_hwc(generated))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="canvas side in pixels (default 256)")
    parser.add_argument("--frames", type=int, default=2000, help="frames timed per way (default 2000)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = torch.Generator().manual_seed(0)
    stick, generated = (torch.rand(3, args.size, args.size, generator=rng) for _ in range(2))
    assert np.array_equal(joined(stick, generated).to_ndarray(), sink(stick, generated).to_ndarray())
    times: dict[str, list[float]] = {"joined": [], "sink": []}
    for _ in range(args.frames):
        for name, way in (("joined", joined), ("sink", sink)):
            start = time.perf_counter()
            way(stick, generated)
            times[name].append(1e6 * (time.perf_counter() - start))
    for name, values in times.items():
        print(f"{name}: median {np.median(values):.0f} us, p95 {np.percentile(values, 95):.0f} us per frame")
    print(f"saved: {np.median(times['joined']) - np.median(times['sink']):.0f} us per frame (medians)")


if __name__ == "__main__":
    main()
