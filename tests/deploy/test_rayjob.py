"""The KubeRay ``RayJob`` in docs/datasets.md: it is a RayJob, its entrypoint goes through maskserve's own
batch parser, every pod runs the image built with the ray extra, and the data volume is where the job
reads and writes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from maskserve.cli import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def _rayjob() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    (job,) = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc.get("kind") == "RayJob"]
    return dict(job)


def _pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def test_the_entrypoint_is_a_batch_command_the_cli_accepts() -> None:
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "maskserve"
    args = build_parser().parse_args(argv[1:])  # exits (fails the test) on anything it does not know
    assert args.command == "batch"
    assert args.ray == "auto"
    # The actors fit the worker pods: as many CPUs asked for as the worker group has.
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    cpus = sum(
        g["replicas"] * float(g["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
        for g in groups
    )
    assert args.workers * args.cpus_per_worker <= cpus


def test_every_pod_runs_the_ray_image_with_the_data_volume() -> None:
    job = _rayjob()
    argv = shlex.split(job["spec"]["entrypoint"])
    paths = [argv[argv.index(flag) + 1] for flag in ("--input", "--output")] + [argv[2]]
    build = re.search(r"docker build --build-arg EXTRAS=(\S+) -t (\S+) \.", DOC.read_text(encoding="utf-8"))
    assert build is not None
    assert "ray" in build.group(1).split(",")
    for pod in _pods(job):
        (container,) = pod["containers"]
        assert container["image"] == build.group(2)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"] for v in pod["volumes"]}
        for path in paths:
            mount = next(m for m in mounts if path.startswith(m + "/"))
            assert mounts[mount] in volumes
