"""storage.py against a stand-in Hugging Face Hub served on loopback: the real huggingface_hub download code
runs, only the network endpoint is ours.

The stand-in implements what huggingface_hub 2.4.0 calls for ``model_info`` and ``snapshot_download``:

* ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}`` -> ``{"id", "sha", "siblings"}``
* ``GET /api/models/{repo}/tree/{rev}?recursive=True&expand=False`` -> ``[{"type": "file", "path", "size",
  "oid"}]``; no ``Link`` header means a single page, and no ``xetHash`` keeps the download on plain HTTP
* ``HEAD``/``GET /{repo}/resolve/{rev}/{filename}`` with ``X-Repo-Commit`` (mandatory), ``ETag`` (mandatory)
  and ``Content-Length``; without ``X-Xet-Hash`` the file is fetched by that same ``GET``
* errors as the Hub sends them: the status plus ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``, ``GatedRepo``), which huggingface_hub turns into its typed exceptions
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from huggingface_hub import constants

from maskserve.errors import ModelLoadError
from maskserve.storage import HubRef, parse_hub_ref, resolve_model_source

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN = "hf_test_token_123"
BASE_FILES = {
    "config.json": b'{"model_type": "bert"}',
    "tokenizer_config.json": b'{"do_lower_case": true}',
    "tokenizer.json": b'{"version": "1.0"}',
}
BOTH_WEIGHTS = {
    **BASE_FILES,
    "model.safetensors": b"safetensors-bytes",
    "pytorch_model.bin": b"pickled-bytes",
    "flax_model.msgpack": b"flax-bytes",
    "README.md": b"# card",
    "onnx/model.onnx": b"onnx-bytes",
    "onnx/tokenizer.json": b"{}",
    "coreml/model.safetensors": b"coreml-bytes",
}
# A safetensors file below the top level must not make the server pick safetensors over the top-level .bin.
BIN_ONLY = {**BASE_FILES, "pytorch_model.bin": b"pickled-bytes", "coreml/model.safetensors": b"coreml-bytes"}


# --- the stand-in Hub --------------------------------------------------------------------------------------


@dataclass
class FakeHub:
    url: str = ""
    # repo -> revision name or commit sha -> (commit sha, files)
    repos: dict[str, dict[str, tuple[str, dict[str, bytes]]]] = field(default_factory=dict)
    required_token: dict[str, str] = field(default_factory=dict)
    # repo -> (status, X-Error-Code) answered to every request about it
    refusals: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    # every request: (method, path with query, Authorization header)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_repo(self, repo_id: str, revisions: dict[str, dict[str, bytes]]) -> dict[str, str]:
        """Serve ``repo_id`` with one commit per named revision; returns revision name -> commit sha."""
        refs = self.repos.setdefault(repo_id, {})
        shas = {}
        for name, files in revisions.items():
            sha = hashlib.sha1(f"{repo_id}@{name}".encode()).hexdigest()
            refs[name] = refs[sha] = (sha, files)
            shas[name] = sha
        return shas

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path, _ in self.seen if method is None or m == method]

    def fetched(self) -> set[str]:
        """File names that were downloaded (GET on /resolve/)."""
        return {p.split("/resolve/", 1)[1].split("/", 1)[1] for p in self.paths("GET") if "/resolve/" in p}


_API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+))?")
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")


class _HubServer(ThreadingHTTPServer):
    hub: FakeHub


class _HubHandler(BaseHTTPRequestHandler):
    server: _HubServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        hub = self.server.hub
        path = urlsplit(self.path).path
        with hub.lock:
            hub.seen.append((self.command, self.path, self.headers.get("Authorization")))
        api, resolve = _API.fullmatch(path), _RESOLVE.fullmatch(path)
        match = api or resolve
        if match is None:
            return self._error(404, None, body=body)
        repo_id = match["repo"]
        if repo_id not in hub.repos:
            return self._error(404, "RepoNotFound", body=body)
        if repo_id in hub.refusals:
            return self._error(*hub.refusals[repo_id], body=body)
        wanted = hub.required_token.get(repo_id)
        if wanted is not None and self.headers.get("Authorization") != f"Bearer {wanted}":
            return self._error(401, None, body=body)
        revision = unquote(match["rev"] or "main")
        if revision not in hub.repos[repo_id]:
            return self._error(404, "RevisionNotFound", body=body)
        sha, files = hub.repos[repo_id][revision]
        if api is not None and api["kind"] == "tree":
            listing = [{"type": "file", "path": n, "size": len(d), "oid": _oid(d)} for n, d in files.items()]
            return self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body)
        if api is not None:
            info = {"id": repo_id, "sha": sha, "siblings": [{"rfilename": name} for name in files]}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
        name = unquote(match["file"])
        if name not in files:
            return self._error(404, "EntryNotFound", body=body, headers={"X-Repo-Commit": sha})
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{_oid(files[name])}"',
            "Content-Type": "application/octet-stream",
        }
        return self._send(200, files[name], headers, body)

    def _error(
        self, status: int, code: str | None, *, body: bool, headers: dict[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        if code is not None:
            extra["X-Error-Code"] = code
        extra["X-Error-Message"] = f"stand-in Hub says {status} {code or ''}".strip()
        self._send(status, json.dumps({"error": extra["X-Error-Message"]}).encode(), extra, body)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)


def _oid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hub_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real Hub, no ambient credentials, and a failure if anything resolves a non-loopback host.

    huggingface_hub reads its env vars once, at import, into ``huggingface_hub.constants`` (and the suite's
    conftest already set HF_HUB_OFFLINE=1 before that import), so the constants are patched, not only the env.
    With telemetry on, building the User-Agent fetches ``{ENDPOINT}/api/agent-harnesses`` from huggingface.co.
    """
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    blocked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            blocked.append(str(host))
            raise OSError(f"test blocked a lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    yield
    assert blocked == [], f"a test tried to reach {blocked}"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    server = _HubServer(("127.0.0.1", 0), _HubHandler)
    server.hub = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def _resolve(hub: FakeHub, cache: Path, source: str, **kwargs: Any) -> Path:
    # endpoint is passed explicitly: HF_ENDPOINT is read into constants.ENDPOINT (and the derived
    # HUGGINGFACE_CO_URL_TEMPLATE) at import, so setting it here would be too late; patching both constants
    # would work but couples the test to private derivations. test_hf_endpoint_env_var covers the env path.
    return resolve_model_source(source, cache_dir=cache, endpoint=hub.url, **kwargs)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- parse_hub_ref -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("hf://a/b", HubRef("a/b", None)),
        ("hf://a/b@rev", HubRef("a/b", "rev")),
        ("hf://a/b:rev", HubRef("a/b", "rev")),
        ("hf://a/b@refs/pr/1", HubRef("a/b", "refs/pr/1")),
        ("hf://bert-base-uncased", HubRef("bert-base-uncased", None)),
        ("a/b", HubRef("a/b", None)),
        ("google-bert/bert-base-uncased", HubRef("google-bert/bert-base-uncased", None)),
        ("distilroberta-base", HubRef("distilroberta-base", None)),
    ],
)
def test_parse_hub_ref(source: str, expected: HubRef) -> None:
    assert parse_hub_ref(source) == expected


