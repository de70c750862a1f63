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

#: ``python -m MODULE [COMMAND or MODE words]`` -> (arguments with a bad value, the words argparse's error
#: must contain). ``train evaluate --synthetic`` and ``train.synthetic source`` are modes with their own
#: arguments; ``train`` and ``export`` alone answer for their command list.
COMMANDS = {
    "train": (["bogus"], "invalid choice"),
    "train prepare": (["/no/such/video.mp4", "--out", "x"], "no such file"),
    "train fit": (["/no/such/prepared", "--out", "x"], "no such file or folder"),
    "train evaluate": (["x.onnx", "--data", "d", "--sheet-frames", "0"], "whole number >= 1"),
    "train evaluate --synthetic": (["--source", "/no/such.mp4", "--out", "x"], "no such file"),
    "train.synthetic": (["--out", "x", "--frames", "-3"], "whole number >= 1"),
    "train.synthetic source": (["--out", "x.mp4", "--size", "8x8"], "16-4096"),
    "export": ([], "required: command"),
    "export onnx": (["/no/such/checkpoint.pt", "x.onnx"], "no such file"),
    "export tensorrt": (["/no/such/target.onnx", "t.plan"], "no such file"),
    "realtime.offline": (["--source", "README.md", "--out", "x.mp4", "--median-window", "4"], "must be odd"),
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


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_and_bad_arguments_answer_before_heavy_imports(command: str) -> None:
    module, *mode = command.split()
    code, heavy, _ = run_module(module, [*mode, "--help"])
    assert (code, heavy) == (0, []), (command, heavy)
    bad, words = COMMANDS[command]
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


def test_light_parsers_show_the_facts_the_library_uses() -> None:
    """What the light parsers show (defaults, choices) is the very constant the library modules use, stated
    once in a light module (realtime.catalog, train.catalog), never a copy."""
    import inspect

    import export.tensorrt as tensorrt_export
    import realtime.catalog as catalog
    import train.catalog
    import train.metrics
    from export.cli import build_onnx_parser, build_tensorrt_parser
    from export.onnx import export_onnx
    from train.cli import build_evaluate_parser, build_fit_parser
    from train.config import config_keys
    from train.synthetic.cli import main as synthetic_main  # noqa: F401 - importable without side effects
    from train.synthetic.source import SourceParams

    assert train.metrics.STILL_THRESHOLD_PX is train.catalog.STILL_THRESHOLD_PX
    evaluate = build_evaluate_parser()
    assert evaluate.get_default("still_threshold_px") is train.catalog.STILL_THRESHOLD_PX
    assert f"default {train.catalog.STILL_THRESHOLD_PX:g})" in " ".join(evaluate.format_help().split())
    tensorrt = build_tensorrt_parser()
    assert tensorrt.get_default("max_batch") == catalog.DEFAULT_TENSORRT_MAX_BATCH
    assert inspect.signature(tensorrt_export.export_tensorrt).parameters["max_batch"].default == (
        catalog.DEFAULT_TENSORRT_MAX_BATCH
    )
    assert tensorrt_export.TENSORRT_VS_ONNXRUNTIME_ATOL is catalog.TENSORRT_VS_ONNXRUNTIME_ATOL
    assert tuple(tensorrt._option_string_actions["--precision"].choices) == tuple(
        catalog.TENSORRT_VS_ONNXRUNTIME_ATOL
    )
    assert (
        tensorrt.get_default("precision")
        == inspect.signature(tensorrt_export.export_tensorrt).parameters["precision"].default
    )
    assert catalog.TENSORRT_TIMING_CACHE_NAME in tensorrt.format_help()
    assert (
        build_onnx_parser().get_default("atol") == inspect.signature(export_onnx).parameters["atol"].default
    )
    # every config key is listed by python -m train fit --help (derived from the config dataclasses)
    listed = set()
    for word in build_fit_parser().epilog.split("keys:")[1].split():
        group, _, names = word.partition(".{")
        listed |= {f"{group}.{name}" for name in names.rstrip("}").split(",")} if names else {group}
    assert listed == set(config_keys()) and "generator.extra_inputs" in listed
    source = SourceParams()
    help_text = subprocess.run(
        [sys.executable, "-m", "train.synthetic", "source", "--help"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60,
    ).stdout  # fmt: skip
    assert f"(default {source.seconds:g})" in help_text and f"(default {source.fps:g})" in help_text
    assert f"(default {source.width}x{source.height})" in help_text
    assert f"(default {source.seed})" in help_text
