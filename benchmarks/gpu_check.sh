#!/usr/bin/env bash
# The GPU checks in one go (<= 8 minutes on one GPU): the gpu-marked tests, both STFT backends' throughput,
# stage-2 steps/s under 16-mixed with the paper-sized networks, and peak GPU memory. Without CUDA it says so and
# exits 0. Run from the repository root after `make install`:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here; nothing measured"
    exit 0
fi
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "== gpu-marked tests"
timeout 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider || status=1
echo "== STFT throughput and paper-sized stage-2 steps/s"
timeout 240 "$PY" benchmarks/gpu_stft_and_steps.py --steps 20 || status=1
exit $status
