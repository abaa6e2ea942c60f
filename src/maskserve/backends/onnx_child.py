"""Build an ONNX cache entry in a child process, so the memory the build takes is returned when it exits.

Exporting a bert-base and running ONNX Runtime's transformer optimizer on it peaks at about 3.5 GB, and a
process that did it keeps most of that (2.9 GB after the build, against 0.9 GB for a server that found the
graph cached): allocators do not give it back. Built in a child, the server that serves the graph holds only
the session. The child writes into the scratch directory it is given; the parent publishes it.

    python -m maskserve.backends.onnx_child fp32 MODEL_DIR SCRATCH THREADS TRUST_REMOTE_CODE
    python -m maskserve.backends.onnx_child int8 MODEL_DIR SCRATCH SOURCE REDUCE RECIPE_JSON [CALIBRATION]
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from maskserve.backends.onnx_quantize import Int8Recipe

logger = logging.getLogger(__name__)

# The line a failing child ends its stderr with: the reason, for the parent's ValueError.
_FAILED = "maskserve-onnx-build-failed: "


def run_child(args: list[str]) -> None:
    """Run one build in a child Python; its log lines are relayed, its failure is a ValueError."""
    done = subprocess.run(
        [sys.executable, "-m", "maskserve.backends.onnx_child", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(_FAILED):
            logger.debug("onnx build: %s", line)
    if done.returncode != 0:
        reasons = [line[len(_FAILED) :] for line in lines if line.startswith(_FAILED)]
        reason = reasons[-1] if reasons else (lines[-1] if lines else f"exit status {done.returncode}")
        raise ValueError(reason)


def recipe_json(recipe: Int8Recipe) -> str:
    return recipe.key()


def _recipe(text: str) -> Int8Recipe:
    fields: dict[str, Any] = json.loads(text)
    fields["keep_float"] = tuple(fields.get("keep_float", ()))
    return Int8Recipe(**fields)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    kind, model_dir, scratch = argv[0], Path(argv[1]), Path(argv[2])
    try:
        if kind == "fp32":
            import onnxruntime

            from maskserve.backends.onnx_export import build_fp32

            build_fp32(
                onnxruntime, model_dir, scratch, threads=int(argv[3]), trust_remote_code=argv[4] == "1"
            )
        elif kind == "int8":
            from maskserve.backends.onnx_quantize import build_int8

            calibration = Path(argv[6]) if len(argv) > 6 and argv[6] else None
            build_int8(
                Path(argv[3]),
                scratch,
                reduce=argv[4] == "1",
                recipe=_recipe(argv[5]),
                model_dir=model_dir,
                calibration=calibration,
            )
        else:
            raise ValueError(f"unknown build {kind!r}")
    except Exception as exc:
        print(f"{_FAILED}{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
