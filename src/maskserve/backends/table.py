"""The backends, one row each: the name --backend takes, where its class is (imported only when chosen),
what it needs installed, where it runs and what V2 metadata calls it; and the rule ``--backend auto``
follows. Adding an engine is one module with a class that has ``load(path, options)``, and one row here.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from maskserve.backends.base import Backend, BackendOptions
from maskserve.backends.device import resolve_device


class Loadable(Protocol):
    @classmethod
    def load(cls, path: Path, options: BackendOptions | None = None, **changes: Any) -> Backend: ...


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str
    cls: str
    # The Python packages it imports; without them it is not available.
    requires: tuple[str, ...]
    devices: tuple[str, ...]
    # The V2 model metadata ``platform`` (Triton's names where there is one).
    platform: str
    # What `pip install` gives it, for the message when it is missing.
    install: str

    def available(self) -> bool:
        return all(importlib.util.find_spec(package) is not None for package in self.requires)

    def load_class(self) -> Loadable:
        if not self.available():
            raise ValueError(
                f"--backend {self.name} needs {', '.join(self.requires)}: pip install {self.install!r}"
            )
        cls: Loadable = getattr(importlib.import_module(self.module), self.cls)
        return cls


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "torch",
            "maskserve.backends.torch_backend",
            "TorchBackend",
            ("torch", "transformers"),
            ("cpu", "cuda"),
            "pytorch_transformers",
            "maskserve",
        ),
        BackendSpec(
            "onnx",
            "maskserve.backends.onnx_backend",
            "OnnxBackend",
            ("onnxruntime", "onnx"),
            ("cpu",),
            "onnxruntime_onnx",
            "maskserve[onnx]",
        ),
        BackendSpec(
            "openvino",
            "maskserve.backends.openvino_backend",
            "OpenVinoBackend",
            # It runs the ONNX backend's export, which ONNX Runtime's optimizer builds.
            ("openvino", "onnxruntime", "onnx"),
            ("cpu",),
            "openvino",
            "maskserve[openvino]",
        ),
    )
}
# What every model runs on when a faster engine cannot take it.
FALLBACK = "torch"


def choose_backend(requested: str, device: str) -> str:
    """The backend for ``--backend`` (auto and KServe's huggingface: the fastest this machine has for the
    model). The one place this rule lives; a backend that fails to load falls back to torch.

    On the CPU that is ONNX Runtime when it is installed: 1.27x torch's sentences/s on a bert-base at 16
    clients, and OpenVINO, on the same export, measured no faster (0.92x ONNX Runtime at 16 clients, 1.02x
    at one, float32 on an AVX2 CPU; docs/benchmarks.md, "OpenVINO"), so ``--backend openvino`` is there
    to choose, not the default. On a GPU it is torch (both graph engines here are built for the CPU)."""
    if requested in BACKENDS:
        return requested
    if resolve_device(device) != "cpu":
        return FALLBACK
    return "onnx" if BACKENDS["onnx"].available() else FALLBACK


def platform(name: str) -> str:
    spec = BACKENDS.get(name)
    return spec.platform if spec is not None else name
