#!/usr/bin/env bash
# Long-context timing of sdpa and flash-attention 2 on one GPU (bench/gpu_check.py), prepared
# for a machine without network whose python3 already has torch (CUDA) and transformers.
# Run from the repository root; arguments go to gpu_check.py:
#     bash bench/gpu_check.sh                       # 16K..128K, sdpa and flash_attention_2
#     bash bench/gpu_check.sh --lengths 16384,32768 --attn sdpa
#
# flash-attn comes along as a wheel in bench/wheels/, installed offline before the run. The wheel
# must match the GPU machine's python, torch and CUDA (this script prints them). PyPI ships
# flash-attn as source only, so either take the prebuilt wheel from the flash-attention GitHub
# releases, named like flash_attn-<version>+cu12torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl
# for CUDA 12, torch 2.11, python 3.12, or build one on a machine with network and that same
# torch / CUDA toolkit:
#     python3 -m pip wheel --no-deps --no-build-isolation -w bench/wheels flash-attn
set -euo pipefail

budget_s=480  # the whole check, wheel install included, stays under 8 minutes
start=$SECONDS

shopt -s nullglob
wheels=(bench/wheels/*.whl)
shopt -u nullglob
if ((${#wheels[@]})); then
    python3 -m pip install --no-index --no-deps bench/wheels/*.whl
fi

# ropebench runs from this checkout, not from an installed copy.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import platform, torch, transformers
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}")'

left=$((budget_s - (SECONDS - start)))
# gpu_check.py skips the cells it cannot start in time; timeout is the hard stop behind that.
timeout "$left" python3 bench/gpu_check.py --budget-s $((left - 60)) "$@"
