"""A pycuda test double for the kernels' launch path, with the kernels' own ``__global__`` wrappers behind it.

``kernels/<name>.cu`` is compiled by g++ with ``kernels/cuda_host_shim.h`` (the CUDA index variables and
qualifiers as plain C++) into a shared library whose ``launch_<kernel>`` entry points run the wrapper once per
thread of the grid, as the GPU would. The launchers are generated from the module's ``CUDA_ARG_FORMATS``, and
the shim's ``shim_arg`` refuses at compile time an argument format that does not match the wrapper's
parameters. ``FakeFunction.prepared_async_call`` follows pycuda's ``Function.prepare`` /
``prepared_async_call(grid, block, stream, *args)``: the function must have been prepared, the arguments
must fit the prepared format (struct codes "P" pointer as an int, "i" a Python int in int32, "f" a number),
the grid and block must be within CUDA's limits, and every launch is recorded with its stream (None: the
default stream).

:func:`install` puts the double in place of ``pycuda.driver`` and of the CUDA calls of
``kernels._build.launch_on_current_stream`` (PyTorch's current stream, ``ExternalStream``), and makes
``kernels._build.load_cuda_module`` return the host-built module: the whole CUDA path of the ops then runs
on CPU tensors here, argument checks, scratch buffers and launches included.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from kernels import _build

#: CUDA's launch limits (compute capability 3.0 and later).
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024
_C_TYPES = {"P": "void*", "i": "int", "f": "float"}
_CTYPES = {"P": ctypes.c_void_p, "i": ctypes.c_int, "f": ctypes.c_float}
_built: dict[str, ctypes.CDLL] = {}


class HostBuildError(RuntimeError):
    """g++ refused the shim build (the message has its output)."""


def host_source(name: str, formats: dict[str, str]) -> str:
    """The C++ translation unit: the shim, the kernel's ``.cu`` file, one launcher per kernel."""
    lines = ['#include "cuda_host_shim.h"', f'#include "{name}.cu"', ""]
    for kernel, fmt in formats.items():
        params = ", ".join(f"{_C_TYPES[c]} a{i}" for i, c in enumerate(fmt))
        args = ", ".join(f"a{i}" for i in range(len(fmt)))
        lines.append(
            f'extern "C" void launch_{kernel}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
            f"unsigned by, unsigned bz, {params}) {{ shim_launch({kernel}, shim_dim3{{gx, gy, gz}}, "
            f"shim_dim3{{bx, by, bz}}, {args}); }}"
        )
    return "\n".join(lines) + "\n"


