"""Per-stage timings of the retargeting pipeline over a source video, and its end-to-end frame rate.

``python -m bench.stages [--engine A.onnx --engine B.pt ...] [--source VIDEO] [--frames N] [--warmup W]
[--device cpu|cuda] [--threads T] [--codec vp8|h264] [--overlap]``

For each engine (default the bundled mannequin, :data:`realtime.targets.DEFAULT_TARGET`, on ONNX Runtime),
in one run over the first ``W + N`` frames of the source video (the first ``W`` warm up and are not
counted), each stage's median and 95th percentile in milliseconds per frame:

- ``decode``: :func:`realtime.video.read_frames` (PyAV) producing the next RGB frame;
- ``pose``, ``normalize``, ``rasterize``, ``generate``, ``face``:
  :class:`realtime.model.pipeline.Retargeter` in live mode, as the server runs it (its ``estimate`` and
  ``generate``, whose ``timings_ms`` give all but ``pose``); ``face`` only for an engine with a face model;
- ``encode``: what the live path does with a result: the browser track's side-by-side ``av.VideoFrame``
  (:func:`realtime.serving.webrtc_track.compose_side_by_side`: stick figure | generated written into the
  frame's buffer) and the WebRTC encoder aiortc sends it with (its ``Vp8Encoder`` or ``H264Encoder``,
  PyAV's libvpx / libx264 at aiortc's default bitrate; VP8 is aiortc's first preference and the server sets
  none, so browsers get VP8);
- ``download``: the generated and stick frames to uint8 NumPy on the host, the part of
  ``Retargeter.generate`` outside its own timings (on the CPU a conversion only, on CUDA also the copy);
- with ``--device cuda`` also ``upload`` (the pose's host-to-device copy, as ``Retargeter.render`` makes it
  before rasterizing; that copy is inside ``rasterize`` too). On CUDA, the bench synchronizes after the
  rasterizer and the generator, so that each stage's time is its own.

The table also gives each frame's whole wall time in the sequential run (the stages plus the glue between
them), whose mean is the inverse of the sequential frame rate; under load its median lies above the sum of
the stage medians, as slow frames do not come from the same stage every time.

End-to-end frames per second: *sequential* runs the stages one after another on one thread (the stage
timings come from this run); with ``--overlap``, also *overlapped*: decode, pose, generation and encoding
each on a thread of their own, joined by one-frame queues, as the live server pins pose estimation and
generation to two worker threads (:mod:`realtime.serving.stages`) while aiortc decodes and encodes on threads
of its executor. Every frame is processed (nothing is dropped, unlike the live server), so this is throughput.

``--threads T`` sets PyTorch's intra-op threads (the rasterizer, ``.pt`` engines) and ONNX Runtime's
(``.onnx`` engines); the default leaves both at the libraries' defaults. The table is printed as markdown,
with the machine's CPU and load average.
"""

from __future__ import annotations

import argparse
import fractions
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from realtime.model.backends import BackendError, check_engine_suffix, open_backend
from realtime.model.bundle import read_bundle
from realtime.model.face import FACE_INPUTS, FaceRefiner
from realtime.model.inputs import FrameContext
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.serving.webrtc_track import compose_side_by_side
from realtime.video import VideoError, read_frames

#: Stages in pipeline order; ``upload`` is measured on CUDA only.
STAGES: tuple[str, ...] = (
    "decode", "upload", "pose", "normalize", "rasterize", "generate", "face", "download", "encode",
)  # fmt: skip
CUDA_ONLY_STAGES = frozenset({"upload"})
#: The default source video, relative to the repository root.
DEFAULT_SOURCE = Path("../shared/data/source_dance.mp4")
#: aiortc's video clock (RTP timestamps of video are in 1/90000 s).
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


