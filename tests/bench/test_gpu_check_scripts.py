"""The device check scripts (``bench/gpu_check.sh``, ``bench/gpu_path_check.sh``) on this machine: their
dry run end to end up to the first step that needs a GPU, one line per missing piece, the real CUDA root
behind a wrapper script, and carried packages installed with ``pip install --target`` on PYTHONPATH
(issue 20)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _run(args, tmp_path, env=None, timeout=600):
    full_env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(tmp_path / "out"),
        "WHEELS": str(tmp_path / "no-wheels"),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        ["bash", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _common(script: str, tmp_path, env=None):
    """Run ``script`` (bash source) after sourcing bench/gpu_common.sh."""
    return _run(["-c", f"source bench/gpu_common.sh; {script}"], tmp_path, env)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the dry run on a machine without a GPU")
@pytest.mark.parametrize("script", ["bench/gpu_check.sh", "bench/gpu_path_check.sh"])
def test_the_dry_run_goes_up_to_the_first_gpu_step(script, tmp_path):
    done = _run([script, "--dry-run"], tmp_path)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "DRY RUN: stopping before the first step that needs a GPU" in out
    assert "MISSING: GPU: torch.cuda.is_available() is False" in out
    assert "on the device the check would stop here" in out
    assert "pytest exit: 0" in out  # the CPU-side checks of the path ran and passed
    assert "--target" in out and "-m venv" not in (ROOT / script).read_text()  # no venv inside the image's
    results = tmp_path / "out" / Path(script).name.replace(".sh", ".txt")
    assert results.read_text().strip() == out.strip()  # everything went to the results file too
    if script.endswith("gpu_check.sh") and shutil.which("nvcc"):
        root = next(line for line in out.splitlines() if line.startswith("CUDA root: ")).split()[2]
        assert (Path(root) / "include" / "cuda.h").is_file()
        assert "rasterize.cubin" in out and "part_warp.cubin" in out and "nvcc failed" not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_the_real_run_stops_with_one_line_per_missing_piece(tmp_path):
    done = _run(["bench/gpu_path_check.sh"], tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    missing = [line for line in lines if line.startswith("MISSING: ")]
    assert "MISSING: GPU: torch.cuda.is_available() is False" in missing
    assert lines[len(lines) - 1].startswith("stopping: ") and "gpu-marked" not in done.stdout


def test_the_cuda_root_is_the_toolkits_even_behind_a_wrapper_script(tmp_path):
    toolkit, wrapper = tmp_path / "cuda-13.0", tmp_path / "wrapper" / "bin"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "include").mkdir()
    (toolkit / "include" / "cuda.h").write_text("")
    nvcc = toolkit / "bin" / "nvcc"
    nvcc.write_text(f'#!/bin/sh\necho "#$ _HERE_={toolkit}/bin" >&2\n')  # as nvcc --dryrun reports it
    wrapper.mkdir(parents=True)
    (wrapper / "nvcc").write_text(f'#!/bin/sh\nexec {nvcc} "$@"\n')
    for path in (nvcc, wrapper / "nvcc"):
        path.chmod(0o755)
    env = {"PATH": f"{wrapper}:{os.environ['PATH']}", "CUDA_ROOT": "", "CUDA_HOME": "", "CUDA_PATH": ""}
    done = _common("find_cuda_root", tmp_path, env)
    assert done.returncode == 0 and done.stdout.strip() == str(toolkit)  # not the wrapper's folder
    env["CUDA_HOME"] = str(toolkit)
    assert _common("find_cuda_root", tmp_path, env).stdout.strip() == str(toolkit)


def _wheel(folder: Path, name: str) -> None:
    """A minimal pure-Python wheel of package ``name`` (version 1.0)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


def test_carried_packages_go_into_a_target_folder_on_pythonpath(tmp_path):
    wheels = tmp_path / "wheels"
    _wheel(wheels, "dlcarried")
    env = {"WHEELS": str(wheels)}
    script = (
        "need_packages dlcarried=dlcarried dlabsent=dlabsent json=json; report_missing; "
        f'install_into {tmp_path / "deps"} "${{TO_INSTALL[@]}}"; '
        '"$PYTHON" -c "import dlcarried, sys; print(dlcarried.VALUE, sys.prefix)"'
    )
    done = _common(f"DRY_RUN=1; {script}", tmp_path, env)
    assert "MISSING: package dlabsent" in done.stdout  # one line for the one not carried
    assert "MISSING: package json" not in done.stdout and "dlcarried (" not in done.stdout
    done = _common(script.replace("dlabsent=dlabsent ", ""), tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--target" in done.stdout and f"42 {sys.prefix}" in done.stdout  # the outer interpreter, no venv
    assert (tmp_path / "deps" / "dlcarried" / "__init__.py").is_file()
