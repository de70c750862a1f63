#!/usr/bin/env bash
# One prepared GPU check for the kernels (issues 9 and 20), for a bare CUDA machine: Python 3 whose python3 is
# a virtual environment with PyTorch (CUDA) and numpy, nvcc, but no pycuda, no pytest and no network. Run from
# the repository root:
#
#     bash bench/gpu_check.sh             # results in $OUT/gpu_check.txt, or bench-out/gpu_check.txt
#     bash bench/gpu_check.sh --dry-run   # on any machine: every step up to the first that needs a GPU
#
# It installs what the image lacks from a folder of wheels and source archives carried beside the code
# (default .whl/, override with WHEELS=DIR), prepared on a machine with network for the device's Python
# (here 3.12, Linux x86_64):
#
#     pip download --no-deps --no-binary pycuda pycuda -d .whl
#     pip download --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
#         --implementation cp -d .whl pytools siphash24 platformdirs typing_extensions mako markupsafe \
#         pytest iniconfig pluggy packaging setuptools wheel
#
# Steps: the machine; what is missing (one line per missing piece: Python and its headers, torch, numpy,
# nvcc and the real CUDA root, g++, the carried packages, the pycuda source archive, libcuda, the GPU); the
# carried packages with `pip install --target bench-out/pydeps` on PYTHONPATH (no venv: the image's python3
# is one already); the kernels through nvcc for this GPU's architecture and the CPU-side checks of the CUDA
# path (the __global__ wrappers on the host shim behind a pycuda double); pycuda built against the real CUDA
# root; then, on the GPU, the gpu-marked kernel tests (CUDA against the reference and the CPU build, a side
# stream, timings) and both kernels timed at 256 and 512 (python -m bench.kernels --device cuda). Everything
# goes to one results file; the whole run is meant to take under 8 minutes. A dry run stops before the first
# step that needs a GPU and skips the pycuda build (minutes) unless its archive is carried.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/gpu_common.sh
source bench/gpu_common.sh
parse_common_args "$@"
mkdir -p "$RESULTS_DIR" bench-out
RESULTS="$RESULTS_DIR/gpu_check.txt"
exec > >(tee "$RESULTS") 2>&1
export DANCE_LIVE_KERNEL_CACHE="${DANCE_LIVE_KERNEL_CACHE:-$PWD/bench-out/kernel-cache}"
DEPS=bench-out/pydeps
dry && echo "DRY RUN: every step up to the first that needs a GPU"

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
nvcc --version 2>/dev/null | tail -2 || echo "nvcc: not found"
"$PYTHON" -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)" 2>&1 | tail -1
git log -1 --format='commit %h %s' 2>/dev/null || true

step "what this check needs"
check_python
command -v g++ >/dev/null || missing "g++: the C++ compiler (the kernels' CPU build and the host shim)"
CUDA_ROOT=""
if ! command -v nvcc >/dev/null; then
    missing "nvcc: the CUDA toolkit's compiler is not on PATH (or set CUDA_ROOT)"
elif ! CUDA_ROOT="$(find_cuda_root)"; then
    missing "CUDA root: no include/cuda.h beside the nvcc that runs (set CUDA_ROOT to the toolkit's folder)"
else
    echo "CUDA root: $CUDA_ROOT (nvcc on PATH: $(command -v nvcc))"
fi
need_packages pytest=pytest iniconfig=iniconfig pluggy=pluggy packaging=packaging pytools=pytools \
    siphash24=siphash24 platformdirs=platformdirs typing_extensions=typing_extensions mako=mako \
    markupsafe=markupsafe setuptools=setuptools wheel=wheel
PYCUDA_SRC=""
if ! "$PYTHON" -c "import pycuda" 2>/dev/null; then
    PYCUDA_SRC="$(ls "$WHEELS"/pycuda-*.tar.gz 2>/dev/null | head -1)"
    [ -n "$PYCUDA_SRC" ] || missing "pycuda source archive: no $WHEELS/pycuda-*.tar.gz (pip download --no-deps --no-binary pycuda pycuda -d $WHEELS)"
