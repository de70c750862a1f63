"""Speed where it pays: a CPU engine's ONNX Runtime settings chosen by measurement on the target itself.

For the real-time student of a target (issue 19, item 4), :func:`tune_cpu_engine` times the exported
``.onnx`` on this machine's CPU with each candidate setting, on inputs made from the target's own reference
poses (so the appearance prior and the plate are the target's, not noise), and keeps a setting only where it
is faster at kept quality:

- intra-op threads, 1 or 2 (on 2 cores the server gives one core to the generator and one to the pose
  estimator; a second generator thread only pays if the network is big enough to split);
- int8: ONNX Runtime's static quantization (QDQ format, per-channel weights, Conv only, calibrated on those
  inputs: ``onnxruntime.quantization.quantize_static``), kept only when it is at least ``min_gain`` faster
  than fp32 with the same threads and its frames differ from fp32's by at most ``max_levels`` 8-bit levels on
  average (for the bundled mannequin's light generator it was not faster: docs/RESULTS.md, issue 10).

Each candidate is timed as the median of ``runs`` runs after warm-up, in one sitting, one after another.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from realtime.model.pipeline import Target

log = logging.getLogger(__name__)

#: Precisions :func:`tune_cpu_engine` tries.
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Candidate:
    """One setting as measured.

    Attributes:
        threads: ONNX Runtime intra-op threads.
        precision: "fp32" or "int8".
        median_ms: median wall time of one run on one frame, milliseconds.
        mean_abs_levels: mean absolute difference of its frames from fp32's with the same inputs, in 8-bit
            levels (0 for fp32).
    """

    threads: int
    precision: str
    median_ms: float
    mean_abs_levels: float


@dataclass(frozen=True)
class TuneReport:
    """What :func:`tune_cpu_engine` measured and chose.

    Attributes:
        candidates: every setting measured, in the order timed.
        chosen: the fastest fp32 setting, or an int8 one where it is faster by ``min_gain`` at kept quality.
        int8_path: the quantized engine when int8 was chosen (beside the engine, ``NAME.int8.onnx``), else
            None (no file is left behind).
    """

    candidates: tuple[Candidate, ...]
    chosen: Candidate
    int8_path: Path | None

    def table(self) -> str:
        """The measurements as markdown, the chosen row marked."""
        rows = [
            "| threads | precision | median ms/frame | mean abs diff vs fp32 (levels) | |",
            "|---:|---|---:|---:|---|",
        ]
        for c in self.candidates:
            mark = "chosen" if c == self.chosen else ""
            rows.append(
                f"| {c.threads} | {c.precision} | {c.median_ms:.2f} | {c.mean_abs_levels:.2f} | {mark} |"
            )
        return "\n".join(rows)


def reference_inputs(target: Target, count: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Generator inputs made the way the live pipeline makes them, from the target's own reference poses
    (``reference_keypoints``) jittered by a few pixels: each a dict of float32 ``(1, C, H, W)`` arrays in
    [0, 1] by the engine's input names (per-target inputs included; the previous frame, for a temporal
    engine, is the frame before). A target without reference poses (a generator without the appearance
    prior, e.g. the bundled mannequin) gets its neutral standing pose (:func:`realtime.pose.tracking.
    neutral_pose`, from its limb statistics) at depths across its floor instead: fine for timing, a narrow
    calibration set for int8 (the quality check then covers standing poses only).
    """
    import torch

    from realtime.model.appearance import KEYPOINT_FIELDS, REFERENCE_KEYPOINTS
    from realtime.model.inputs import assemble_inputs
    from realtime.model.pipeline import Retargeter
    from realtime.pose.estimators import PoseFrame
    from realtime.pose.skeleton import NUM_JOINTS

    keypoints: np.ndarray
    if REFERENCE_KEYPOINTS.name in target.per_target:
        stored = target.per_target[REFERENCE_KEYPOINTS.name].reshape(-1, NUM_JOINTS, KEYPOINT_FIELDS)
        keypoints = stored.cpu().numpy()
    else:
        from realtime.pose.tracking import neutral_pose

        standing = [neutral_pose(target.bundle.stats, depth) for depth in np.linspace(0.0, 1.0, 4)]
        keypoints = np.stack(
            [np.concatenate([p, np.ones((NUM_JOINTS, 1), np.float32)], axis=1) for p in standing]
        )
    retargeter = Retargeter(target, live=False)
    retargeter.fit_source(keypoints[:, :, :2], (keypoints[:, :, 2] > 0).astype(np.float32))
    width, height = target.canvas_size
    rng = np.random.default_rng(seed)
    samples: list[dict[str, np.ndarray]] = []
    previous = torch.zeros(1, 3, height, width)
    for index in range(count):
        reference = keypoints[index % len(keypoints)]
        joints = reference[:, :2] + rng.normal(0, 3.0, size=reference[:, :2].shape)
        pose = PoseFrame(
            joints.astype(np.float32), (reference[:, 2] > 0).astype(np.float32), index, (height, width)
        )
        context = retargeter.render(retargeter.normalize(pose))
        inputs = assemble_inputs(target.bundle.generator_inputs, context, previous)
        samples.append(
            {name: value.detach().cpu().numpy().astype(np.float32) for name, value in inputs.items()}
        )
        previous = target.generate(inputs).detach().cpu().clone()
    return samples


