#!/usr/bin/env bash
# One prepared check of the GPU path (issues 11 and 20) for a bare CUDA machine: Python 3 whose python3 is a
# virtual environment with PyTorch (CUDA), ONNX Runtime (CPU) and numpy; nvcc; no TensorRT, no mediapipe, no
# pycuda, no pytest, no network. Run from the repository root:
#
#     bash bench/gpu_path_check.sh             # results in $OUT/gpu_path_check.txt, or bench-out/...
#     bash bench/gpu_path_check.sh --dry-run   # on any machine: every step up to the first that needs a GPU
#
# It installs what the image lacks from wheels carried beside the code (default .whl/, override with
# WHEELS=DIR), prepared on a machine with network for the device's Python (here 3.12, Linux x86_64):
#
#     pip download --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
#         --implementation cp -d .whl pytest iniconfig pluggy packaging pytest-timeout onnx protobuf \
#         pyyaml omegaconf tqdm av typing_extensions
#
# Steps: the machine; what is missing (one line per missing piece: Python and its headers, torch, numpy,
# ONNX Runtime, the carried packages, the GPU); the carried packages with `pip install --target
# bench-out/pydeps-gpu` on PYTHONPATH (no venv: the image's python3 is one already); the CPU-side checks of
# the GPU path (the TensorRT and ONNX Runtime test doubles, the backends' streams, contexts and alignment);
# then, on the GPU, the gpu-marked tests of the GPU path (the CUDA PyTorch backend, the pipeline on the
# device; the TensorRT test skips without TensorRT) and the CUDA PyTorch backend bench at 256 and 512
# (generator and face ms/frame, GFLOP per frame, fraction of the measured fp16 matmul peak). Meant to take
# under 8 minutes. A dry run stops before the first step that needs a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/gpu_common.sh
source bench/gpu_common.sh
parse_common_args "$@"
mkdir -p "$RESULTS_DIR" bench-out
RESULTS="$RESULTS_DIR/gpu_path_check.txt"
exec > >(tee "$RESULTS") 2>&1
DEPS=bench-out/pydeps-gpu
dry && echo "DRY RUN: every step up to the first that needs a GPU"

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
"$PYTHON" -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)" 2>&1 | tail -1
git log -1 --format='commit %h %s' 2>/dev/null || true

step "what this check needs"
check_python
"$PYTHON" -c "import onnxruntime" 2>/dev/null || missing "ONNX Runtime: 'import onnxruntime' fails in $PYTHON"
need_packages pytest=pytest iniconfig=iniconfig pluggy=pluggy packaging=packaging pytest_timeout=pytest-timeout \
    onnx=onnx google.protobuf=protobuf yaml=pyyaml omegaconf=omegaconf tqdm=tqdm av=av \
    typing_extensions=typing_extensions
check_gpu
report_missing

step "carried packages: pip install --target $DEPS, on PYTHONPATH"
install_into "$DEPS" "${TO_INSTALL[@]}"

step "CPU-side checks of the GPU path (TensorRT and ONNX Runtime doubles, streams, contexts, alignment)"
timeout 300 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" \
    tests/realtime/model/test_tensorrt_backend.py tests/export/test_tensorrt_build.py \
    tests/realtime/model/test_backends.py tests/realtime/model/test_cuda_backend.py 2>&1 | tail -5
echo "pytest exit: ${PIPESTATUS[0]}"

step "the gpu-marked tests this check will run (collected, not run)"
timeout 120 "$PYTHON" -m pytest -q --collect-only -p no:cacheprovider -m gpu -o addopts="" \
    tests/realtime/model/test_cuda_backend.py tests/realtime/model/test_tensorrt_backend.py 2>&1 | tail -8

if dry; then
    step "DRY RUN: stopping before the first step that needs a GPU (the gpu-marked tests, then the bench)"
    exit 0
fi

step "gpu-marked tests of the GPU path"
timeout 240 "$PYTHON" -m pytest -q -rA -p no:cacheprovider -m gpu -o addopts="" \
    tests/realtime/model/test_cuda_backend.py tests/realtime/model/test_tensorrt_backend.py 2>&1 | tail -30
echo "pytest exit: ${PIPESTATUS[0]}"

step "CUDA PyTorch backend bench (CUDA-event medians)"
timeout 240 "$PYTHON" -m bench.gpu_backends --sizes 256 512 --runs 100 --json "$RESULTS_DIR/gpu_backends.json"

step "done; results in $RESULTS"
