"""Argument types shared by the command lines: each turns a bad value into argparse's one-line error (usage,
``error: ...``, exit 2) instead of a traceback later; and :func:`run_command`, the dispatch of a command line
with several commands (``python -m train prepare|fit|evaluate``, ``python -m export onnx|tensorrt``).

Light on purpose (the standard library only): a command builds its parser and checks its arguments before it
imports PyTorch, MediaPipe or NumPy, so that ``--help`` and argument errors answer in a fraction of a second.
The pattern: a light command-line module (``train/cli.py``, ``export/cli.py``, ``realtime/offline/cli.py``,
``train/synthetic/cli.py``), run by its package's ``__main__.py``, holds the parsers and the mains; each main
parses first and imports its library module (which has ordinary top-of-file imports) only then::

    def main(argv: list[str] | None = None, *, command_line: bool | None = None) -> int:
        args = build_parser().parse_args(argv)  # --help and argument errors answer here
        from realtime.offline.retarget import retarget_video  # the heavy imports follow

Defaults and choices that a parser shows and a library module uses are stated once, in a light module that
both import (:mod:`realtime.catalog`, :mod:`train.catalog`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def rgb_colour(text: str) -> tuple[float, float, float]:
    """A colour as ``#RRGGBB`` (or ``RRGGBB``) -> RGB in [0, 1], for the garment colour options and messages.

    Raises:
        argparse.ArgumentTypeError: for another form.
    """
    digits = text[1:] if text.startswith("#") else text
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise argparse.ArgumentTypeError(f"a colour must look like #1f77b4 (#RRGGBB), got {text!r}")
    return tuple(int(digits[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


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


@dataclass(frozen=True)
class Command:
    """One command of a command line with several (:func:`run_command`).

    Attributes:
        main: ``main(argv, command_line=...)`` -> exit code; parses ``argv`` (the arguments after the
            command's name) first, then imports what it runs.
        summary: one line for the command list of ``--help``.
    """

    main: Callable[..., int]
    summary: str


def run_command(
    prog: str,
    description: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
    *,
    command_line: bool | None = None,
) -> int:
    """Run the command that ``argv``'s first word names with the rest of ``argv``; for anything else (no
    command, ``--help``, an unknown name) answer as argparse does: the command list, or usage and a one-line
    error with exit code 2.

    Args:
        prog: how the command line is typed (``python -m train``).
        description: what it does, for ``--help``.
        commands: command name -> :class:`Command`, in the order ``--help`` lists them.
        argv: the arguments (default: ``sys.argv[1:]``).
        command_line: whether the process is the command itself (default: ``argv`` is None), passed on to the
            command (see :func:`setup_logging`).

    Returns:
        the command's exit code.

    Raises:
        SystemExit: from argparse, for ``--help`` (0) and a missing or unknown command (2).
    """
    command_line = argv is None if command_line is None else command_line
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in commands:
        return int(commands[args[0]].main(args[1:], command_line=command_line))
    width = max(map(len, commands))
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [-h] {{{','.join(commands)}}} ...",
        description=description,
        epilog="commands:\n"
        + "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in commands.items())
        + f"\n\n{prog} COMMAND --help shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(commands), help="the command to run")
    name = parser.parse_args(args).command  # --help, no command or an unknown one: argparse exits here
    return int(commands[name].main(args[args.index(name) + 1 :], command_line=command_line))
