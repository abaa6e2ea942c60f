"""The same job on a Ray cluster: a local cluster of two nodes with one CPU each, started and stopped here;
``maskserve batch --ray ADDRESS`` writes what the one-machine job writes, and ``maskserve.ray.FillMask`` in a
Ray Data pipeline of one's own gives each row the HF API's answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.answers import assert_same_answers
from support.servers import server_env

pytestmark = pytest.mark.e2e

ray = pytest.importorskip("ray")

TEXTS = [f"the {'[MASK]'} number {i} sat ." for i in range(30)] + ["no mask here", "a [MASK] ran ."]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from ray.cluster_utils import Cluster

    # Ray Data's usage poller is a daemon thread that logs after pytest has closed its streams; nothing here
    # is Ray's to report (and the tests stay on loopback).
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_DATA_USAGE_DISABLED", "1")
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    made.add_node(num_cpus=1)
    made.wait_for_nodes()
    try:
        yield made.address
    finally:
        made.shutdown()
        patch.undo()


def _batch(bert_dir: Path, source: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "maskserve", "batch", str(bert_dir), "--input", str(source), "--output",
            str(output), "--backend", "torch", "--parameters", '{"top_k": 2}', "--quiet", *extra]  # fmt: skip
    return subprocess.run(argv, env=server_env(), capture_output=True, text=True, timeout=600, check=False)


def test_a_ray_job_writes_what_one_machine_writes(bert_dir: Path, tmp_path: Path, cluster: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in TEXTS), encoding="utf-8")
    here, there = tmp_path / "here.jsonl", tmp_path / "there.jsonl"
    assert _batch(bert_dir, source, here).returncode == 1  # one record has no mask
    done = _batch(bert_dir, source, there, "--ray", cluster, "--workers", "2")
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [json.loads(line) for line in there.read_text().splitlines()]
    assert [line["id"] for line in lines] == list(range(1, len(TEXTS) + 1))  # every record once, in order
    assert_same_answers(lines, [json.loads(line) for line in here.read_text().splitlines()])


def test_fill_mask_in_a_ray_data_pipeline(bert_dir: Path, cluster: str) -> None:
    import maskserve.ray
    from maskserve.params import FillMaskParams
    from maskserve.protocols.hf import render_hf_response
    from support.engines import engine_for

    ray.init(address=cluster, log_to_driver=False)
    try:
        dataset = ray.data.from_items([{"text": t} for t in TEXTS[:8]])
        answered = dataset.map_batches(
            maskserve.ray.FillMask,
            fn_constructor_kwargs={"model": str(bert_dir), "parameters": {"top_k": 2}, "backend": "torch"},
            batch_size=4,
            compute=ray.data.ActorPoolStrategy(size=2),
        )
        rows = sorted(answered.take_all(), key=lambda row: TEXTS.index(row["text"]))
    finally:
        ray.shutdown()
    assert [row["text"] for row in rows] == TEXTS[:8]
    assert all(row["error"] is None for row in rows)
    for row in rows:
        want = render_hf_response(
            asyncio.run(engine_for(bert_dir).fill_mask([row["text"]], FillMaskParams(top_k=2))),
            True,
        )
        assert_same_answers(json.loads(row["answer"]), want)
