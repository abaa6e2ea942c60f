"""Where a model runs and how many threads it may use: shared by every backend, importing none of them."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

# Present on any machine with an NVIDIA driver loaded; without them there is no CUDA device to ask about.
_NVIDIA = (Path("/proc/driver/nvidia/version"), Path("/dev/nvidia0"), Path("/dev/nvidiactl"))


def cuda_available() -> bool:
    """Whether torch sees a CUDA device. Asked only where an NVIDIA driver is present: importing torch costs
    a CPU server seconds of start-up and hundreds of MB, and the ONNX Runtime and OpenVINO backends never
    need it."""
    if importlib.util.find_spec("torch") is None:
        return False
    if not any(path.exists() for path in _NVIDIA):
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return device


def default_threads(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use, which is what intra-op parallelism should fill: the CPU affinity, capped
    by a cgroup v2 CPU quota. In a container with a CPU limit the affinity is still every core of the node,
    and one thread per node core under a 2-core quota spends its time throttled."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU controller here: the affinity is all there is
    return cores
