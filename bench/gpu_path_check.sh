#!/usr/bin/env bash
# One prepared check of the GPU path (issue 11) for a bare CUDA machine: Python 3.12, PyTorch with CUDA, CuPy,
# nvcc, ONNX Runtime (CPU), numpy 2; no TensorRT, no mediapipe, no pycuda, no pytest, no network. Run from the
# repository root:
#
#     bash bench/gpu_path_check.sh        # results in $OUT/gpu_path_check.txt, or bench-out/gpu_path_check.txt
#
# It installs what it needs from wheels carried beside the code (default .whl/, override with WHEELS=DIR),
# prepared on a machine with network (Python 3.12, Linux x86_64):
#
#     pip download --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
#         --implementation cp -d .whl pytest pytest-timeout onnx pyyaml omegaconf tqdm av
#
# Then it runs the gpu-marked tests of the GPU path (the CUDA PyTorch backend, the pipeline on the device; the
# TensorRT test skips without TensorRT) and the CUDA PyTorch backend bench at 256 and 512 (generator and face
# ms/frame, GFLOP per frame, fraction of the measured fp16 matmul peak). Meant to take under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"
RESULTS_DIR="${OUT:-bench-out}"
mkdir -p "$RESULTS_DIR" bench-out
RESULTS="$RESULTS_DIR/gpu_path_check.txt"
exec > >(tee "$RESULTS") 2>&1
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'device', torch.cuda.get_device_name())"
git log -1 --format='commit %h %s' 2>/dev/null || true

step "venv with the system packages plus the carried wheels"
python3 -m venv --system-site-packages bench-out/venv-gpu && PY=bench-out/venv-gpu/bin/python || { echo "venv failed"; exit 1; }
$PY -m pip install -q --no-index --find-links "$WHEELS" pytest pytest-timeout onnx pyyaml omegaconf tqdm av \
    || { echo "installing the carried wheels from $WHEELS failed (see the header for how to fetch them)"; exit 1; }

step "gpu-marked tests of the GPU path"
timeout 240 $PY -m pytest -q -rA -p no:cacheprovider -m gpu -o addopts="" \
    tests/realtime/model/test_cuda_backend.py tests/realtime/model/test_tensorrt_backend.py 2>&1 | tail -30
echo "pytest exit: ${PIPESTATUS[0]}"

step "CUDA PyTorch backend bench (CUDA-event medians)"
timeout 240 $PY -m bench.gpu_backends --sizes 256 512 --runs 100 --json "$RESULTS_DIR/gpu_backends.json"

step "done; results in $RESULTS"
