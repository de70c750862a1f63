"""Test stand-in for :mod:`realtime.model.pipeline`: a fake Target and Retargeter with the same interface.

The fake Retargeter sleeps ``pose_ms`` in ``estimate`` and ``generate_ms`` in ``generate`` (in its calling
thread, like the real one computes) and returns a deterministic result: every pixel of the stick figure and
of the generated image is ``frame_value(rgb)`` (the mean of the input frame's first row, rounded), so a test
can tell which input frame an output frame came from. (The value travels from ``estimate`` to ``generate``
in the pose's joint coordinates; the pose is empty: nobody is found.)

Run as a script, it serves with the fake pipeline as the server's target factory (:func:`fake_factory`)::

    PYTHONPATH=. python tests/fake_pipeline.py --engine fake.json --host 127.0.0.2 --port 8080

(from the repository root; tests build that command with :func:`server_command`).

where ``fake.json`` holds ``{"canvas_size": [W, H], "process_ms": 20}`` (all optional; ``process_ms`` is
split evenly between the two stages unless ``pose_ms`` / ``generate_ms`` are given). Several ``--engine``
files give several targets, named by their file stems.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import server
from realtime.pose.estimators import PoseFrame
from server import TargetFactory

#: The actions the fake retargeter can "perform" (:meth:`FakeRetargeter.play_action`).
FAKE_ACTIONS = ("wave", "idle_sway")


def frame_value(rgb: np.ndarray) -> int:
    """The value the fake writes into its output for input ``rgb``: mean of the first row, rounded."""
    return int(round(float(rgb[0].mean())))


@dataclass(frozen=True)
class FakeTarget:
    """Stands in for ``realtime.model.pipeline.Target``."""

    name: str = "fake"
    canvas_size: tuple[int, int] = (64, 48)
    pose_ms: float = 5.0
    generate_ms: float = 5.0

    @property
    def process_ms(self) -> float:
        """Both stages together, in ms."""
        return self.pose_ms + self.generate_ms

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FakeTarget:
        """Read ``{"canvas_size": [W, H], "process_ms": ms, "pose_ms": ms, "generate_ms": ms}`` from ``path``.

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
            half_ms = float(config.get("process_ms", cls.pose_ms + cls.generate_ms)) / 2
            pose_ms = float(config.get("pose_ms", half_ms))
            generate_ms = float(config.get("generate_ms", half_ms))
            return cls(path.stem, (int(width), int(height)), pose_ms, generate_ms)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path} is not a fake target JSON file: {exc}") from exc


@dataclass(frozen=True)
class FakeResult:
    """Stands in for ``realtime.model.pipeline.RetargetResult``."""

    generated: np.ndarray
    stick_figure: np.ndarray
    pose: PoseFrame
    timings_ms: dict[str, float] = field(default_factory=dict)


class ConcurrentUseError(AssertionError):
    """The fake was used as the real one must not be: a stage from two threads at once, ``close`` while a
    stage runs, or anything after ``close``."""


