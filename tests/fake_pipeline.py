"""Test stand-in for :mod:`realtime.pipeline`: a fake Target and Retargeter with the same interface.

The fake Retargeter sleeps ``process_ms`` (in its calling thread, like the real one computes) and returns a
deterministic result: every pixel of the stick figure and of the generated image is
``frame_value(rgb)`` (the mean of the input frame's first row, rounded), so a test can tell which input frame
an output frame came from.

Run as a script, it serves with the fake pipeline in place of the real one::

    python tests/fake_pipeline.py --engine fake.json --host 127.0.0.2 --port 8080

where ``fake.json`` holds ``{"canvas_size": [W, H], "process_ms": 20}`` (both optional).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.pose import PoseFrame


def frame_value(rgb: np.ndarray) -> int:
    """The value the fake writes into its output for input ``rgb``: mean of the first row, rounded."""
    return int(round(float(rgb[0].mean())))


@dataclass(frozen=True)
class FakeTarget:
    """Stands in for ``realtime.pipeline.Target``."""

    name: str = "fake"
    canvas_size: tuple[int, int] = (64, 48)
    process_ms: float = 10.0

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FakeTarget:
        """Read ``{"canvas_size": [W, H], "process_ms": ms}`` from ``path`` (a JSON file).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if it is not such a JSON file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"target file not found: {path}")
        try:
            config = json.loads(path.read_text() or "{}")
            width, height = config.get("canvas_size", cls.canvas_size)
            return cls(path.stem, (int(width), int(height)), float(config.get("process_ms", cls.process_ms)))
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path} is not a fake target JSON file: {exc}") from exc


@dataclass(frozen=True)
class FakeResult:
    """Stands in for ``realtime.pipeline.RetargetResult``."""

    generated: np.ndarray
    stick_figure: np.ndarray
    pose: PoseFrame
    timings_ms: dict[str, float] = field(default_factory=dict)

    def side_by_side(self) -> np.ndarray:
        """uint8 ``(H, 2W, 3)``: stick figure | generated."""
        return np.concatenate([self.stick_figure, self.generated], axis=1)


class ConcurrentUseError(AssertionError):
    """The fake was called from two threads at once, or after close."""


class FakeRetargeter:
    """Stands in for ``realtime.pipeline.Retargeter``.

    Args:
        target: gives the canvas size and the default processing time.
        live: accepted for interface parity.
        process_ms: time ``process`` sleeps; defaults to ``target.process_ms``.
        fail_when: ``process`` raises ``RuntimeError`` for inputs where ``fail_when(frame_value)`` is true.

    Records every call in :attr:`calls` (timestamp_ms, frame_value) and the calling threads in
    :attr:`thread_ids`; raises :class:`ConcurrentUseError` if
    used from two threads at once or after :meth:`close`.
    """

    instances: list[FakeRetargeter] = []

    def __init__(
        self,
        target: FakeTarget,
        *,
        live: bool = True,
        process_ms: float | None = None,
        fail_when: object = None,
    ) -> None:
        self.target = target
        self.live = live
        self.process_ms = target.process_ms if process_ms is None else process_ms
        self.fail_when = fail_when
        self.calls: list[tuple[float, int]] = []
        self.thread_ids: set[int] = set()
        self.close_count = 0
        self.closed = False
        self._busy = threading.Lock()
        FakeRetargeter.instances.append(self)

    def process(self, rgb: np.ndarray, timestamp_ms: float) -> FakeResult:
        """Sleep ``process_ms`` and return a result filled with ``frame_value(rgb)``."""
        if not self._busy.acquire(blocking=False):
            raise ConcurrentUseError("process called concurrently")
        try:
            if self.closed:
                raise ConcurrentUseError("process called after close")
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, (rgb.dtype, rgb.shape)
            start = time.perf_counter()
            value = frame_value(rgb)
            self.calls.append((timestamp_ms, value))
            self.thread_ids.add(threading.get_ident())
            time.sleep(self.process_ms / 1000.0)
            if callable(self.fail_when) and self.fail_when(value):
                raise RuntimeError(f"fake failure on frame value {value}")
            width, height = self.target.canvas_size
            image = np.full((height, width, 3), value, np.uint8)
            return FakeResult(
                generated=image,
                stick_figure=image.copy(),
                pose=PoseFrame.empty(timestamp_ms, (rgb.shape[1], rgb.shape[0])),
                timings_ms={"fake": (time.perf_counter() - start) * 1000.0},
            )
        finally:
            self._busy.release()

    def close(self) -> None:
        """Idempotent; raises :class:`ConcurrentUseError` if ``process`` is running."""
        if not self._busy.acquire(blocking=False):
            raise ConcurrentUseError("close called while process is running")
        try:
            self.close_count += 1
            self.closed = True
        finally:
            self._busy.release()


def as_pipeline_module() -> types.ModuleType:
    """A module with ``Target``, ``Retargeter`` and ``RetargetResult`` bound to the fakes."""
    module = types.ModuleType("realtime.pipeline")
    module.Target = FakeTarget  # type: ignore[attr-defined]
    module.Retargeter = FakeRetargeter  # type: ignore[attr-defined]
    module.RetargetResult = FakeResult  # type: ignore[attr-defined]
    return module


def main(argv: list[str] | None = None) -> int:
    """``server.main`` with this module standing in for ``realtime.pipeline``."""
    sys.modules["realtime.pipeline"] = as_pipeline_module()
    import server

    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