@dataclass
class EngineRun:
    """One engine's measurements.

    Attributes:
        label: the engine's file name and backend, e.g. ``mannequin.onnx (onnxruntime, cpu)``.
        stage_ms: milliseconds per timed frame, by stage (sequential run); a stage that did not run is absent.
        frame_ms: each timed frame's whole wall time in the sequential run, milliseconds.
        frames: frames timed (after the warm-up).
        sequential_fps: end-to-end frames per second of the sequential run.
        overlapped_fps: the same with the stages on threads of their own (None without ``--overlap``).
        notes: why a stage is missing (e.g. no face model).
    """

    label: str
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    frame_ms: list[float] = field(default_factory=list)
    frames: int = 0
    sequential_fps: float = float("nan")
    overlapped_fps: float | None = None
    notes: list[str] = field(default_factory=list)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _SyncedTarget(Target):
    """A :class:`Target` whose ``generate`` waits for the device, so the generator's time is its own."""

    def generate(self, inputs: Mapping[str, torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        result = super().generate(inputs, out)
        _synchronize(self.device)
        return result


class _SyncedRetargeter(Retargeter):
    """A :class:`Retargeter` whose stick figure is finished before the generator's clock starts."""

    def render(self, normalized: PoseFrame) -> FrameContext:
        context = super().render(normalized)
        _synchronize(self.target.device)
        return context


def load_target(path: Path, device: str, threads: int | None) -> Target:
    """The engine (and its face model, when its sidecar names one) on ``device`` with ``threads`` intra-op
    threads, as :meth:`Target.load` loads it but for the device and thread choice.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as :meth:`Target.load`; RuntimeError also when ONNX
            Runtime has no CUDA provider and ``device`` is ``cuda``.
    """
    check_engine_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"engine file not found: {path}")
    bundle = read_bundle(path)
    suffix = path.suffix.lower()
    kwargs: dict[str, Any]
    if suffix == ".onnx":
        import onnxruntime as ort

        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise BackendError(
                f"ONNX Runtime here has no {provider} (it has {ort.get_available_providers()}); install "
                "onnxruntime-gpu for --device cuda"
            )
        kwargs = {"providers": [provider], "threads": threads or 0}
    else:
        kwargs = {"device": device}
    backend = open_backend(path, expected=bundle.inputs, **kwargs)
    face = None
    if bundle.face_model is not None:
        face_model = open_backend(path.parent / bundle.face_model, expected=FACE_INPUTS.names, **kwargs)
        face = FaceRefiner(face_model, int(bundle.face_box_size_px), bundle.render.confidence_threshold)
    return _SyncedTarget(backend, bundle, path, face)


def make_encoder(codec: str) -> Any:
    """aiortc's WebRTC video encoder for ``codec`` ("vp8" or "h264"), as an RTCRtpSender creates it."""
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.codecs.vpx import Vp8Encoder

    return {"vp8": Vp8Encoder, "h264": H264Encoder}[codec]()


def encode_result(encoder: Any, frame: av.VideoFrame, index: int, fps: float = 30.0) -> int:
    """Encode one output frame as the live path does; returns the payload bytes (RTP packets' payloads)."""
    frame.pts = round(index * 90000 / fps)
    frame.time_base = VIDEO_TIME_BASE
    payloads, _ = encoder.encode(frame)
    return sum(len(p) for p in payloads)


def _upload_pose(pose: PoseFrame, device: torch.device) -> None:
    """The host-to-device copy that :meth:`Retargeter.render` makes of a pose, synchronized."""
    torch.from_numpy(np.ascontiguousarray(pose.joints_px[None], np.float32)).to(device)
    torch.from_numpy(np.ascontiguousarray(pose.confidence[None], np.float32)).to(device)
    _synchronize(device)


def _timed_frames(source: Path, count: int) -> Iterator[tuple[np.ndarray, float, float]]:
    """``(rgb, timestamp_ms, decode_ms)`` of the first ``count`` frames."""
    frames = read_frames(source, max_frames=count)
    while True:
        start = time.perf_counter()
        try:
            rgb, timestamp_ms = next(frames)
        except StopIteration:
            return
        yield rgb, timestamp_ms, 1e3 * (time.perf_counter() - start)


def run_sequential(
    target: Target, source: Path, frames: int, warmup: int, codec: str
) -> tuple[dict[str, list[float]], list[float], float]:
    """All stages one after another on this thread.

    Returns:
        ``(stage_ms, frame_ms, end-to-end fps)`` over the frames after the warm-up: milliseconds per stage
        and per whole frame, and frames per second.

    Raises:
        RuntimeError: if the video has no more than ``warmup`` frames.
    """
    retargeter = _SyncedRetargeter(target, live=True)
    encoder = make_encoder(codec)
    device = target.device
    stage_ms: dict[str, list[float]] = {}
    frame_ms: list[float] = []
    start_s = time.perf_counter()
    try:
        for index, (rgb, timestamp_ms, decode_ms) in enumerate(_timed_frames(source, warmup + frames)):
            if index == warmup:
                start_s = time.perf_counter() - decode_ms / 1e3
            t0 = time.perf_counter()
            pose = retargeter.estimate(rgb, timestamp_ms)
            t1 = time.perf_counter()
            row = {"decode": decode_ms, "pose": 1e3 * (t1 - t0)}
            if device.type == "cuda":
                _upload_pose(pose, device)
                row["upload"] = 1e3 * (time.perf_counter() - t1)
            timings: dict[str, float] = {}
            t2 = time.perf_counter()
            result = retargeter.generate(pose, timings)
            t3 = time.perf_counter()
            row.update(timings)
            row["download"] = 1e3 * (t3 - t2) - sum(timings.values())
            frame = compose_side_by_side(result.stick_figure, result.generated)
            encode_result(encoder, frame, index)
            t4 = time.perf_counter()
            row["encode"] = 1e3 * (t4 - t3)
            if index >= warmup:
                frame_ms.append(decode_ms + 1e3 * (t4 - t0))
                for stage, ms in row.items():
                    stage_ms.setdefault(stage, []).append(ms)
    finally:
        retargeter.close()
    if not frame_ms:
        raise RuntimeError(f"{source} has no frames after the {warmup} warm-up frames")
    return stage_ms, frame_ms, len(frame_ms) / (time.perf_counter() - start_s)


_END = object()


def run_overlapped(target: Target, source: Path, frames: int, warmup: int, codec: str) -> float:
    """Decode, pose, generation (with the side-by-side ``av.VideoFrame``, as the live generation worker
    composes it) and encoding, each on a thread of its own, joined by one-frame queues. Returns end-to-end
    frames per second after the warm-up: frames encoded after the last warm-up frame, over the time since it
    was encoded.

    Raises:
        ValueError: if ``warmup`` is less than 1 (the clock starts at the last warm-up frame).
        whatever a stage raised (re-raised here); RuntimeError if nothing was timed.
    """
    if warmup < 1:
        raise ValueError(f"the overlapped run needs at least 1 warm-up frame, got {warmup}")
    retargeter = _SyncedRetargeter(target, live=True)
    encoder = make_encoder(codec)
    errors: list[BaseException] = []
    done_s: list[float] = []
    links: list[queue.Queue[Any]] = [queue.Queue(maxsize=1) for _ in range(3)]

    def decode() -> Iterator[Any]:
        for index, (rgb, timestamp_ms, _) in enumerate(_timed_frames(source, warmup + frames)):
            yield index, rgb, timestamp_ms

    def pose(item: Any) -> Any:
        index, rgb, timestamp_ms = item
        return index, retargeter.estimate(rgb, timestamp_ms)

    def generate(item: Any) -> Any:
        index, pose_frame = item
        result = retargeter.generate(pose_frame)
        image = compose_side_by_side(result.stick_figure, result.generated)
        return index, image

    def encode(item: Any) -> None:
        index, image = item
        encode_result(encoder, image, index)
        done_s.append(time.perf_counter())

    def run(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            errors.append(exc)
            for link in links:  # unblock the others
                while True:
                    try:
                        link.put_nowait(_END)
                        break
                    except queue.Full:
                        link.get_nowait()

    def put(link: queue.Queue[Any], item: Any) -> bool:
        """Hand ``item`` on; False (and nothing handed on) once a stage has failed."""
        while not errors:
            try:
                link.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def source_stage() -> None:
        for item in decode():
            if not put(links[0], item):
                return
        put(links[0], _END)

    def middle_stage(fn: Callable[[Any], Any], inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        while (item := inbox.get()) is not _END:
            if not put(outbox, fn(item)):
                return
        put(outbox, _END)

    def sink_stage() -> None:
        while (item := links[2].get()) is not _END:
            encode(item)

    threads = [
        threading.Thread(target=run, args=(source_stage,), name="decode"),
        threading.Thread(target=run, args=(lambda: middle_stage(pose, links[0], links[1]),), name="pose"),
        threading.Thread(target=run, args=(lambda: middle_stage(generate, links[1], links[2]),), name="gen"),
        threading.Thread(target=run, args=(sink_stage,), name="encode"),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        retargeter.close()
    if errors:
        raise errors[0]
    if len(done_s) <= warmup:
        raise RuntimeError(f"{source} has no frames after the {warmup} warm-up frames")
    return (len(done_s) - warmup) / (done_s[-1] - done_s[warmup - 1])


def percentile_ms(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation) of ``values``."""
    return float(np.percentile(np.asarray(values, np.float64), q))


def markdown_table(runs: list[EngineRun], device: str) -> str:
    """One row per stage (median / p95 ms per frame), then the whole frame's, the sum of the stage medians
    and the end-to-end frame rates; one column per engine."""
    header = "| stage (ms per frame: median / p95) | " + " | ".join(r.label for r in runs) + " |"
    lines = [header, "|---|" + "---:|" * len(runs)]
    for stage in STAGES:
        if stage in CUDA_ONLY_STAGES and device != "cuda":
            continue
        cells = []
        for run in runs:
            values = run.stage_ms.get(stage)
            if values:
                cells.append(f"{np.median(values):.1f} / {percentile_ms(values, 95):.1f}")
            else:
                cells.append("n/a")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    whole = [
        f"{np.median(r.frame_ms):.1f} / {percentile_ms(r.frame_ms, 95):.1f} (mean {np.mean(r.frame_ms):.1f})"
        for r in runs
    ]
    lines.append("| whole frame, sequential | " + " | ".join(whole) + " |")
    sums = [sum(float(np.median(v)) for v in r.stage_ms.values()) for r in runs]
    lines.append("| sum of stage medians | " + " | ".join(f"{s:.1f}" for s in sums) + " |")
    fps = " | ".join(f"{r.sequential_fps:.1f}" for r in runs)
    lines.append(f"| end-to-end fps, sequential | {fps} |")
    if any(r.overlapped_fps is not None for r in runs):
        cells = ["n/a" if r.overlapped_fps is None else f"{r.overlapped_fps:.1f}" for r in runs]
        lines.append(
            "| end-to-end fps, overlapped (stages on their own threads) | " + " | ".join(cells) + " |"
        )
    lines.append("| frames timed | " + " | ".join(str(r.frames) for r in runs) + " |")
    notes = [f"- {r.label}: {note}" for r in runs for note in r.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def machine_description() -> str:
    """The CPU model (``lscpu``), logical CPUs, load average, and the GPU when CUDA is available."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.CalledProcessError):
        pass  # no lscpu: keep platform's name
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = f"CPU: {cpu}, {os.cpu_count()} logical CPUs; load average (1, 5, 15 min) at the end: {load}"
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name(0)}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages",
        description="Per-stage median and p95 milliseconds (decode, pose, normalize, rasterize, generate, "
        "face, download, encode; upload on CUDA) and end-to-end fps of the retargeting pipeline over a "
        "source video, for each engine given, as a markdown table.",
    )
    parser.add_argument(
        "--engine",
        type=Path,
        action="append",
        default=None,
        help="engine file (.onnx: ONNX Runtime, .pt: PyTorch); repeat for several (default: the bundled "
        "mannequin on ONNX Runtime)",
    )
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="source video (default %(default)s)"
    )
    parser.add_argument("--frames", type=int, default=120, help="frames timed (default %(default)s)")
    parser.add_argument(
        "--warmup", type=int, default=5, help="frames run before timing starts (default %(default)s)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the engines run")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads of PyTorch and ONNX Runtime (default: the libraries' defaults)",
    )
    parser.add_argument(
        "--codec", choices=("vp8", "h264"), default="vp8", help="WebRTC encoder (default: %(default)s)"
    )
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="also run decode, pose, generation and encoding on threads of their own, as the live server "
        "pins pose and generation to separate threads, and report that end-to-end fps",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        print(
            "error: --frames must be at least 1, --warmup at least 0, --threads at least 1", file=sys.stderr
        )
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "skipped: --device cuda asked for, but CUDA is not available here (torch.cuda.is_available() is "
            "False); run with --device cpu, or on a machine with a GPU",
            file=sys.stderr,
        )
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    engines = args.engine
    if not engines:
        from realtime.targets import DEFAULT_TARGET

        engines = [DEFAULT_TARGET]
    runs = []
    try:
        for engine in engines:
            target = load_target(Path(engine), args.device, args.threads)
            run = EngineRun(label=f"{Path(engine).name} ({target.backend.name}, {target.device.type})")
            if target.face is None:
                run.notes.append("no face model: no face stage")
            print(f"{run.label}: {args.warmup} + {args.frames} frames of {args.source} ...", file=sys.stderr)
            run.stage_ms, run.frame_ms, run.sequential_fps = run_sequential(
                target, args.source, args.frames, args.warmup, args.codec
            )
            run.frames = len(run.frame_ms)
            if args.overlap:
                run.overlapped_fps = run_overlapped(
                    target, args.source, args.frames, max(args.warmup, 1), args.codec
                )
            runs.append(run)
    except (FileNotFoundError, ValueError, RuntimeError, VideoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threads = "library defaults" if args.threads is None else str(args.threads)
    print(
        f"Source `{args.source}`, {args.warmup} warm-up frames then {runs[0].frames} timed; device "
        f"{args.device}; intra-op threads: {threads} (torch.get_num_threads() = {torch.get_num_threads()}); "
        f"encoder: aiortc {args.codec.upper()}.\n{machine_description()}.\n"
    )
    print(markdown_table(runs, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