def build_host_library(name: str, formats: dict[str, str], folder: Path | None = None) -> ctypes.CDLL:
    """Compile (once per source and formats) the host shim build of ``kernels/<name>.cu``.

    Raises:
        HostBuildError: if g++ is missing or refuses the source (a format that does not match a wrapper).
    """
    source = host_source(name, formats)
    kernel_dir = _build.KERNEL_DIR
    digest = hashlib.sha256(
        source.encode()
        + b"".join(p.read_bytes() for p in (kernel_dir / f"{name}.cu", *sorted(kernel_dir.glob("*.h"))))
    ).hexdigest()[:16]
    if digest in _built:
        return _built[digest]
    cxx = shutil.which("g++")
    if cxx is None:
        raise HostBuildError("g++ is not installed")
    folder = Path(tempfile.mkdtemp(prefix="shim-")) if folder is None else folder
    cpp, lib = folder / f"{name}_host.cpp", folder / f"{name}_host_{digest}.so"
    cpp.write_text(source)
    cmd = [cxx, "-O2", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", "-I", str(kernel_dir), str(cpp)]
    done = subprocess.run([*cmd, "-o", str(lib)], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise HostBuildError(f"{' '.join(cmd)}\n{done.stdout}{done.stderr}")
    _built[digest] = ctypes.CDLL(str(lib))
    return _built[digest]


def _dims(what: str, dims: tuple, limits: tuple[int, int, int]) -> tuple[int, int, int]:
    if not isinstance(dims, tuple) or not 1 <= len(dims) <= 3 or not all(isinstance(d, int) for d in dims):
        raise TypeError(f"{what} must be a tuple of 1 to 3 ints, got {dims!r}")
    full = (*dims, 1, 1)[:3]
    if not all(1 <= d <= limit for d, limit in zip(full, limits, strict=True)):
        raise ValueError(f"{what} {full} is outside CUDA's limits 1..{limits}")
    return full  # type: ignore[return-value]


class FakeFunction:
    """A pycuda ``Function`` whose launches run the kernel's wrapper on the host."""

    def __init__(self, double: FakePycuda, name: str, launcher: Any) -> None:
        self.double, self.name, self.launcher, self.arg_format = double, name, launcher, None

    def prepare(self, arg_types: str) -> FakeFunction:
        if not isinstance(arg_types, str) or set(arg_types) - set(_CTYPES):
            raise TypeError(f"{self.name}: unsupported argument format {arg_types!r}")
        self.arg_format = arg_types
        self.launcher.argtypes = [ctypes.c_uint] * 6 + [_CTYPES[c] for c in arg_types]
        self.launcher.restype = None
        return self

    def prepared_async_call(self, grid, block, stream, *args) -> None:
        if self.arg_format is None:
            raise RuntimeError(f"{self.name}: prepared_async_call before prepare")
        if self.double.context_depth < 1:
            raise RuntimeError(f"{self.name}: launched with no CUDA context current (primary_context)")
        if stream is not None and not isinstance(stream, FakeDriverStream):
            raise TypeError(f"{self.name}: stream must be a pycuda Stream or None, got {stream!r}")
        if len(args) != len(self.arg_format):
            raise TypeError(f"{self.name}: {len(args)} arguments for the format {self.arg_format!r}")
        for index, (code, value) in enumerate(zip(self.arg_format, args, strict=True)):
            ok = {
                "P": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                "i": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
                "f": isinstance(value, (int, float)) and not isinstance(value, bool),
            }[code]
            if not ok:
                raise TypeError(f"{self.name}: argument {index} = {value!r} does not fit format {code!r}")
        g = _dims("grid", grid, MAX_GRID)
        b = _dims("block", block, MAX_BLOCK)
        if b[0] * b[1] * b[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(f"{self.name}: block {b} has more than {MAX_THREADS_PER_BLOCK} threads")
        self.double.launches.append(
            SimpleNamespace(name=self.name, grid=g, block=b, stream=stream, args=args)
        )
        self.double.log.append(("launch", self.name, None if stream is None else stream.handle))
        self.launcher(*g, *b, *args)


class FakeModule:
    def __init__(self, double: FakePycuda, lib: ctypes.CDLL, formats: dict[str, str]) -> None:
        self.double, self.lib, self.formats = double, lib, formats

    def get_function(self, name: str) -> FakeFunction:
        if name not in self.formats:
            raise LookupError(f"cuModuleGetFunction failed: named symbol not found ({name})")
        return FakeFunction(self.double, name, getattr(self.lib, f"launch_{name}"))


class FakeDriverStream:
    def __init__(self, handle: int) -> None:
        self.handle = handle


class FakeTorchStream:
    """PyTorch's view of a stream: ``cuda_stream`` and ``wait_stream`` (logged)."""

    def __init__(self, double: FakePycuda, handle: int) -> None:
        self.double, self.cuda_stream = double, handle

    def wait_stream(self, other: FakeTorchStream) -> None:
        self.double.log.append(("wait", self.cuda_stream, other.cuda_stream))


class FakePycuda:
    """The double: ``launches`` (name, grid, block, stream, args) and ``log`` (launches and stream waits, in
    order); PyTorch's current stream has handle ``current_stream`` (0: the legacy default stream)."""

    def __init__(self, current_stream: int = 0) -> None:
        self.launches: list[SimpleNamespace] = []
        self.log: list[tuple] = []
        self.context_depth = 0
        self.current = FakeTorchStream(self, current_stream)
        self.next_handle = 500
        double = self

        class Error(Exception):
            pass

        class Context:
            @staticmethod
            def pop() -> None:
                if double.context_depth < 1:
                    raise Error("cuCtxPopCurrent: no context to pop")
                double.context_depth -= 1

        class PrimaryContext:
            def push(self) -> None:
                double.context_depth += 1

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            def retain_primary_context(self) -> PrimaryContext:
                return PrimaryContext()

        def stream() -> FakeDriverStream:
            double.next_handle += 1
            return FakeDriverStream(double.next_handle)

        driver = ModuleType("pycuda.driver")
        driver.init = lambda flags=0: None
        driver.Error = Error
        driver.Context = Context
        driver.Device = Device
        driver.Stream = stream
        self.driver = driver


def install(monkeypatch, kernel_modules: dict[str, dict[str, str]], current_stream: int = 0) -> FakePycuda:
    """Put the double in place (see the module docstring) for the kernels ``{name: CUDA_ARG_FORMATS}``.

    Raises:
        HostBuildError: if the host build fails.
    """
    import torch

    double = FakePycuda(current_stream)
    libs = {name: build_host_library(name, formats) for name, formats in kernel_modules.items()}
    package = ModuleType("pycuda")
    package.driver = double.driver
    package.VERSION_TEXT = "fake"
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", double.driver)
    monkeypatch.setattr(
        _build, "load_cuda_module", lambda name, index: FakeModule(double, libs[name], kernel_modules[name])
    )
    monkeypatch.setattr(_build.primary_context, "_contexts", {})
    monkeypatch.setattr(_build, "_bridges", {})
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: double.current)
    monkeypatch.setattr(
        torch.cuda, "ExternalStream", lambda handle, device=None: FakeTorchStream(double, handle)
    )
    return double
