#!/usr/bin/env bash
# Builds the CUDA-enabled `shears` binary on a machine without a GPU or a CUDA
# install: nvcc and the CUDA headers come from PyPI wheels, the CUDA
# libraries are only needed by name at link time (stubs with the right
# sonames); the real ones are found at run time on the GPU machine.
#
#   app/scripts/build-cuda.sh [COMPUTE_CAP]      # default 90 (H100/H200)
#
# Output: target/cuda/release/shears (stripped) and target/cuda/release/gpu-tests
# (the `gpu` test group of tests/gpu.rs; built with the cuda feature its tests
# are not ignored). Tool folder:
# target/cuda-toolchain.
# At run time the binary needs libcuda (the driver), libcublas, libcublasLt,
# libcurand, libnvrtc and libcudart of CUDA 13: put their folders in
# LD_LIBRARY_PATH (e.g. /usr/local/cuda-13.0/targets/x86_64-linux/lib and the
# driver's /usr/local/nvidia/lib64).
set -euo pipefail
cd "$(dirname "$0")/../.."
cap="${1:-90}"
tools="$PWD/target/cuda-toolchain"
mkdir -p "$tools"
[ -x "$tools/venv/bin/python" ] || python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" \
  "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*"
cu=$(ls -d "$tools"/venv/lib/python3*/site-packages/nvidia/cu13)
cargo fetch -q
cudarc=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | sort -V | tail -1)
[ -n "$cudarc" ] || { echo "error: cudarc sources not found after cargo fetch" >&2; exit 1; }
mkdir -p "$tools/stubs"
for spec in cuda:driver:libcuda.so.1 nvrtc:nvrtc:libnvrtc.so.13 curand:curand:libcurand.so.10 \
            cublas:cublas:libcublas.so.13 cublasLt:cublaslt:libcublasLt.so.13; do
  IFS=: read -r lib src soname <<<"$spec"
  grep -ohE '^\s+fn [A-Za-z0-9_]+\(' "$cudarc/src/$src/sys/mod.rs" \
    | sed -E 's/^\s+fn ([A-Za-z0-9_]+)\(/void \1(void){}/' | sort -u >"$tools/stubs/$lib.c"
  cc -shared -fPIC -o "$tools/stubs/lib$lib.so" -Wl,-soname,"$soname" "$tools/stubs/$lib.c"
done
ln -sf "$cu/lib/libcudart.so.13" "$tools/stubs/libcudart.so"
export PATH="$cu/bin:$PATH" CUDA_ROOT="$cu" CUDA_PATH="$cu" CUDA_HOME="$cu" \
  CUDA_COMPUTE_CAP="$cap" LIBRARY_PATH="$tools/stubs"
CARGO_TARGET_DIR=target/cuda cargo build --release -p shears --features cuda --bins --benches
strip target/cuda/release/shears
tests=$(CARGO_TARGET_DIR=target/cuda cargo test --release --no-run -p shears-tests --features cuda \
  --test gpu --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$tests" ] || { echo "error: building the gpu tests failed" >&2; exit 1; }
cp "$tests" target/cuda/release/gpu-tests
strip target/cuda/release/gpu-tests
ls -l target/cuda/release/shears target/cuda/release/gpu-tests
