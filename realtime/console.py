"""What the command lines print besides their results: progress bars and the native libraries' log lines.

Light on purpose (the standard library only at import time), so that a command's ``--help`` and argument
errors stay fast: :mod:`tqdm` is imported when a progress bar is made.

- :func:`progress`: a :mod:`tqdm` progress bar on a terminal; elsewhere (a log file, a pipe, CI) one plain
  line every few seconds instead of a bar redrawn with carriage returns, which a log file keeps as one huge
  line.
- :func:`filter_native_stderr`: MediaPipe's and TensorFlow Lite's routine native lines left out of stderr.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any

#: Seconds between two progress lines where stderr is not a terminal.
PROGRESS_LINE_INTERVAL_S = 5.0


class _LineWriter(io.TextIOBase):
    """A text stream for tqdm that turns each carriage-return redraw into one whole line."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            if part.strip():
                self._stream.write(part.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    file: IO[str] | None = None,
    interval_s: float = PROGRESS_LINE_INTERVAL_S,
    **kwargs: Any,
) -> Any:
    """A progress bar over ``iterable`` (or a manual one, with ``total=``): a :class:`tqdm.tqdm`.

    On a terminal it is tqdm's usual bar. Elsewhere it prints one line (tqdm's status text) at most every
    ``interval_s`` seconds, and a last line when it closes.

    Args:
        iterable: what to iterate over, or None for a bar updated with ``update()``.
        file: where to write (default: ``sys.stderr`` at the call).
        interval_s: seconds between lines where ``file`` is not a terminal (> 0).
        kwargs: tqdm's own arguments (``total``, ``desc``, ``unit``, ``initial``, ``disable``, ...).

    Raises:
        ValueError: if ``interval_s`` is not positive.
    """
    from tqdm import tqdm

    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.setdefault("mininterval", interval_s)
    kwargs.setdefault("ncols", 100)
    return tqdm(iterable, file=_LineWriter(stream), dynamic_ncols=False, **kwargs)


NATIVE_ROUTINE_LINE = re.compile(
    rb"INFO: |WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rb"|[IW]\d{4} \S+\s+\d+ \S+:\d+\] "
)
"""Native libraries' routine lines on stderr: TensorFlow Lite's ``INFO:`` lines, absl's note about logging
before ``absl::InitializeLog()``, and absl/glog-format info (``I``) and warning (``W``) lines. Error (``E``)
and fatal (``F``) lines do not match and always pass."""


def filter_native_stderr() -> threading.Thread:
    """Drop the native libraries' routine messages from stderr (:data:`NATIVE_ROUTINE_LINE`); keep the rest.

    MediaPipe's C++ graph (0.10.21) logs through absl before ``absl::InitializeLog()`` is called, so every
    message goes to stderr, and TensorFlow Lite prints its own ``INFO:`` line: on each new stream, "Created
    TensorFlow Lite XNNPACK delegate for CPU" and one "inference_feedback_manager.cc:114] Feedback manager
    requires a model with a single signature inference" warning per graph thread. They are written to file
    descriptor 2 directly, under Python's logging, and ``GLOG_minloglevel`` / ``TF_CPP_MIN_LOG_LEVEL`` do not
    silence them (measured, values 2 and 3). So fd 2 becomes a pipe, copied line by line to the real stderr
    by a daemon thread that leaves the routine lines out; ``sys.stderr`` (so Python's logging and
    tracebacks) writes to its own copy of the real stderr, past the pipe.

    Call once per process, before logging is configured. The server and the offline command lines do, except
    under ``--log-level debug`` (then every native line shows). A native crash's last lines can be lost if
    the process dies before the thread copies them: use ``--log-level debug`` to investigate one.

    Returns:
        the copying thread (it ends if fd 2 is closed).
    """
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = open(terminal_fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115

    def copy_lines() -> None:
        pending = b""
        while chunk := os.read(read_fd, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NATIVE_ROUTINE_LINE.match(line))
            if kept:
                os.write(terminal_fd, kept)
        if pending:
            os.write(terminal_fd, pending)

    thread = threading.Thread(target=copy_lines, name="native-stderr-filter", daemon=True)
    thread.start()
    return thread
