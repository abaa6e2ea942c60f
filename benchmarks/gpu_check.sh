#!/usr/bin/env bash
# The GPU path, checked in one go on a machine with CUDA (about 5 minutes on one modern GPU):
#   1. with .whl/ present (benchmarks/gpu_prepare.sh, for a machine without network whose python3 holds torch):
#      no registry at all, the carried wheels into /tmp/site and maskserve from src/; else install maskserve
#      into .venv with a CUDA build of torch (TORCH_SPEC, default the CUDA wheel pip picks),
#   2. run the CUDA-marked tests,
#   3. fp16 / bf16 against float32 on the demo model (top-1 agreement, the pipeline's parity within tolerance),
#   4. one throughput row for a bert-base at 1 and 64 clients with the default flags.
# Run from the repository root, with ../shared/models beside it (or .gpu/ from gpu_prepare.sh):
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  py=python3
else
  TORCH_SPEC="${TORCH_SPEC:-torch}" ./scripts/install.sh --dev > build-gpu-install.log 2>&1 || {
    tail -30 build-gpu-install.log
    exit 1
  }
  py=.venv/bin/python
fi
models=../shared/models
[ -d "$models/minilm-l6-mlm-demo" ] || models=.gpu
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0), 'transformers', transformers.__version__)"

echo "== CUDA-marked tests"
# Only the module that holds them: the rest of the suite imports peers (kserve, tritonclient, ...) that a
# machine without network does not have.
"$py" -m pytest -q -p no:cacheprovider -m gpu tests/backends/test_torch_backend.py

echo "== half precision against float32"
demo="${DEMO_MODEL:-$models/minilm-l6-mlm-demo}"
"$py" benchmarks/gpu_check.py "$demo" --sentences 400

# On a GPU the defaults (--backend auto, --device auto, --dtype auto) are torch, CUDA, float16: the "torch"
# config passes only --backend torch, which is what auto chooses there.
echo "== throughput, bert-base-sized, default flags (auto: torch on the GPU, float16)"
"$py" benchmarks/build_random_model.py --config bert-base-uncased \
  --tokenizer "$models/tiny-random-bert" --out build/bench-bert-base
"$py" benchmarks/run_all.py --model build/bench-bert-base --configs torch --clients 1,64 \
  --duration 10 --warmup 3 --no-baseline --out build/gpu-results.json
