"""Fixtures of the conformance folder: one ``maskserve serve`` process for the whole session and the
in-process engine's answers to the same inputs (the reference). See harness.py for the rest."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from maskserve.params import FillMaskParams
from support.servers import free_ports, server_env, wait_ready

from .harness import (
    HF_TARGETS,
    HF_TEXT,
    HF_TOP_K,
    MODEL,
    READY_TIMEOUT_S,
    TEXTS,
    TOP_K,
    TWO_MASK_TEXTS,
    Reference,
    Server,
    port_open,
)


@pytest.fixture(scope="session")
def server(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m maskserve serve`` on loopback with HTTP and gRPC; SIGTERM at the end of the session."""
    port, grpc_port = free_ports(2)
    log_path = tmp_path_factory.mktemp("conformance") / "maskserve.log"
    env = server_env()
    command = [
        sys.executable,
        "-m",
        "maskserve",
        "serve",
        str(bert_dir),
        f"--model_name={MODEL}",
        "--host=127.0.0.1",
        f"--http_port={port}",
        f"--grpc_port={grpc_port}",
    ]
    # A file, not a pipe: nobody reads the output while the session runs, and a full pipe would block it.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    handle = Server(
        base=f"http://127.0.0.1:{port}",
        http_hostport=f"127.0.0.1:{port}",
        grpc=f"127.0.0.1:{grpc_port}",
        log=log_path,
    )
    try:
        wait_ready(
            proc,
            handle.base,
            timeout=READY_TIMEOUT_S,
            output=handle.log_tail,
            also=lambda: port_open(grpc_port),
        )
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def reference(bert_dir: Path) -> Reference:
    # Imported here: support.engines imports transformers (seconds), which collection need not pay.
    from support.engines import engine_for

    engine = engine_for(bert_dir, model_name=MODEL)
    top1 = await engine.kserve_values(TEXTS)
    assert all(isinstance(v, str) for v in top1), "the reference engine is not in top-1 mode"
    (hf_targets,) = await engine.fill_mask(
        [HF_TEXT], FillMaskParams(top_k=HF_TOP_K, targets=tuple(HF_TARGETS))
    )
    (hf_default,) = await engine.fill_mask([HF_TEXT], FillMaskParams())
    reference = Reference(
        top1=[str(v) for v in top1],
        top_k=await engine.fill_mask(TEXTS, FillMaskParams(top_k=TOP_K)),
        two_masks=await engine.fill_mask(TWO_MASK_TEXTS, FillMaskParams(top_k=TOP_K)),
        hf_targets=hf_targets[0],
        hf_default=hf_default[0],
    )
    # The inputs must be what the comparisons assume: one mask each, two masks each, k candidates.
    assert [len(r) for r in reference.top_k] == [1] * len(TEXTS)
    assert [len(r) for r in reference.two_masks] == [2] * len(TWO_MASK_TEXTS)
    assert len(reference.hf_targets) == HF_TOP_K
    assert {p.token_str for p in reference.hf_targets} <= set(HF_TARGETS)
    return reference
