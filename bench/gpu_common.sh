# Shared by bench/gpu_check.sh and bench/gpu_path_check.sh (sourced, not run): the results file, the dry-run
# switch, the checks of what the machine must have (one line per missing piece), the CUDA root, and
# installing carried packages with `pip install --target` + PYTHONPATH.
#
# The GPU machine's python3 is itself a virtual environment (with torch): a venv made inside it does not see
# its packages, so nothing here makes one. Packages the image lacks go into one folder (DEPS) that is put
# first on PYTHONPATH; packages the image has are not installed again.
#
# Variables a caller may set: PYTHON (default python3), WHEELS (the carried wheels and source archives,
# default .whl), OUT (where the results go, default bench-out), DRY_RUN=1 (same as --dry-run).

PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"
RESULTS_DIR="${OUT:-bench-out}"
DRY_RUN="${DRY_RUN:-0}"
MISSING=()

parse_common_args() {
    for arg in "$@"; do
        case "$arg" in
            --dry-run) DRY_RUN=1 ;;
            -h|--help) sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//;/^set /d'; exit 0 ;;
            *) echo "unknown argument: $arg (expected --dry-run)"; exit 2 ;;
        esac
    done
}

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
missing() { MISSING+=("$*"); }
dry() { [ "$DRY_RUN" = 1 ]; }

# Print one line per missing piece; stop unless this is a dry run.
report_missing() {
    if [ "${#MISSING[@]}" -eq 0 ]; then
        echo "nothing missing"
        return 0
    fi
    for piece in "${MISSING[@]}"; do echo "MISSING: $piece"; done
    if dry; then
        echo "DRY RUN: ${#MISSING[@]} missing piece(s) listed above; on the device the check would stop here"
        MISSING=()
        return 0
    fi
    echo "stopping: ${#MISSING[@]} missing piece(s) listed above"
    exit 1
}

# The CUDA toolkit's root. $CUDA_ROOT, $CUDA_HOME or $CUDA_PATH when they hold bin/nvcc; else the folder nvcc
# itself reports (`nvcc --dryrun` prints `_HERE_`, its real bin folder, also when the nvcc on PATH is a
# wrapper script such as `exec /usr/local/cuda-13.0/bin/nvcc "$@"`); else nvcc's resolved path.
find_cuda_root() {
    local candidate here nvcc_path
    for candidate in "${CUDA_ROOT:-}" "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
        if [ -n "$candidate" ] && [ -x "$candidate/bin/nvcc" ] && [ -f "$candidate/include/cuda.h" ]; then
            echo "$candidate"
            return 0
        fi
    done
    nvcc_path="$(command -v nvcc)" || return 1
    here="$(nvcc --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)"
    [ -n "$here" ] || here="$(dirname "$(readlink -f "$nvcc_path")")"
    candidate="$(cd "$here/.." && pwd)"
    [ -f "$candidate/include/cuda.h" ] || return 1
    echo "$candidate"
}

# The folder holding libcuda.so for linking pycuda: the toolkit's stub or the driver's library (where only
# libcuda.so.1 exists, a folder with a libcuda.so link to it, under bench-out).
find_libcuda_dir() {
    local root="$1" dir lib
    for dir in "$root/lib64/stubs" "$root/targets/x86_64-linux/lib/stubs" "$root/lib64"; do
        [ -e "$dir/libcuda.so" ] && { echo "$dir"; return 0; }
    done
    lib="$(ldconfig -p 2>/dev/null | awk '/libcuda\.so(\.1)? /{print $NF; exit}')"
    [ -n "$lib" ] || return 1
    mkdir -p bench-out/libcuda && ln -sf "$lib" bench-out/libcuda/libcuda.so
    echo "$PWD/bench-out/libcuda"
}

# check_python: the interpreter, its headers (pycuda's build compiles against Python.h) and torch.
check_python() {
    if ! "$PYTHON" -c "import sys" 2>/dev/null; then
        missing "Python: '$PYTHON' does not run (set PYTHON=...)"
        return
    fi
    local include
    include="$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['include'])")"
    [ -f "$include/Python.h" ] || missing "Python headers: $include/Python.h (install python3-dev for $("$PYTHON" -V 2>&1))"
    "$PYTHON" -c "import torch" 2>/dev/null || missing "PyTorch: 'import torch' fails in $PYTHON"
    "$PYTHON" -c "import numpy" 2>/dev/null || missing "numpy: 'import numpy' fails in $PYTHON"
}

# check_gpu: a CUDA device that PyTorch sees (the one piece a dry run is expected to lack).
check_gpu() {
    command -v nvidia-smi >/dev/null || missing "GPU: nvidia-smi not found (no NVIDIA driver)"
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
        || missing "GPU: torch.cuda.is_available() is False"
}

# need_packages MODULE=DISTRIBUTION ...: the distributions of the modules the interpreter cannot import, in
# TO_INSTALL; each must be carried in $WHEELS (a wheel or source archive), else it is a missing piece
# (NOT_CARRIED counts them).
need_packages() {
    TO_INSTALL=()
    NOT_CARRIED=0
    local pair module dist pattern
    for pair in "$@"; do
        module="${pair%%=*}"
        dist="${pair#*=}"
        if "$PYTHON" -c "import $module" 2>/dev/null; then
            continue
        fi
        TO_INSTALL+=("$dist")
        pattern="$(echo "$dist" | tr '-' '_')"
        if ! ls "$WHEELS" 2>/dev/null | grep -qiE "^(${dist}|${pattern})-[0-9]"; then
            NOT_CARRIED=$((NOT_CARRIED + 1))
            missing "package $dist (import $module fails and $WHEELS/ has no $dist-*; fetch it, see the header)"
        fi
    done
}

# install_into DEPS DIST...: pip install --target DEPS from $WHEELS only (no index, no venv, no
# dependencies: need_packages listed each one), then put DEPS first on PYTHONPATH for every later step. A
# dry run without every package carried prints the command instead.
install_into() {
    local deps="$1"
    shift
    mkdir -p "$deps"
    case "$deps" in /*) ;; *) deps="$PWD/$deps" ;; esac
    export PYTHONPATH="$deps${PYTHONPATH:+:$PYTHONPATH}"
    if [ "$#" -eq 0 ]; then
        echo "every package needed is importable already"
        return 0
    fi
    local cmd=("$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" --no-deps --target "$deps" "$@")
    if dry && [ "${NOT_CARRIED:-0}" -gt 0 ]; then
        echo "DRY RUN: $NOT_CARRIED package(s) not carried here; on the device: ${cmd[*]}"
        echo "PYTHONPATH=$PYTHONPATH"
        return 0
    fi
    echo "${cmd[*]}"
    "${cmd[@]}" || { echo "installing the carried packages from $WHEELS into $deps failed"; exit 1; }
    echo "PYTHONPATH=$PYTHONPATH"
}
