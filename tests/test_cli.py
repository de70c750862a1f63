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
    "realtime.offline.retarget": (
        ["--source", "README.md", "--out", "x.mp4", "--median-window", "4"],
        "must be odd",
    ),
    "train.fit": (["/no/such/prepared", "--out", "x"], "no such file or folder"),
    "train.evaluate": (["x.onnx", "--data", "d", "--sheet-frames", "0"], "whole number >= 1"),
    "train.synthetic": (["--out", "x", "--frames", "-3"], "whole number >= 1"),
    "export.tensorrt": (["/no/such/target.onnx", "t.plan"], "no such file"),
}
#: ``python -m train.evaluate --synthetic`` and ``python -m train.synthetic source`` are modes with their own
#: arguments: checked the same way.
MODES = {
    "train.evaluate --synthetic": (["--source", "/no/such.mp4", "--out", "x"], "no such file"),
    "train.synthetic source": (["--out", "x.mp4", "--size", "8x8"], "16-4096"),
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


@pytest.mark.parametrize("command", sorted({**COMMANDS, **MODES}))
def test_help_and_bad_arguments_answer_before_heavy_imports(command: str) -> None:
    module, *mode = command.split()
    code, heavy, _ = run_module(module, [*mode, "--help"])
    assert (code, heavy) == (0, []), (command, heavy)
    bad, words = {**COMMANDS, **MODES}[command]
    code, heavy, stderr = run_module(module, [*mode, *bad])
    assert (code, heavy) == (2, []), (command, heavy, stderr)
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


def test_light_parsers_state_the_real_defaults() -> None:
    """Defaults written out in the light parsers are the constants of the modules they stand for."""
    import export.tensorrt as tensorrt_export
    from train.evaluate import build_parser as evaluate_parser
    from train.metrics import STILL_THRESHOLD_PX
    from train.synthetic.cli import main as synthetic_main  # noqa: F401 - importable without side effects
    from train.synthetic.source import SourceParams

    assert evaluate_parser().get_default("still_threshold_px") == STILL_THRESHOLD_PX
    tensorrt = tensorrt_export.build_parser()
    assert tensorrt.get_default("max_batch") == tensorrt_export.DEFAULT_MAX_BATCH
    assert set(tensorrt._option_string_actions["--precision"].choices) == set(
        tensorrt_export.TENSORRT_VS_ONNXRUNTIME_ATOL
    )
    source = SourceParams()
    help_text = subprocess.run(
        [sys.executable, "-m", "train.synthetic", "source", "--help"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60,
    ).stdout  # fmt: skip
    assert f"(default {source.seconds:g})" in help_text and f"(default {source.fps:g})" in help_text
    assert f"(default {source.width}x{source.height})" in help_text and source.seed == 0
