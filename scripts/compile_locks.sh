#!/usr/bin/env bash
# Regenerate every hash-pinned lock from its input file, for x86_64 Linux and Python 3.11 (needs PyPI):
#   requirements.in          -> requirements.lock      (the host .venv and the CUDA image)
#                            -> requirements-cpu.lock  (the CPU image: the same pins without CPU_OMIT below)
#   requirements-melotts.in  -> requirements-melotts.lock (MeloTTS's own venv)
#
#   scripts/compile_locks.sh            keep today's pins where requirements.in still allows them (uv's preferences)
#   scripts/compile_locks.sh --upgrade  resolve everything anew
#
# The CPU lock. PyPI has no CPU build of torch 2.6.0 for x86_64 (its only Linux x86_64 wheel is the CUDA 12.4 one;
# pytorch's own index, which has `+cpu` wheels, may be unreachable where the image is built), so both locks pin the
# same torch wheel. What the CPU image leaves out are the packages that wheel never loads on a CPU: measured by
# installing the lock without each one and importing torch and torchaudio, running a matmul, an SVD and an FFT.
# libtorch_cuda.so (which libtorch.so needs) links cudart, cuBLAS(Lt), cuFFT, cuRAND, cuSPARSE (with nvJitLink),
# cuSPARSELt, cuDNN and NCCL, and libtorch_cpu.so links CUPTI: without any of them `import torch` fails. triton
# (torch.compile's GPU code generator), cuSOLVER (loaded lazily by libtorch_cuda_linalg.so), NVRTC (loaded on demand)
# and NVTX are not needed: 1.0 GB less. tests/test_locks.py checks that both locks pin the same version and hashes of
# every other package.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CPU_OMIT=(triton nvidia-cusolver-cu12 nvidia-cuda-nvrtc-cu12 nvidia-nvtx-cu12)
upgrade=()
case "${1:-}" in
  "") ;;
  --upgrade) upgrade=(--upgrade) ;;
  *) echo "compile_locks: unknown option $1 (usage: scripts/compile_locks.sh [--upgrade])" >&2; exit 2 ;;
esac
uv="$root/.venv/bin/uv"
[ -x "$uv" ] || uv="$(command -v uv || true)"
[ -n "$uv" ] || { echo "compile_locks: uv not found; run scripts/bootstrap.sh first" >&2; exit 1; }
compile() {  # INPUT OUTPUT [EXTRA...]
  local input="$1" output="$2"; shift 2
  echo "[compile-locks] $input -> $output" >&2
  "$uv" pip compile "$input" --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes \
    --quiet --output-file "$output" "$@"
}
compile requirements.in requirements.lock "${upgrade[@]}"
# The CPU lock starts from the lock just written (uv keeps an output file's pins as preferences): the same pins.
cp requirements.lock requirements-cpu.lock
omit=()
for package in "${CPU_OMIT[@]}"; do omit+=(--no-emit-package "$package"); done
compile requirements.in requirements-cpu.lock "${omit[@]}"
compile requirements-melotts.in requirements-melotts.lock "${upgrade[@]}"