class FakeRetargeter:
    """Stands in for ``realtime.model.pipeline.Retargeter``.

    Args:
        target: gives the canvas size and the default stage times.
        live: accepted for interface parity.
        process_ms: if given, both stages together take this long (split evenly).
        fail_when: ``estimate`` raises ``RuntimeError`` for inputs where ``fail_when(frame_value)`` is true.

    Records every ``estimate`` call in :attr:`calls` (timestamp_ms, frame_value), the threads of each stage
    in :attr:`thread_ids` / :attr:`generate_thread_ids`, and whether the two stages ever overlapped in
    :attr:`overlapped`; raises :class:`ConcurrentUseError` when used as the real one must not be.
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
        self.pose_ms = target.pose_ms if process_ms is None else process_ms / 2
        self.generate_ms = target.generate_ms if process_ms is None else process_ms / 2
        self.fail_when = fail_when
        self.calls: list[tuple[float, int]] = []
        self.generated: list[int] = []
        self.thread_ids: set[int] = set()
        self.generate_thread_ids: set[int] = set()
        self.overlapped = False
        self.close_count = 0
        self.closed = False
        self.actions: list[tuple[str, float]] = []
        self._estimating = threading.Lock()
        self._generating = threading.Lock()
        FakeRetargeter.instances.append(self)

    def estimate(self, rgb: np.ndarray, timestamp_ms: float) -> PoseFrame:
        """Sleep ``pose_ms``; the pose carries ``frame_value(rgb)`` in its joints (and finds nobody)."""
        if not self._estimating.acquire(blocking=False):
            raise ConcurrentUseError("estimate called concurrently")
        try:
            if self.closed:
                raise ConcurrentUseError("estimate called after close")
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, (rgb.dtype, rgb.shape)
            value = frame_value(rgb)
            self.calls.append((timestamp_ms, value))
            self.thread_ids.add(threading.get_ident())
            self.overlapped |= self._generating.locked()
            time.sleep(self.pose_ms / 1000.0)
            if callable(self.fail_when) and self.fail_when(value):
                raise RuntimeError(f"fake failure on frame value {value}")
            pose = PoseFrame.empty(timestamp_ms, (rgb.shape[1], rgb.shape[0]))
            pose.joints_px[:] = value
            return pose
        finally:
            self._estimating.release()

    def generate(self, pose: PoseFrame, timings_ms: dict[str, float] | None = None) -> FakeResult:
        """Sleep ``generate_ms``; both images are filled with the value ``estimate`` put in the pose."""
        if not self._generating.acquire(blocking=False):
            raise ConcurrentUseError("generate called concurrently")
        try:
            if self.closed:
                raise ConcurrentUseError("generate called after close")
            start = time.perf_counter()
            self.generate_thread_ids.add(threading.get_ident())
            self.overlapped |= self._estimating.locked()
            value = int(pose.joints_px[0, 0])
            self.generated.append(value)
            time.sleep(self.generate_ms / 1000.0)
            width, height = self.target.canvas_size
            image = np.full((height, width, 3), value, np.uint8)
            timings_ms = {} if timings_ms is None else timings_ms
            timings_ms["fake"] = (time.perf_counter() - start) * 1000.0
            return FakeResult(generated=image, stick_figure=image.copy(), pose=pose, timings_ms=timings_ms)
        finally:
            self._generating.release()

    @property
    def action_labels(self) -> tuple[str, ...]:
        """:data:`FAKE_ACTIONS`."""
        return FAKE_ACTIONS

    def play_action(self, label: str, seconds: float, seed: int | None = None) -> float:
        """Record ``(label, seconds)`` in :attr:`actions`; returns ``seconds``.

        Raises:
            ValueError: for a label not in :data:`FAKE_ACTIONS` or seconds <= 0 (as the real one).
        """
        if label not in FAKE_ACTIONS:
            raise ValueError(f"unknown action {label!r}; known: {', '.join(FAKE_ACTIONS)}")
        if not seconds > 0:
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        self.actions.append((label, seconds))
        return seconds

    def process(self, rgb: np.ndarray, timestamp_ms: float) -> FakeResult:
        """Both stages for one frame."""
        return self.generate(self.estimate(rgb, timestamp_ms))

    def close(self) -> None:
        """Idempotent; raises :class:`ConcurrentUseError` if a stage is running."""
        if not self._estimating.acquire(blocking=False):
            raise ConcurrentUseError("close called while estimate is running")
        try:
            if not self._generating.acquire(blocking=False):
                raise ConcurrentUseError("close called while generate is running")
            try:
                self.close_count += 1
                self.closed = True
            finally:
                self._generating.release()
        finally:
            self._estimating.release()


def fake_factory() -> TargetFactory[FakeTarget]:
    """The server's target factory with the fakes: :meth:`FakeTarget.load` and ``FakeRetargeter(target)``
    (which performs :data:`FAKE_ACTIONS`)."""
    return TargetFactory(
        load_target=FakeTarget.load, make_retargeter=FakeRetargeter, action_labels=FAKE_ACTIONS
    )


def server_command(*args: str) -> list[str]:
    """The command line that runs this file as the server, with ``args``.

    Run as a plain script, Python would put ``tests/`` first on ``sys.path``, where the tests' own
    ``tests/realtime/`` folders would shadow the ``realtime`` package; the command puts the repository root
    there instead.
    """
    root, here = str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve())
    launcher = f"import runpy, sys; sys.path[0] = {root!r}; runpy.run_path({here!r}, run_name='__main__')"
    return [sys.executable, "-c", launcher, *args]


def main(argv: list[str] | None = None) -> int:
    """``server.main`` with the fake pipeline as its target factory."""
    return server.main(argv, factory=fake_factory())


if __name__ == "__main__":
    sys.exit(main())
