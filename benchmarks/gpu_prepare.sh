#!/usr/bin/env bash
# Prepares here (a machine with PyPI and ../shared) what benchmarks/gpu_check.sh needs on a GPU machine that
# has no network: its python3 already holds torch, transformers, numpy, httpx, onnxruntime and pytest, so
# only the rest of maskserve's needs travel, as wheels for that machine (.whl/, pinned to this virtualenv's
# versions), with the demo model in float16 (half its bytes: the check compares dtypes on the same weights)
# and the tokenizer the random bert-base is built with (.gpu/). Both folders are git-ignored; carry them:
#   bash benchmarks/gpu_prepare.sh      then, there:   bash benchmarks/gpu_check.sh   (carry .whl and .gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
shared="${SHARED_MODELS:-../shared/models}"
rm -rf .whl .gpu
mkdir -p .whl .gpu
# Not in that machine's image (or older there than the generated gRPC stubs need).
needed='annotated.types|fastapi|fastapi.offline|grpcio|grpcio.health.checking|orjson|protobuf|pydantic|pydantic.core'
needed+='|pydantic.settings|pytest.asyncio|python.dotenv|starlette|typing.inspection|typing.extensions|uvicorn'
mapfile -t pins < <("$py" -m pip freeze | grep -i -E "^(${needed})==")
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
  --implementation cp "${platforms[@]}" -d .whl "${pins[@]}"
"$py" - "$shared" <<'PY'
import sys
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

shared = Path(sys.argv[1])
demo = AutoModelForMaskedLM.from_pretrained(shared / "minilm-l6-mlm-demo", dtype=torch.float16)
demo.save_pretrained(".gpu/minilm-l6-mlm-demo")
AutoTokenizer.from_pretrained(shared / "minilm-l6-mlm-demo").save_pretrained(".gpu/minilm-l6-mlm-demo")
AutoTokenizer.from_pretrained(shared / "tiny-random-bert").save_pretrained(".gpu/tiny-random-bert")
PY
du -sh .whl .gpu
echo "ready: run 'bash benchmarks/gpu_check.sh' on the GPU machine with .whl and .gpu carried"
