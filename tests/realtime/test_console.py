"""The command lines' console output: progress lines off a terminal, native log lines left out."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.console import progress

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_prints_whole_lines_every_interval() -> None:
    log = io.StringIO()
    bar = progress(range(50), file=log, desc="render", unit="frame", interval_s=3600)
    assert sum(1 for _ in bar) == 50
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and lines  # no carriage-return redraws in a log file
    assert len(lines) <= 3, lines  # the first line, maybe the last, and the closing one: not one per item
    assert lines[-1].startswith("render: 100%") and "50/50" in lines[-1], lines


def test_progress_on_a_terminal_is_tqdm_bar() -> None:
    terminal = FakeTerminal()
    for _ in progress(range(5), file=terminal, desc="fit", mininterval=0):
        pass
    assert "\r" in terminal.getvalue()
    with pytest.raises(ValueError, match="interval_s"):
        progress(range(1), file=terminal, interval_s=0)


def test_native_routine_log_lines_are_left_out_of_stderr():
    """MediaPipe's and TensorFlow Lite's routine lines go; native errors and Python's logging stay."""
    probe = (
        "import logging, os, time\n"
        "import numpy as np\n"
        "from realtime.console import filter_native_stderr\n"
        "filter_native_stderr()\n"
        "logging.basicConfig(level='INFO', format='%(name)s: %(message)s')\n"
        "from realtime.pose.estimators import MediaPipePose\n"
        "estimator = MediaPipePose(video_mode=True)\n"  # logs XNNPACK and feedback-manager lines natively
        "for i in range(3):\n"
        "    estimator.estimate(np.full((120, 160, 3), 40 * i, np.uint8), 33.0 * i)\n"
        "os.write(2, b'W0000 00:00:1.5   7 some.cc:12] a routine warning\\n')\n"
        "os.write(2, b'INFO: a routine note\\n')\n"
        "os.write(2, b'E0000 00:00:1.5   7 some.cc:34] a native error\\n')\n"
        "logging.getLogger('probe').warning('python logging')\n"
        "time.sleep(0.5)\n"  # the filter thread copies the lines
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.strip().splitlines()) == [
        "E0000 00:00:1.5   7 some.cc:34] a native error",
        "probe: python logging",
    ], result.stderr
