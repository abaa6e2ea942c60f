"""http(s):// archive sources against an http.server on loopback, through download_model and
resolve_model_source."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import download_model, resolve_model_source
from storage.archives import MODEL_FILES, NOISE, file, model_entries, symlink, tar_bytes, zip_bytes
from storage.checks import download_fails, files_of


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    send_length: bool = True
    cut_after: int | None = None  # close the connection after this many body bytes
    required_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def gets(self, path: str) -> int:
        return sum(1 for seen, _ in self.seen if urlsplit(seen).path == path)


class _Server(ThreadingHTTPServer):
    site: Site


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        site = self.server.site
        site.seen.append((self.path, dict(self.headers.items())))
        route = site.routes.get(urlsplit(self.path).path)
        if route is None:
            route = Route(b"not here", "text/plain", status=404)
        if any(self.headers.get(k) != v for k, v in route.required_headers.items()):
            route = Route(b"who are you", "text/plain", status=403)
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if route.send_length:
            self.send_header("Content-Length", str(len(route.body)))
        else:
            self.close_connection = True  # the body ends when the connection does (HTTP/1.0 style)
        self.end_headers()
        body = route.body if route.cut_after is None else route.body[: route.cut_after]
        self.wfile.write(body)
        self.wfile.flush()
        if route.cut_after is not None:
            self.close_connection = True


@pytest.fixture
def site() -> Iterator[Site]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site = Site(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- success -----------------------------------------------------------------------------------------------


ARCHIVES = {
    "/bert.tar.gz": tar_bytes(model_entries()),
    "/bert.tgz": tar_bytes(model_entries("bert/")),  # the wrapping directory is unwrapped
    "/bert.tar": tar_bytes(model_entries(), compression=""),
    "/bert.zip": zip_bytes(model_entries("./bert/")),
}


@pytest.mark.parametrize("path", list(ARCHIVES))
def test_download_archive(site: Site, parent: Path, path: str) -> None:
    site.routes[path] = Route(ARCHIVES[path])
    dest = download_model(site.url(path), parent / "bert")
    assert dest == parent / "bert"
    assert files_of(dest) == MODEL_FILES
    assert [p.name for p in parent.iterdir()] == ["bert"]


def test_content_type_names_the_archive_kind(site: Site, parent: Path) -> None:
    site.routes["/download"] = Route(zip_bytes(model_entries()), "application/zip")
    dest = download_model(site.url("/download?id=7"), parent / "bert")
    assert files_of(dest) == MODEL_FILES


def test_archive_without_content_length(site: Site, parent: Path) -> None:
    site.routes["/bert.tgz"] = Route(tar_bytes(model_entries()), send_length=False)
    assert files_of(download_model(site.url("/bert.tgz"), parent / "bert")) == MODEL_FILES


def test_headers_from_the_host_variable(site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site.routes["/bert.tgz"] = Route(
        tar_bytes(model_entries()), required_headers={"Authorization": "Bearer s3"}
    )
    download_fails(site.url("/bert.tgz"), parent, r"refused access \(HTTP 403\).*127\.0\.0\.1-headers")

    monkeypatch.setenv("127.0.0.1-headers", '{"Authorization": "Bearer s3"}')
    assert files_of(download_model(site.url("/bert.tgz"), parent / "bert")) == MODEL_FILES


def test_malformed_host_headers_variable(site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("127.0.0.1-headers", "Authorization: Bearer s3")
    download_fails(site.url("/bert.tgz"), parent, "127.0.0.1-headers must hold a JSON object")


# --- failures leave nothing behind -------------------------------------------------------------------------


def test_connection_cut_midway(site: Site, parent: Path) -> None:
    body = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    site.routes["/bert.tgz"] = Route(body, cut_after=len(body) // 2)
    message = download_fails(site.url("/bert.tgz"), parent, "was cut off")
    assert f"{len(body) // 2} of {len(body)} bytes" in message


def test_connection_cut_midway_without_length(site: Site, parent: Path) -> None:
    # Nothing tells the client the body is short; the gzip stream ending early does.
    body = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    site.routes["/bert.tgz"] = Route(body, send_length=False, cut_after=len(body) // 2)
    download_fails(site.url("/bert.tgz"), parent, "is not a readable tar archive")


@pytest.mark.parametrize(
    "entries",
    [
        [*model_entries(), file("../../evil", b"x")],
        [*model_entries(), symlink("tokenizer_config.json", "../../evil")],
        [file("/evil", b"x")],
    ],
)
def test_unsafe_archive(site: Site, parent: Path, tmp_path: Path, entries: list[Any]) -> None:
    site.routes["/bert.tgz"] = Route(tar_bytes(entries))
    download_fails(site.url("/bert.tgz"), parent, "unsafe member")
    assert not list(tmp_path.rglob("evil"))


def test_download_size_bound_from_content_length(
    site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    site.routes["/bert.tgz"] = Route(body)
    monkeypatch.setenv("MASKSERVE_MAX_DOWNLOAD_BYTES", str(len(body) - 1))
    message = download_fails(
        site.url("/bert.tgz"), parent, f"is {len(body)} bytes, more than the {len(body) - 1}"
    )
    assert "MASKSERVE_MAX_DOWNLOAD_BYTES" in message


def test_download_size_bound_while_streaming(
    site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    site.routes["/bert.tgz"] = Route(body, send_length=False)
    monkeypatch.setenv("MASKSERVE_MAX_DOWNLOAD_BYTES", "1000")
    download_fails(site.url("/bert.tgz"), parent, "sent more than the 1000 bytes allowed")


def test_extracted_size_bound(site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site.routes["/bert.tgz"] = Route(tar_bytes([*model_entries(), file("zeros.bin", bytes(1 << 20))]))
    monkeypatch.setenv("MASKSERVE_MAX_EXTRACTED_BYTES", str(1 << 19))
    download_fails(site.url("/bert.tgz"), parent, "unpacks to more than 524288 bytes")


def test_bad_size_variable(site: Site, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKSERVE_MAX_DOWNLOAD_BYTES", "10GB")
    download_fails(
        site.url("/bert.tgz"), parent, "MASKSERVE_MAX_DOWNLOAD_BYTES='10GB' is not a positive number"
    )
    assert site.seen == []


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/model.safetensors", Route(b"weights")),
        ("/download", Route(b"weights", "application/octet-stream")),
    ],
)
def test_unsupported_archive_type(site: Site, parent: Path, path: str, route: Route) -> None:
    site.routes[path] = route
    message = download_fails(site.url(path), parent, "unsupported archive type")
    assert ".tar.gz, .tgz, .tar or .zip" in message


def test_not_found_hides_the_query(site: Site, parent: Path) -> None:
    message = download_fails(
        site.url("/gone.tgz?X-Amz-Signature=topsecret"), parent, r"was not found \(HTTP 404\)"
    )
    assert site.url("/gone.tgz") in message
    assert "topsecret" not in message


def test_server_error(site: Site, parent: Path) -> None:
    site.routes["/bert.tgz"] = Route(b"oops", "text/plain", status=500)
    download_fails(site.url("/bert.tgz"), parent, "answered HTTP 500")


def test_unreachable_host(parent: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    download_fails(
        f"http://127.0.0.1:{port}/bert.tgz", parent, f"cannot reach http://127.0.0.1:{port}/bert.tgz"
    )


# --- serving from a URL: downloaded once, then reused ------------------------------------------------------


def test_resolve_downloads_once_into_the_cache(site: Site, tmp_path: Path) -> None:
    site.routes["/bert.tgz"] = Route(tar_bytes(model_entries()))
    first = resolve_model_source(site.url("/bert.tgz"))
    assert first.parent == tmp_path / "xdg-cache" / "maskserve" / "models"  # XDG_CACHE_HOME from isolate()
    assert first.name.startswith("http-")
    assert files_of(first) == MODEL_FILES
    assert [p.name for p in first.parent.iterdir()] == [first.name]

    assert resolve_model_source(site.url("/bert.tgz")) == first
    assert site.gets("/bert.tgz") == 1


def test_resolve_under_cache_dir(site: Site, tmp_path: Path) -> None:
    site.routes["/bert.zip"] = Route(zip_bytes(model_entries()))
    path = resolve_model_source(site.url("/bert.zip"), cache_dir=tmp_path / "cache", revision="ignored")
    assert path.parent == tmp_path / "cache" / "maskserve-downloads"
    assert files_of(path) == MODEL_FILES


def test_resolve_failure_leaves_no_cache_entry(site: Site, tmp_path: Path) -> None:
    body = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    site.routes["/bert.tgz"] = Route(body, cut_after=1000)
    with pytest.raises(ModelLoadError, match="cut off"):
        resolve_model_source(site.url("/bert.tgz"))
    root = tmp_path / "xdg-cache" / "maskserve" / "models"
    assert list(root.iterdir()) == []

    site.routes["/bert.tgz"] = Route(body)  # the next start tries again
    assert files_of(resolve_model_source(site.url("/bert.tgz")))["config.json"] == MODEL_FILES["config.json"]
