"""Every command line answers ``--help`` and bad arguments at once, with argparse's one-line error, before it
imports anything heavy (it took 11-20 s on the loaded 2-core machine with PyTorch imported first)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.cli import canvas_size, existing_file, fraction, positive_float, positive_int

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("numpy", "torch", "mediapipe", "onnxruntime", "av", "aiortc", "PIL", "cv2")

#: module -> (arguments with a bad value, the words argparse's error must contain)
COMMANDS = {
    "train.prepare": (["/no/such/video.mp4", "--out", "x"], "no such file"),
    "export.onnx": (["/no/such/checkpoint.pt", "x.onnx"], "no such file"),
    "realtime.retarget": (["--source", "README.md", "--out", "x.mp4", "--median-window", "4"], "must be odd"),
}


def run_module(module: str, argv: list[str]) -> tuple[int, list[str], str]:
    """Run ``python -m module argv`` in a probe that reports the exit code and the heavy modules loaded."""
    probe = (
        "import runpy, sys\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    *_, code_line, modules_line = result.stdout.strip().splitlines()
    return int(code_line.split()[1]), eval(modules_line), result.stderr  # noqa: S307 - our own list repr


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_and_bad_arguments_answer_before_heavy_imports(module: str) -> None:
    code, heavy, _ = run_module(module, ["--help"])
    assert (code, heavy) == (0, []), (module, heavy)
    bad, words = COMMANDS[module]
    code, heavy, stderr = run_module(module, bad)
    assert (code, heavy) == (2, []), (module, heavy, stderr)
    assert "Traceback" not in stderr and words in stderr.splitlines()[-1], stderr


def test_argument_types(tmp_path: Path) -> None:
    assert positive_int("3") == 3 and fraction("0.15") == 0.15 and positive_float("1e-4") == 1e-4
    assert canvas_size("256x128") == (256, 128)
    file = tmp_path / "f"
    file.write_text("x")
    assert existing_file(str(file)) == file
    for parse, text in [
        (positive_int, "0"), (positive_int, "x"), (fraction, "1"), (fraction, "0"), (positive_float, "nan"),
        (positive_float, "-1"), (canvas_size, "5x5"), (canvas_size, "256"), (existing_file, str(tmp_path)),
    ]:  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