@pytest.mark.parametrize(
    "source",
    ["file:///srv/models/bert", "file://localhost/srv/x", "./models/bert", "/no/such/dir", "a/b/c", "x--y"],
)
def test_parse_hub_ref_non_hub(source: str) -> None:
    assert parse_hub_ref(source) is None


def test_existing_local_path_shadows_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_hub_ref("org/model") == HubRef("org/model", None)
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert parse_hub_ref("org/model") is None
    assert parse_hub_ref(str(tmp_path)) is None


@pytest.mark.parametrize("source", ["hf://", "hf://a/b/c", "hf://a/b@", "hf://-bad-/x", "hf://a--b/c"])
def test_malformed_hf_uri(source: str) -> None:
    with pytest.raises(ModelLoadError, match="invalid Hub reference"):
        parse_hub_ref(source)


# --- local sources -----------------------------------------------------------------------------------------


def test_resolve_local_dir_and_file_uri(tmp_path: Path) -> None:
    model = tmp_path / "my model"  # the space is percent-encoded in the URI
    model.mkdir()
    assert resolve_model_source(str(model)) == model
    assert resolve_model_source(model.as_uri()) == model
    assert resolve_model_source(f"file://localhost{model.as_uri()[len('file://') :]}") == model


@pytest.mark.parametrize("as_uri", [False, True])
def test_resolve_missing_local_dir(tmp_path: Path, as_uri: bool) -> None:
    missing = tmp_path / "gone" / "model"
    with pytest.raises(ModelLoadError) as info:
        resolve_model_source(missing.as_uri() if as_uri else str(missing))
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_resolve_local_file_is_not_a_dir(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a directory") as info:
        resolve_model_source(str(weights))
    assert str(weights) in str(info.value)


def test_resolve_rejects_remote_file_uri() -> None:
    with pytest.raises(ModelLoadError, match="unsupported file URI"):
        resolve_model_source("file://fileserver/models/bert")


# --- Hub downloads -----------------------------------------------------------------------------------------


def test_download_fetches_only_safetensors(hub: FakeHub, cache: Path) -> None:
    shas = hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    path = _resolve(hub, cache, "org/both")

    assert path == cache / "models--org--both" / "snapshots" / shas["main"]
    wanted = {"config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors"}
    assert {p.name for p in path.iterdir()} == wanted
    for name in wanted:
        assert (path / name).read_bytes() == BOTH_WEIGHTS[name]
    assert hub.fetched() == wanted
    assert not any(
        s in p for p in hub.paths() for s in ("pytorch_model.bin", "flax", "README", "onnx/", "coreml/")
    )
    assert "/api/models/org/both/revision/main" in hub.paths("GET")


def test_download_falls_back_to_pytorch_bin(hub: FakeHub, cache: Path) -> None:
    hub.add_repo("org/bin-only", {"main": BIN_ONLY})
    path = _resolve(hub, cache, "hf://org/bin-only")
    top_level = {"config.json", "tokenizer_config.json", "tokenizer.json", "pytorch_model.bin"}
    assert {p.name for p in path.iterdir()} == top_level
    assert (path / "pytorch_model.bin").read_bytes() == BIN_ONLY["pytorch_model.bin"]
    assert hub.fetched() == top_level


def test_repo_without_weights(hub: FakeHub, cache: Path) -> None:
    hub.add_repo("org/no-weights", {"main": BASE_FILES})
    with pytest.raises(ModelLoadError, match=r"'org/no-weights'.*no \*\.safetensors or pytorch_model\.bin"):
        _resolve(hub, cache, "org/no-weights")
    assert hub.fetched() == set()


@pytest.mark.parametrize(
    ("source", "revision", "expected"),
    [
        ("hf://org/both@v1", None, "v1"),
        ("hf://org/both:v1", None, "v1"),
        ("org/both", "v1", "v1"),
        ("hf://org/both@v1", "main", "v1"),  # the source's own revision wins over the default
        ("hf://org/both", None, "main"),
    ],
)
def test_download_requests_the_right_revision(
    hub: FakeHub, cache: Path, source: str, revision: str | None, expected: str
) -> None:
    v1 = {**BOTH_WEIGHTS, "config.json": b'{"model_type": "bert", "v": 1}'}
    shas = hub.add_repo("org/both", {"main": BOTH_WEIGHTS, "v1": v1})
    path = _resolve(hub, cache, source, revision=revision)

    assert path.name == shas[expected]
    assert (path / "config.json").read_bytes() == {"main": BOTH_WEIGHTS, "v1": v1}[expected]["config.json"]
    assert f"/api/models/org/both/revision/{expected}" in hub.paths("GET")
    assert (cache / "models--org--both" / "refs" / expected).read_text() == shas[expected]
    assert all(f"/resolve/{shas[expected]}/" in p for p in hub.paths() if "/resolve/" in p)


def test_missing_revision(hub: FakeHub, cache: Path) -> None:
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    with pytest.raises(ModelLoadError, match=r"revision 'nope' of model 'org/both' was not found"):
        _resolve(hub, cache, "hf://org/both@nope")


def test_missing_repo(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        _resolve(hub, cache, "org/missing")
    message = str(info.value)
    assert "'org/missing'" in message
    assert "not found" in message
    assert hub.url in message
    assert hub.paths() == ["/api/models/org/missing"]  # model_info without a revision; no download attempted


@pytest.mark.parametrize(
    ("status", "code"), [(401, None), (403, None), (401, "RepoNotFound"), (403, "GatedRepo")]
)
def test_access_refused_mentions_hf_token(hub: FakeHub, cache: Path, status: int, code: str | None) -> None:
    hub.add_repo("org/private", {"main": BOTH_WEIGHTS})
    hub.refusals["org/private"] = (status, code)
    with pytest.raises(ModelLoadError) as info:
        _resolve(hub, cache, "org/private")
    message = str(info.value)
    assert "'org/private'" in message
    assert "access to it was refused" in message
    assert "HF_TOKEN" in message
    assert hub.fetched() == set()


def test_unreachable_hub(cache: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ModelLoadError) as info:
        resolve_model_source("org/both", cache_dir=cache, endpoint=endpoint)
    message = str(info.value)
    assert f"cannot reach the Hugging Face Hub at {endpoint}" in message
    assert "'org/both'" in message
    assert "HF_HUB_OFFLINE=1" in message


@pytest.mark.parametrize("via_env", [False, True])
def test_token_sent_as_bearer(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    hub.add_repo("org/private", {"main": BOTH_WEIGHTS})
    hub.required_token["org/private"] = TOKEN
    if via_env:
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = _resolve(hub, cache, "org/private", token=None if via_env else TOKEN)

    assert (path / "model.safetensors").read_bytes() == BOTH_WEIGHTS["model.safetensors"]
    assert hub.seen
    assert {auth for _, _, auth in hub.seen} == {f"Bearer {TOKEN}"}


def test_wrong_token_is_refused(hub: FakeHub, cache: Path) -> None:
    hub.add_repo("org/private", {"main": BOTH_WEIGHTS})
    hub.required_token["org/private"] = TOKEN
    with pytest.raises(ModelLoadError, match="HF_TOKEN"):
        _resolve(hub, cache, "org/private", token="hf_wrong")
    assert {auth for _, _, auth in hub.seen} == {"Bearer hf_wrong"}


def test_offline_mode_reuses_the_cached_snapshot(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    online = _resolve(hub, cache, "org/both")
    requests_so_far = len(hub.seen)

    # The cached snapshot holds safetensors only, although the repo also has a .bin: still complete offline.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _resolve(hub, cache, "org/both") == online
    assert len(hub.seen) == requests_so_far


def test_offline_mode_without_cache(hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"cannot reach the Hugging Face Hub.*offline mode is on"):
        _resolve(hub, cache, "org/both")
    assert hub.seen == []


def test_hf_endpoint_env_var(hub: FakeHub, tmp_path: Path) -> None:
    """Production passes no endpoint: HF_ENDPOINT, read at import, must route every call to the stand-in."""
    shas = hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    script = textwrap.dedent(
        """
        import socket, sys
        real_getaddrinfo = socket.getaddrinfo
        def loopback_only(host, *args, **kwargs):
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"blocked a lookup of {host!r}")
            return real_getaddrinfo(host, *args, **kwargs)
        socket.getaddrinfo = loopback_only
        from pathlib import Path
        from maskserve.storage import resolve_model_source
        print(resolve_model_source("org/both", cache_dir=Path(sys.argv[1])))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="0",
        PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p),
    )
    cache = tmp_path / "cache"
    argv = [sys.executable, "-c", script, str(cache)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == cache / "models--org--both" / "snapshots" / shas["main"]
    assert "model.safetensors" in hub.fetched()
