"""Build-once loader for the compiled kernels: a CPU shared library (ctypes) and a CUDA module (pycuda).

After NVlabs/stylegan3 ``torch_utils/custom_ops.py``: loaded modules are kept in a dict, each build goes to
a folder named by a hash of everything that determines the binary (the source files, the compiler's
identity and flags, for the CPU build the CPU model because of ``-march=native``, for the GPU build the
device architecture), so an edited kernel rebuilds and an unchanged one never does. A file lock guards
concurrent builds (several processes, e.g. DataLoader workers, may ask at once), the result is moved into
place atomically, and one log line says "building ... done". A build that fails raises
:class:`KernelBuildError` with the compiler's command and output; nothing falls back silently.

Cache folder: ``$DANCE_LIVE_KERNEL_CACHE`` if set, else ``~/.cache/dance-live/kernels``; each build lives
in ``<cache>/<name>-<target>-<hash>/``. Deleting the cache folder forces a rebuild (docs/troubleshooting.md).

This module imports nothing from the project (kernels are leaf ops) and imports pycuda only when a CUDA
build is asked for.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

KERNEL_DIR = Path(__file__).resolve().parent
#: The tests' host shim (``kernels/cuda_host_shim.h``): in no build, so not part of a build's hash.
HOST_SHIM_HEADER = "cuda_host_shim.h"
CACHE_ENV = "DANCE_LIVE_KERNEL_CACHE"
#: Flags of the CPU build. ``-ffp-contract=off`` keeps ``a * b + c`` two roundings, as PyTorch's reference
#: computes it, so the parity tests compare the kernel's math and not the compiler's fused multiply-adds.
CPU_FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-std=c++17", "-x", "c++")
#: Flags of the GPU build (``--fmad=false`` for the same reason as ``-ffp-contract=off``).
CUDA_FLAGS = ("-cubin", "-O3", "--fmad=false", "-std=c++17")

_loaded: dict[str, Any] = {}
_lock = threading.Lock()


class KernelBuildError(RuntimeError):
    """A compiled kernel that was asked for cannot be built or loaded; the message says why and what to do."""


def cache_root() -> Path:
    """The kernel cache folder (``$DANCE_LIVE_KERNEL_CACHE`` or ``~/.cache/dance-live/kernels``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dance-live" / "kernels"


def _compiler_identity(compiler: str) -> str:
    """``compiler --version``'s whole output (its name, version and build), part of the build hash."""
    try:
        done = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelBuildError(f"cannot run {compiler} --version: {exc}") from exc
    return done.stdout + done.stderr


def _cpu_identity() -> str:
    """The CPU model and flags: a ``-march=native`` binary is only reused on the same kind of CPU."""
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key == "model name" and not model:
                model = line.split(":", 1)[1].strip()
            elif key == "flags" and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {model} {flags}"


def _digest(parts: Sequence[bytes | str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _sources(name: str) -> list[Path]:
    """The ``.cu`` file of kernel ``name`` and every header of the kernel folder that a build includes (all
    part of the hash)."""
    main = KERNEL_DIR / f"{name}.cu"
    if not main.is_file():
        raise KernelBuildError(f"kernel source {main} is missing; reinstall the package")
    headers = [h for h in sorted(KERNEL_DIR.glob("*.h")) if h.name != HOST_SHIM_HEADER]
    return [main, *headers]


def _build_locked(folder: Path, artifact: str, label: str, compile_into: Any) -> Path:
    """Return ``folder/artifact``, building it with ``compile_into(tmp_path)`` under a file lock if absent."""
    target = folder / artifact
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # another process may be building the same folder
        try:
            if target.is_file():
                return target
            folder.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            log.info("building %s in %s ...", label, folder)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                tmp_target = Path(tmp) / artifact
                compile_into(tmp_target)
                os.replace(tmp_target, target)  # atomic: a reader sees the whole file or none
            log.info("building %s ... done (%.1f s)", label, time.perf_counter() - start)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return target


def _run_compiler(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except OSError as exc:
        raise KernelBuildError(f"cannot run the compiler for {what} ({cmd[0]}): {exc}") from exc
    if done.returncode != 0:
        raise KernelBuildError(
            f"building {what} failed (exit {done.returncode}).\ncommand: {' '.join(cmd)}\n"
            f"compiler output:\n{done.stdout}{done.stderr}"
        )


def cxx_compiler() -> str | None:
    """The C++ compiler for the CPU build: ``$CXX`` if set, else ``g++`` or ``c++`` on PATH, else None."""
    env = os.environ.get("CXX")
    if env:
        return shutil.which(env)
    return shutil.which("g++") or shutil.which("c++")


def load_cpu_library(name: str) -> ctypes.CDLL:
    """Build (once) and load ``kernels/<name>.cu`` as a C++ shared library for the CPU.

    The ``.cu`` file compiles as C++ (``__host__``/``__device__`` are empty outside nvcc, see
    ``kernels/kernel_common.h``) and exports ``extern "C"`` host loops that the caller binds with ctypes.

    Raises:
        KernelBuildError: if no C++ compiler exists or the build or the load fails.
    """
    key = f"cpu:{name}"
    with _lock:
        if key in _loaded:
            return _loaded[key]
        cxx = cxx_compiler()
        if cxx is None:
            raise KernelBuildError(
                f"the CPU build of kernel {name!r} needs a C++ compiler and none was found "
                "(install g++ or set $CXX), or use impl='ref'"
            )
        sources = _sources(name)
        digest = _digest(
            [s.read_bytes() for s in sources] + [_compiler_identity(cxx), *CPU_FLAGS, _cpu_identity()]
        )
        folder = cache_root() / f"{name}-cpu-{digest}"

        def compile_into(out: Path) -> None:
            _run_compiler(
                [cxx, *CPU_FLAGS, "-I", str(KERNEL_DIR), str(sources[0]), "-o", str(out)],
                f"the CPU build of kernel {name!r}",
            )

        path = _build_locked(folder, f"{name}.so", f"kernel {name!r} (CPU)", compile_into)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise KernelBuildError(
                f"cannot load {path}: {exc}; delete {folder} to rebuild it (docs/troubleshooting.md)"
            ) from exc
        _loaded[key] = lib
        return lib


def load_cuda_module(name: str, device_index: int) -> Any:
    """Build (once per GPU architecture) and load ``kernels/<name>.cu`` as a pycuda module.

    Compiles with ``nvcc -cubin -arch=sm_XY`` for the device's compute capability and loads the cubin with
    ``pycuda.driver.module_from_file`` into PyTorch's primary context of that device (the context that
    ``pycuda.autoprimaryctx`` retains), which must be current on the calling thread (see
    :func:`primary_context`).

    Raises:
        KernelBuildError: if pycuda or nvcc is missing, or the build or the load fails.
    """
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    arch = f"sm_{major}{minor}"
    key = f"cuda:{name}:{device_index}"
    with _lock:
        if key in _loaded:
            return _loaded[key]
        drv = _pycuda_driver()
        nvcc = shutil.which("nvcc") or (
            str(Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc") if "CUDA_HOME" in os.environ else None
        )
        if nvcc is None or not Path(nvcc).is_file():
            raise KernelBuildError(
                f"the CUDA build of kernel {name!r} needs nvcc (not on PATH and no $CUDA_HOME/bin/nvcc)"
            )
        sources = _sources(name)
        digest = _digest([s.read_bytes() for s in sources] + [_compiler_identity(nvcc), *CUDA_FLAGS, arch])
        folder = cache_root() / f"{name}-{arch}-{digest}"

        def compile_into(out: Path) -> None:
            _run_compiler(
                [nvcc, *CUDA_FLAGS, f"-arch={arch}", "-I", str(KERNEL_DIR), str(sources[0]), "-o", str(out)],
                f"the CUDA build of kernel {name!r} for {arch}",
            )

        path = _build_locked(folder, f"{name}.cubin", f"kernel {name!r} (CUDA {arch})", compile_into)
        with primary_context(device_index):
            try:
                module = drv.module_from_file(str(path))
            except drv.Error as exc:
                raise KernelBuildError(
                    f"cannot load {path}: {exc}; delete {folder} to rebuild it (docs/troubleshooting.md)"
                ) from exc
        _loaded[key] = module
        return module


def _pycuda_driver() -> Any:
    try:
        import pycuda.driver as drv
    except ImportError as exc:
        raise KernelBuildError(
            "the CUDA kernels need pycuda (pip install pycuda, built against your CUDA toolkit; "
            "see bench/gpu_check.sh), or use impl='ref'"
        ) from exc
    drv.init()
    return drv


class primary_context:  # noqa: N801 (used as a context manager, like torch.cuda.device)
    """Make PyTorch's primary CUDA context of ``device_index`` current on this thread for pycuda calls.

    PyTorch's runtime API works in each device's primary context; pycuda retains the same one
    (``Device.retain_primary_context``, as ``pycuda.autoprimaryctx`` does for one device), pushes it for the
    duration of the block and pops it after, so allocations and modules are shared with PyTorch.
    """

    _contexts: dict[int, Any] = {}

    def __init__(self, device_index: int) -> None:
        self.device_index = device_index

    def __enter__(self) -> Any:
        drv = _pycuda_driver()
        ctx = self._contexts.get(self.device_index)
        if ctx is None:
            ctx = drv.Device(self.device_index).retain_primary_context()
            self._contexts[self.device_index] = ctx
        ctx.push()
        return ctx

    def __exit__(self, *exc: object) -> None:
        _pycuda_driver().Context.pop()


class _StreamBridge:
    """A pycuda stream and the same stream seen by PyTorch (``torch.cuda.ExternalStream``)."""

    def __init__(self, device: Any) -> None:
        import torch

        drv = _pycuda_driver()
        self.pycuda_stream = drv.Stream()
        self.torch_stream = torch.cuda.ExternalStream(self.pycuda_stream.handle, device=device)


_bridges: dict[int, _StreamBridge] = {}


def launch_on_current_stream(
    function: Any, grid: tuple[int, int, int], block: tuple[int, int, int], args: Sequence[Any], device: Any
) -> None:
    """Launch a prepared pycuda ``function`` ordered on PyTorch's current stream of ``device``.

    On PyTorch's default stream (the legacy NULL stream, handle 0) the kernel is launched on that stream
    itself. pycuda cannot launch on a foreign stream handle, so on any other current stream the kernel runs
    on a pycuda stream that first waits for the current stream and that the current stream then waits for
    (``wait_stream`` both ways, through ``torch.cuda.ExternalStream``): the launch is ordered exactly as if
    it had been issued on the current stream, and the host never blocks. Outputs must be allocated by
    PyTorch on the current stream before the call.

    Args:
        function: a pycuda ``Function`` on which ``prepare`` was called with the argument format.
        grid, block: launch dimensions.
        args: the kernel arguments, matching the prepared format.
        device: the ``torch.device`` of the tensors.
    """
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    current = torch.cuda.current_stream(index)
    with primary_context(index):
        if current.cuda_stream == 0:
            function.prepared_async_call(grid, block, None, *args)
            return
        bridge = _bridges.get(index)
        if bridge is None:
            bridge = _bridges[index] = _StreamBridge(torch.device("cuda", index))
        bridge.torch_stream.wait_stream(current)
        function.prepared_async_call(grid, block, bridge.pycuda_stream, *args)
        current.wait_stream(bridge.torch_stream)


_T = TypeVar("_T")


class TableCache:
    """Results computed once per set of table tensors (a skeleton's limb or part tables), not once per call.

    Checking a table's values (``int(t.min())``) or compacting it with a boolean mask waits for the GPU when
    the table lives there: done on every frame, that is a host synchronization per frame. A caller such as
    ``realtime/pose/render.py`` makes its tables once per device and passes the same tensors every call; the
    result computed for them is kept while those very tensor objects live and are not modified in place
    (the key is their identities, their in-place versions ``Tensor._version``, and ``extra``).
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[tuple[Any, ...], tuple[int, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(self, tables: Sequence[Any], extra: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()`` for these table tensors and ``extra``, computed on first use (exceptions are not
        kept: a failing check raises again on the next call)."""
        key = (tuple(id(t) for t in tables), extra)
        versions = tuple(int(t._version) for t in tables)
        with self._lock:
            entry = self._entries.get(key)
        if (
            entry is not None
            and entry[1] == versions
            and all(r() is t for r, t in zip(entry[0], tables, strict=True))
        ):
            return entry[2]
        result = compute()

        def forget(_ref: Any, key: Hashable = key) -> None:
            with self._lock:
                self._entries.pop(key, None)

        refs = tuple(weakref.ref(t, forget) for t in tables)
        with self._lock:
            self._entries[key] = (refs, versions, result)
        return result


IMPLS = ("auto", "ref", "cpu", "cuda")
_logged_choices: set[tuple[str, str, str]] = set()


def cuda_available_reason() -> str | None:
    """None if the CUDA build can be attempted (pycuda importable, nvcc found), else the reason it cannot."""
    try:
        import pycuda  # noqa: F401
    except ImportError:
        return "pycuda is not installed"
    if shutil.which("nvcc") is None and not (
        "CUDA_HOME" in os.environ and (Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc").is_file()
    ):
        return "nvcc is not on PATH"
    return None


def choose_impl(op: str, impl: str, device: Any) -> str:
    """Resolve ``impl`` ("auto", "ref", "cpu", "cuda") for tensors on ``device`` to "ref", "cpu" or "cuda".

    "auto" picks the CUDA kernel for CUDA tensors when pycuda and nvcc exist, the CPU build for CPU tensors
    when a C++ compiler exists, else the reference, and logs once per op and device type which one runs.
    An explicit "cpu" or "cuda" is returned as is (loading it raises with the reason if it cannot load);
    asking for a build that does not match the tensors' device raises.

    Raises:
        ValueError: on an unknown ``impl`` or an implementation for the other device type.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    kind = device.type
    if impl == "cuda" and kind != "cuda":
        raise ValueError(f"{op}: impl='cuda' needs CUDA tensors, got tensors on {device}")
    if impl == "cpu" and kind != "cpu":
        raise ValueError(f"{op}: impl='cpu' needs CPU tensors, got tensors on {device}")
    if impl != "auto":
        return impl
    reason = None
    if kind == "cuda":
        reason = cuda_available_reason()
        chosen = "cuda" if reason is None else "ref"
    elif kind == "cpu":
        chosen = "cpu" if cxx_compiler() is not None else "ref"
        reason = None if chosen == "cpu" else "no C++ compiler found"
    else:
        chosen, reason = "ref", f"no compiled kernel for {kind} tensors"
    key = (op, kind, chosen)
    if key not in _logged_choices:
        _logged_choices.add(key)
        why = f" ({reason})" if reason else ""
        log.info("%s: impl='auto' uses the %s implementation for %s tensors%s", op, chosen, kind, why)
    return chosen
