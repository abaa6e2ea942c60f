#!/usr/bin/env bash
# Install maskserve. torch comes first and pinned: asked for through a range, pip would fetch the newest
# build with several GB of CUDA packages. Set TORCH_SPEC to choose another build (for example a CUDA one).
#   scripts/install.sh         the server
#   scripts/install.sh --dev   the server plus everything the tests and linters need
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
extras="onnx"
if [[ "${1:-}" == "--dev" ]]; then extras="dev"; fi
python -m pip install --quiet -e ".[${extras}]"
# The @huggingface/inference client for the conformance tests; without node they skip and say so.
if [[ "${1:-}" == "--dev" ]] && command -v npm >/dev/null 2>&1 && [[ -f tests/conformance/js/package-lock.json ]]; then
  npm ci --prefix tests/conformance/js --no-audit --no-fund --loglevel=error
fi