fi
LIBCUDA_DIR=""
if [ -n "$CUDA_ROOT" ] && ! "$PYTHON" -c "import pycuda" 2>/dev/null; then
    LIBCUDA_DIR="$(find_libcuda_dir "$CUDA_ROOT")" || missing "libcuda.so: neither the toolkit's stub nor the NVIDIA driver's library (needed to link pycuda)"
fi
check_gpu
report_missing

step "carried packages: pip install --target $DEPS, on PYTHONPATH"
install_into "$DEPS" "${TO_INSTALL[@]}"

step "kernels through nvcc (no GPU needed)"
ARCH="$("$PYTHON" -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'sm_{m}{n}')" 2>/dev/null || echo sm_90)"
echo "architecture: $ARCH"
for source in kernels/*.cu; do
    if nvcc -cubin -O3 --fmad=false -std=c++17 -arch="$ARCH" -I kernels "$source" -o "bench-out/$(basename "$source" .cu).cubin"; then
        echo "$source -> bench-out/$(basename "$source" .cu).cubin ($ARCH) ok"
    else
        echo "$source: nvcc failed"
    fi
done

step "CPU-side checks of the CUDA path (host shim + pycuda double, formats against the PTX)"
timeout 300 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" --noconftest \
    tests/kernels/test_cuda_wrappers.py tests/kernels/test_build.py 2>&1 | grep -v "PytestConfigWarning" | tail -5
echo "pytest exit: ${PIPESTATUS[0]}"

step "build pycuda from its source archive against $CUDA_ROOT"
if "$PYTHON" -c "import pycuda" 2>/dev/null; then
    echo "pycuda is importable already"
elif [ -z "$PYCUDA_SRC" ]; then
    echo "DRY RUN: no pycuda archive here; on the device: configure.py --cuda-root=$CUDA_ROOT --cudadrv-lib-dir=<libcuda folder>, pip install --no-build-isolation --no-deps --target $DEPS"
else
    rm -rf bench-out/pycuda-src && mkdir -p bench-out/pycuda-src && tar xzf "$PYCUDA_SRC" -C bench-out/pycuda-src
    (
        cd bench-out/pycuda-src/pycuda-* &&
        "$PYTHON" configure.py --cuda-root="$CUDA_ROOT" ${LIBCUDA_DIR:+--cudadrv-lib-dir="$LIBCUDA_DIR"} >/dev/null &&
        "$PYTHON" -m pip install -q --no-index --no-build-isolation --no-deps --target "$OLDPWD/$DEPS" .
    ) || { echo "pycuda build failed (see above)"; exit 1; }
    echo "pycuda built into $DEPS"
fi

if dry; then
    step "DRY RUN: stopping before the first step that needs a GPU (pycuda's driver init, then the gpu-marked tests)"
    exit 0
fi

step "pycuda on the device"
"$PYTHON" -c "import pycuda, pycuda.driver as d; d.init(); print('pycuda', pycuda.VERSION_TEXT, 'CUDA driver', d.get_driver_version())" \
    || { echo "pycuda does not initialize the driver"; exit 1; }

step "kernel tests marked gpu (plus the CPU parity they compare against)"
timeout 300 "$PYTHON" -m pytest -q -rA -s --noconftest -p no:cacheprovider tests/kernels -m gpu \
    -o addopts="" 2>&1 | grep -v "PytestConfigWarning" | tail -40
echo "pytest exit: ${PIPESTATUS[0]}"

step "kernel timings on the GPU (CUDA events not used: wall clock with a synchronize per call)"
timeout 240 "$PYTHON" -m bench.kernels --device cuda --sizes 256 512 --runs 200 --ref-runs 50 \
    --json "$RESULTS_DIR/gpu_kernels.json"

step "done; results in $RESULTS"
