"""Argument types shared by the command lines: each turns a bad value into argparse's one-line error (usage,
``error: ...``, exit 2) instead of a traceback later.

Light on purpose (the standard library only): a command builds its parser and checks its arguments before it
imports PyTorch, MediaPipe or NumPy, so that ``--help`` and argument errors answer in a fraction of a second.
The pattern, in a command's module::

    def build_parser() -> argparse.ArgumentParser: ...   # above the heavy imports, light defaults only

    if __name__ == "__main__":
        build_parser().parse_args()  # --help and argument errors answer here, before the heavy imports

    import torch  # noqa: E402  (the heavy imports follow)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def existing_file(text: str) -> Path:
    """An existing file's path.

    Raises:
        argparse.ArgumentTypeError: if there is no such file.
    """
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def existing_path(text: str) -> Path:
    """An existing file's or folder's path.

    Raises:
        argparse.ArgumentTypeError: if there is no such file or folder.
    """
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def positive_int(text: str) -> int:
    """An integer >= 1.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value


def canvas_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` in pixels, each side from 16 to 4096.

    Raises:
        argparse.ArgumentTypeError: for another form or sides out of range.
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 256x256 (WIDTHxHEIGHT), got {text!r}"
        ) from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise argparse.ArgumentTypeError(f"each side must be 16-4096 pixels, got {width}x{height}")
    return width, height


LOG_LEVELS = ("debug", "info", "warning", "error")


def add_log_level(parser: argparse.ArgumentParser, default: str = "warning") -> None:
    """Add ``--log-level`` (one of :data:`LOG_LEVELS`); see :func:`setup_logging`."""
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=default,
        help="logging verbosity; debug also shows MediaPipe's and TensorFlow Lite's native log lines "
        "(default: %(default)s)",
    )


def setup_logging(
    level: str, *, command_line: bool, fmt: str = "%(levelname)s %(name)s: %(message)s"
) -> None:
    """Configure logging at ``level`` (a name of :data:`LOG_LEVELS`) and, for a command line (not a
    ``main(argv)`` called from Python, such as a test, whose process's stderr must stay as it is) unless the
    level is ``debug``, leave the native libraries' routine lines out of stderr
    (:func:`realtime.console.filter_native_stderr`). Call once, first thing after parsing."""
    import logging

    from realtime.console import filter_native_stderr

    if command_line and level != "debug":
        filter_native_stderr()
    logging.basicConfig(level=level.upper(), format=fmt)