def _session(path: Path, threads: int):  # noqa: ANN202 (onnxruntime has no type stubs)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the live backend runs it
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _time(
    path: Path, threads: int, samples: Sequence[dict[str, np.ndarray]], runs: int
) -> tuple[float, list[np.ndarray]]:
    session = _session(path, threads)
    outputs = [session.run(None, sample)[0] for sample in samples]  # warm-up, and the frames compared
    times_ms = []
    for index in range(runs):
        start = time.perf_counter()
        session.run(None, samples[index % len(samples)])
        times_ms.append(1e3 * (time.perf_counter() - start))
    return float(np.median(times_ms)), outputs


def quantize_int8(engine: Path, out: Path, samples: Iterable[dict[str, np.ndarray]]) -> Path:
    """ONNX Runtime's static int8 quantization of ``engine`` into ``out``: QDQ format, per-channel weights,
    Conv only, activations calibrated (min-max) on ``samples``. Returns ``out``.

    Raises:
        RuntimeError: if ONNX Runtime cannot quantize the graph (the message says why).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(list(samples))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    try:
        quantize_static(
            str(engine), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            op_types_to_quantize=["Conv"], activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    except Exception as error:  # quantization raises many kinds of errors for graphs it cannot handle
        raise RuntimeError(
            f"ONNX Runtime could not quantize {engine}: {type(error).__name__}: {error}"
        ) from error
    return out


def tune_cpu_engine(
    target: Target,
    engine: str | os.PathLike[str],
    *,
    threads: Sequence[int] = (1, 2),
    try_int8: bool = True,
    runs: int = 30,
    min_gain: float = 0.05,
    max_levels: float = 1.0,
) -> TuneReport:
    """Time ``engine`` (the ``.onnx`` file ``target`` runs) on this CPU with each thread count in
    ``threads``, in fp32 and (``try_int8``) int8, and choose: the fastest fp32 setting, replaced by an int8
    one only when that is at least ``min_gain`` (a fraction) faster than fp32 at its thread count and its
    frames differ from fp32's by at most ``max_levels`` 8-bit levels on average.

    Args:
        target: the loaded target (its reference poses and per-target inputs make the inputs:
            :func:`reference_inputs`).
        engine: the ``.onnx`` file to time.

    Returns:
        the measurements and the choice; when int8 is chosen its engine is kept as ``NAME.int8.onnx`` beside
        ``engine``.

    Raises:
        ValueError: for an empty ``threads``.
    """
    engine = Path(engine)
    if not threads:
        raise ValueError("threads must list at least one thread count")
    samples = reference_inputs(target)
    candidates: list[Candidate] = []
    reference: dict[int, list[np.ndarray]] = {}
    for count in threads:
        median_ms, outputs = _time(engine, count, samples, runs)
        reference[count] = outputs
        candidates.append(Candidate(count, "fp32", median_ms, 0.0))
    int8_kept: Path | None = None
    folder = Path(tempfile.mkdtemp(prefix=".tune_", dir=engine.parent))  # same file system: os.replace
    quantized = folder / f"{engine.stem}.int8.onnx"
    try:
        if try_int8:
            try:
                quantize_int8(engine, quantized, samples)
            except RuntimeError as error:
                log.warning("int8 not measured: %s", error)
            else:
                for count in threads:
                    median_ms, outputs = _time(quantized, count, samples, runs)
                    levels = float(
                        np.mean(
                            [np.abs(a - b).mean() for a, b in zip(outputs, reference[count], strict=True)]
                        )
                    )
                    candidates.append(Candidate(count, "int8", median_ms, 255.0 * levels))
        chosen = _choose(candidates, min_gain, max_levels)
        if chosen.precision == "int8":
            int8_kept = engine.with_name(f"{engine.stem}.int8.onnx")
            os.replace(quantized, int8_kept)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return TuneReport(tuple(candidates), chosen, int8_kept)


def _choose(candidates: Sequence[Candidate], min_gain: float, max_levels: float) -> Candidate:
    fp32 = {c.threads: c for c in candidates if c.precision == "fp32"}
    best = min(fp32.values(), key=lambda c: c.median_ms)
    for c in candidates:
        if (
            c.precision == "int8"
            and c.mean_abs_levels <= max_levels
            and c.median_ms <= (1 - min_gain) * fp32[c.threads].median_ms
            and c.median_ms < best.median_ms
        ):
            best = c
    return best
