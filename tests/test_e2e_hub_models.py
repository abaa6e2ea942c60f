"""Models loaded on request from the Hub (a stand-in on loopback), for the HF API: only ids an operator
allowed; 503 with estimated_time while loading, or the answer with x-wait-for-model; one load for
concurrent requests; each failure answered with its reason and status, retried only after a back-off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from storage.hubfake import FakeHub, serve_hub
from support.servers import free_ports, server_env, wait_ready

pytestmark = pytest.mark.e2e

TEXT = {"inputs": "the [MASK] sat on the mat ."}
WAIT = {"x-wait-for-model": "true"}


def _files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


@pytest.fixture(scope="module")
def hub(bert_dir: Path, not_mlm_dir: Path) -> Iterator[FakeHub]:
    with serve_hub() as fake:
        for repo in ("org/tiny-bert", "org/tiny-bert-2", "other/tiny-bert"):
            fake.add_repo(repo, {"main": _files(bert_dir)})
        fake.add_repo("org/classifier", {"main": _files(not_mlm_dir)})
        fake.add_repo("org/down", {"main": _files(bert_dir)})
        fake.refusals["org/down"] = (500, None)
        yield fake


@pytest.fixture(scope="module")
def base(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (port,) = free_ports(1)
    home = tmp_path_factory.mktemp("hf-home")
    env = server_env()
    env.update(
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="10",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskserve", "serve", "--hub_models", "org/*", "--host=127.0.0.1",
         f"--http_port={port}", "--enable_grpc=false", "--max_wait_for_model_s=120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url)
    yield url
    proc.terminate()
    proc.wait(30)


def _post(base: str, model: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{base}/models/{model}", json=TEXT, timeout=150, trust_env=False, **kwargs)  # type: ignore[arg-type]


def test_an_allowed_id_loads_on_request(base: str) -> None:
    first = _post(base, "org/tiny-bert")
    assert first.status_code == 503, first.text
    assert first.json()["estimated_time"] > 0
    assert int(first.headers["retry-after"]) >= 1
    waited = _post(base, "org/tiny-bert", headers=WAIT)
    assert waited.status_code == 200, waited.text
    assert len(waited.json()) == 5
    listed = httpx.get(f"{base}/v1/models", trust_env=False).json()["models"]
    assert "org/tiny-bert" in listed


def test_concurrent_requests_start_one_load(base: str, hub: FakeHub) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _post(base, "org/tiny-bert-2", headers=WAIT), range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    config_fetches = [
        p
        for p in hub.paths("GET")
        if p.startswith("/org/tiny-bert-2/resolve/") and p.endswith("/config.json")
    ]
    assert len(config_fetches) == 1


def test_an_id_outside_the_allow_list_is_a_404_and_never_fetched(base: str, hub: FakeHub) -> None:
    answer = _post(base, "other/tiny-bert", headers=WAIT)
    assert answer.status_code == 404
    assert not [p for m, p, _ in hub.seen if "other/tiny-bert" in p]


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("org/missing", 404, "was not found on the Hugging Face Hub"),
        ("org/classifier", 400, "not a masked language model"),
        ("org/down", 502, "answered HTTP 500"),
    ],
)
def test_failed_loads_answer_with_their_reason_and_back_off(
    base: str, hub: FakeHub, model: str, status: int, words: str
) -> None:
    answer = _post(base, model, headers=WAIT)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    seen = len(hub.seen)
    again = _post(base, model, headers=WAIT)
    assert again.status_code == status
    assert words in again.json()["error"]
    assert len(hub.seen) == seen  # within the back-off: no new download
    assert _post(base, "org/tiny-bert", headers=WAIT).status_code == 200  # the others still serve
