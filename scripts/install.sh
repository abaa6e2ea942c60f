#!/usr/bin/env bash
# Install maskserve into the project's virtualenv, .venv/ beside this script's folder (created when missing),
# never into whatever Python comes first on PATH. Set MASKSERVE_VENV to use another folder.
# torch comes first and pinned: asked for through a range, pip would fetch the newest build with several GB
# of CUDA packages. Set TORCH_SPEC to choose another build (for example a CUDA one).
#   scripts/install.sh         the server            -> .venv/bin/maskserve
#   scripts/install.sh --dev   plus the tests, linters and the browser the playground tests drive (Debian's
#                              chromium, installed with apt-get when run as root; elsewhere those tests skip)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MASKSERVE_VENV:-.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
extras="onnx"
if [[ "${1:-}" == "--dev" ]]; then extras="dev"; fi
"$py" -m pip install --quiet -e ".[${extras}]"
# The @huggingface/inference client for the conformance tests; without node they skip and say so.
if [[ "${1:-}" == "--dev" ]] && command -v npm >/dev/null 2>&1 && [[ -f tests/conformance/js/package-lock.json ]]; then
  npm ci --prefix tests/conformance/js --no-audit --no-fund --loglevel=error
fi
# Debian's chromium for the browser tests; Playwright drives it, never a browser of its own.
if [[ "${1:-}" == "--dev" ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
  else
    echo "note: chromium is not installed; the playground's browser tests will skip (apt-get install chromium)"
  fi
fi
echo "maskserve installed in $venv: run $venv/bin/maskserve, or 'source $venv/bin/activate' first"
