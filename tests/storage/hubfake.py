"""A stand-in Hugging Face Hub served on loopback: the real huggingface_hub download code runs, only the
network endpoint is ours; and the network isolation every storage test runs under.

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
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from huggingface_hub import constants

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


@contextmanager
def serve_hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    server = _HubServer(("127.0.0.1", 0), _HubHandler)
    server.hub = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- isolation ---------------------------------------------------------------------------------------------


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[], list[str]]:
    """No real Hub or cloud, no ambient credentials, and a record of every non-loopback host looked up (the
    lookup fails); call the result at the end and assert it is empty.

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
    # boto3 would otherwise read ~/.aws and ask the instance metadata service for credentials.
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CA_BUNDLE",
        "S3_ENDPOINT",
        "S3_USE_HTTPS",
        "S3_VERIFY_SSL",
        "awsAnonymousCredential",
        "S3_USER_VIRTUAL_BUCKET",
        "S3_USE_ACCELERATE",
        "MASKSERVE_MAX_DOWNLOAD_BYTES",
        "MASKSERVE_MAX_EXTRACTED_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    blocked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            blocked.append(str(host))
            raise OSError(f"test blocked a lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return lambda: blocked
