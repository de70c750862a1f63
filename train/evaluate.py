"""Self-reconstruction on held-out target frames: ``python -m train.evaluate RUN --data DIR``.

The model is driven by the held-out frames' own stick figures (the last frames of the target video, never
trained on), in order, each conditioned on the previous generated frame (zeros for the first), and its
output is compared with the real frames: SSIM and PSNR over the whole frame (Everybody Dance Now,
Chan et al. 2019, Tables 1-2; metrics from scikit-image). Writes ``metrics.json`` and a sample sheet
(stick figure | real | generated) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from realtime.pipeline import Target
from train.dataset import load_prepared, to_chw_float


@dataclass(frozen=True)
class ReconstructionMetrics:
    """Mean SSIM (in [-1, 1], higher is better) and PSNR (dB) over ``num_frames`` held-out frames, with the
    per-frame values, and the generator's mean milliseconds per frame."""

    num_frames: int
    ssim: float
    psnr_db: float
    ssim_per_frame: list[float]
    psnr_db_per_frame: list[float]
    generate_ms: float


def resolve_engine(path: Path) -> Path:
    """A run directory means its ``checkpoint.pt``; anything else is an engine file."""
    return path / "checkpoint.pt" if path.is_dir() else path


def evaluate_reconstruction(
    target: Target, data_dir: str | Path, *, sheet: Path | None = None, sheet_frames: int = 6
) -> ReconstructionMetrics:
    """Generate every held-out frame from its own stick figure and compare with the real frame.

    Raises:
        FileNotFoundError: if ``data_dir`` is not a prepared directory.
        ValueError: if the target's canvas differs from the data's.
    """
    data = load_prepared(data_dir)
    meta = data.meta
    if target.canvas_size != (meta.canvas_width, meta.canvas_height):
        raise ValueError(
            f"target canvas {target.canvas_size} differs from the data's "
            f"{meta.canvas_width}x{meta.canvas_height}"
        )
    previous = np.zeros((1, 3, meta.canvas_height, meta.canvas_width), np.float32)
    ssims, psnrs, generated_frames, seconds = [], [], [], 0.0
    for t in tqdm(meta.heldout, desc="held-out frames", unit="frame"):
        stick = to_chw_float(data.stick_figures[t])[None].numpy()
        start = time.perf_counter()
        out = target.generate(stick, previous)
        seconds += time.perf_counter() - start
        if target.bundle.temporal:
            previous = out
        generated = (np.clip(out[0], 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        real = np.asarray(data.frames[t])
        ssims.append(float(structural_similarity(real, generated, channel_axis=2, data_range=255)))
        psnrs.append(float(peak_signal_noise_ratio(real, generated, data_range=255)))
        generated_frames.append(generated)
    if sheet is not None:
        picks = np.linspace(0, len(generated_frames) - 1, num=min(sheet_frames, len(generated_frames)))
        rows = []
        for i in picks.round().astype(int):
            t = meta.heldout[i]
            rows.append(np.concatenate([data.stick_figures[t], data.frames[t], generated_frames[i]], axis=1))
        sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    n = len(ssims)
    return ReconstructionMetrics(
        num_frames=n,
        ssim=float(np.mean(ssims)),
        psnr_db=float(np.mean(psnrs)),
        ssim_per_frame=ssims,
        psnr_db_per_frame=psnrs,
        generate_ms=1e3 * seconds / max(1, n),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Self-reconstruction SSIM and PSNR on the held-out frames of the target video: the model "
        "is driven by those frames' own stick figures and compared with the real frames.",
    )
    parser.add_argument("model", type=Path, help="a run directory (uses its checkpoint.pt) or an engine file")
    parser.add_argument("--data", type=Path, required=True, help="the prepared target directory")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: MODEL's folder/eval)")
    args = parser.parse_args(argv)
    engine = resolve_engine(args.model)
    out = args.out or (args.model if args.model.is_dir() else args.model.parent) / "eval"
    try:
        target = Target.load(engine)
        metrics = evaluate_reconstruction(target, args.data, sheet=out / "samples.png")
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(asdict(metrics), indent=2))
    print(
        f"{metrics.num_frames} held-out frames: SSIM {metrics.ssim:.4f}, PSNR {metrics.psnr_db:.2f} dB, "
        f"generator {metrics.generate_ms:.1f} ms/frame; "
        f"wrote {out / 'metrics.json'} and {out / 'samples.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
