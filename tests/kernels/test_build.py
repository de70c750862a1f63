"""The build-once loader, the impl switch, and every .cu file through nvcc."""

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from kernels import _build
from kernels._build import KERNEL_DIR, KernelBuildError, cxx_compiler

needs_cxx = pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler for the CPU build")
CU_FILES = sorted(KERNEL_DIR.glob("*.cu"))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A kernel folder copy and an empty cache, so builds here do not touch the user's cache."""
    src = tmp_path / "src"
    shutil.copytree(KERNEL_DIR, src, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(_build, "KERNEL_DIR", src)
    monkeypatch.setattr(_build, "_loaded", {})
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    return src, tmp_path / "cache"


@needs_cxx
def test_cpu_build_is_cached_by_source_hash_and_rebuilt_after_an_edit(private_cache, caplog):
    src, cache = private_cache
    caplog.set_level(logging.INFO, logger="kernels._build")
    lib = _build.load_cpu_library("rasterize")
    assert hasattr(lib, "rasterize_cpu")
    builds = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert len(builds) == 1 and builds[0].startswith("rasterize-cpu-")
    assert sum("done" in r.message for r in caplog.records) == 1
    # A second process would find the build: forget the loaded module and load again, no rebuild.
    _build._loaded.clear()
    caplog.clear()
    _build.load_cpu_library("rasterize")
    assert not any("building" in r.message for r in caplog.records)
    # An edited source (here only a comment) gets a new folder.
    (src / "rasterize.cu").write_text((src / "rasterize.cu").read_text() + "\n// edited\n")
    _build._loaded.clear()
    _build.load_cpu_library("rasterize")
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


@needs_cxx
def test_a_failing_build_raises_with_the_compiler_output(private_cache):
    src, _ = private_cache
    (src / "rasterize.cu").write_text("this is not C++;\n")
    with pytest.raises(KernelBuildError, match="compiler output") as err:
        _build.load_cpu_library("rasterize")
    assert "rasterize.cu" in str(err.value)


def test_missing_compiler_raises_for_cpu_and_auto_falls_back_to_the_reference(monkeypatch, caplog):
    monkeypatch.setattr(_build, "cxx_compiler", lambda: None)
    monkeypatch.setattr(_build, "_loaded", {})
    with pytest.raises(KernelBuildError, match="C\\+\\+ compiler"):
        _build.load_cpu_library("rasterize")
    caplog.set_level(logging.INFO, logger="kernels._build")
    monkeypatch.setattr(_build, "_logged_choices", set())
    assert _build.choose_impl("op", "auto", torch.device("cpu")) == "ref"
    assert _build.choose_impl("op", "auto", torch.device("cpu")) == "ref"
    assert [r.message for r in caplog.records] == [
        "op: impl='auto' uses the ref implementation for cpu tensors (no C++ compiler found)"
    ]


def test_impl_choice():
    cpu = torch.device("cpu")
    assert _build.choose_impl("op", "ref", cpu) == "ref"
    assert _build.choose_impl("op", "cpu", cpu) == "cpu"
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        _build.choose_impl("op", "cuda", cpu)
    with pytest.raises(ValueError, match="impl must be one of"):
        _build.choose_impl("op", "gpu", cpu)


def test_cuda_without_pycuda_says_why():
    reason = _build.cuda_available_reason()
    try:
        import pycuda  # noqa: F401
    except ImportError:
        assert reason == "pycuda is not installed"
        with pytest.raises(KernelBuildError, match="pycuda"):
            _build._pycuda_driver()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("source", CU_FILES, ids=[p.name for p in CU_FILES])
def test_every_cu_file_compiles_to_ptx(source: Path, tmp_path):
    out = tmp_path / (source.stem + ".ptx")
    cmd = ["nvcc", "-ptx", "-std=c++17", "--fmad=false", "-I", str(KERNEL_DIR), str(source), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    ptx = out.read_text()
    assert ".entry" in ptx  # at least one __global__ kernel survived


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_the_launch_argument_formats_match_the_kernel_signatures(tmp_path):
    """The pycuda formats used at launch, checked against the parameters nvcc gives each entry point."""
    from kernels import part_warp, rasterize

    ptx_type = {"P": ".u64", "i": ".u32", "f": ".f32"}
    for source, formats in (
        ("rasterize", rasterize.CUDA_ARG_FORMATS),
        ("part_warp", part_warp.CUDA_ARG_FORMATS),
    ):
        out = tmp_path / f"{source}.ptx"
        cmd = [
            "nvcc",
            "-ptx",
            "-std=c++17",
            "-I",
            str(KERNEL_DIR),
            str(KERNEL_DIR / f"{source}.cu"),
            "-o",
            str(out),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        entries = dict(re.findall(r"\.entry (\w+)\(([^)]*)\)", out.read_text()))
        assert set(entries) == set(formats), f"{source}.cu entry points {sorted(entries)}"
        for name, fmt in formats.items():
            params = re.findall(r"\.param (\.\w+)", entries[name])
            assert params == [ptx_type[c] for c in fmt], f"{name}: PTX {params} vs format {fmt!r}"


def test_kernels_import_nothing_from_the_project():
    project = {"realtime", "train", "export", "server", "bench"}
    for path in KERNEL_DIR.glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                assert words[1].split(".")[0] not in project, f"{path.name}: {line}"


def test_table_cache_computes_once_per_table_and_again_after_an_edit():
    cache = _build.TableCache()
    table = torch.arange(4)
    calls = []
    assert cache.get((table,), "k", lambda: calls.append(1) or "first") == "first"
    assert cache.get((table,), "k", lambda: calls.append(1) or "again") == "first" and len(calls) == 1
    assert cache.get((table.clone(),), "k", lambda: "other table") == "other table"
    assert cache.get((table,), "other key", lambda: "other key") == "other key"
    table[0] = 9  # an in-place edit bumps the tensor's version
    assert cache.get((table,), "k", lambda: "edited") == "edited"
    with pytest.raises(ValueError):
        cache.get((table,), "bad", lambda: (_ for _ in ()).throw(ValueError("bad table")))
    del table
    import gc

    gc.collect()
    assert len(cache._entries) == 0  # forgotten with the tensor
