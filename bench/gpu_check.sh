#!/usr/bin/env bash
# One prepared GPU check for the kernels (issue 9), for a bare CUDA machine: Python 3.12, PyTorch with CUDA,
# nvcc and numpy, but no pycuda, no pytest and no network. Run from the repository root:
#
#     bash bench/gpu_check.sh            # results in $OUT/gpu_check.txt, or bench-out/gpu_check.txt
#
# It installs what it needs from a folder of wheels and source archives carried beside the code (default
# .whl/, override with WHEELS=DIR), prepared on a machine with network (Python 3.12 packages):
#
#     pip download --no-binary :all: --no-deps pycuda -d .whl
#     pip download --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
#         --implementation cp -d .whl pytools mako platformdirs pytest setuptools wheel
#
# Then it builds pycuda against the machine's CUDA (about 1-2 minutes on 16 cores), runs the gpu-marked
# kernel tests (CUDA against the reference and the CPU build, a side stream, timings), and times both
# kernels at 256 and 512 (python -m bench.kernels --device cuda). Everything goes to one results file. The
# whole run is meant to take under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"
RESULTS_DIR="${OUT:-bench-out}"
mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/gpu_check.txt"
exec > >(tee "$RESULTS") 2>&1
export DANCE_LIVE_KERNEL_CACHE="${DANCE_LIVE_KERNEL_CACHE:-$PWD/bench-out/kernel-cache}"
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
nvcc --version | tail -2
python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'device', torch.cuda.get_device_name())"
git log -1 --format='commit %h %s' 2>/dev/null || true

step "venv with the system packages (torch, numpy) plus the carried wheels"
python3 -m venv --system-site-packages bench-out/venv && PY=bench-out/venv/bin/python || { echo "venv failed"; exit 1; }
$PY -m pip install -q --no-index --find-links "$WHEELS" pytest pytools mako platformdirs setuptools wheel \
    || { echo "installing the carried wheels from $WHEELS failed (see the header for how to fetch them)"; exit 1; }

step "build pycuda from its source archive"
if ! $PY -c "import pycuda" 2>/dev/null; then
    CUDA_ROOT="$(dirname "$(dirname "$(command -v nvcc)")")"
    export CUDA_ROOT
    SRC="$(ls "$WHEELS"/pycuda-*.tar.gz | head -1)"
    [ -n "$SRC" ] || { echo "no pycuda-*.tar.gz in $WHEELS"; exit 1; }
    rm -rf bench-out/pycuda-src && mkdir -p bench-out/pycuda-src && tar xzf "$SRC" -C bench-out/pycuda-src
    (
        cd bench-out/pycuda-src/pycuda-* &&
        ../../venv/bin/python configure.py --cuda-root="$CUDA_ROOT" >/dev/null &&
        ../../venv/bin/python setup.py -q build_ext -j "$(nproc)" >/dev/null &&
        ../../venv/bin/python -m pip install -q --no-index --no-build-isolation --no-deps .
    ) || { echo "pycuda build failed"; exit 1; }
fi
$PY -c "import pycuda, pycuda.driver as d; d.init(); print('pycuda', pycuda.VERSION_TEXT, 'CUDA driver', d.get_driver_version())"

step "kernel tests marked gpu (plus the CPU parity they compare against)"
timeout 300 $PY -m pytest -q -rA -s --noconftest -p no:cacheprovider tests/kernels -m gpu \
    -o addopts="" 2>&1 | grep -v "PytestConfigWarning" | tail -40
echo "pytest exit: ${PIPESTATUS[0]}"

step "kernel timings on the GPU (CUDA events not used: wall clock with a synchronize per call)"
timeout 240 $PY -m bench.kernels --device cuda --sizes 256 512 --runs 200 --ref-runs 50 \
    --json "$RESULTS_DIR/gpu_kernels.json"

step "done; results in $RESULTS"
