"""Hub sources against the stand-in Hub of hubfake.py (see its docstring for what it implements)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from maskserve.errors import ModelLoadError
from maskserve.storage import HubRef, download_model, parse_hub_ref, resolve_model_source
from storage.hubfake import BASE_FILES, BIN_ONLY, BOTH_WEIGHTS, TOKEN, FakeHub


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
        ("HF://a/b", HubRef("a/b", None)),
        ("a/b", HubRef("a/b", None)),
        ("google-bert/bert-base-uncased", HubRef("google-bert/bert-base-uncased", None)),
        ("distilroberta-base", HubRef("distilroberta-base", None)),
    ],
)
def test_parse_hub_ref(source: str, expected: HubRef) -> None:
    assert parse_hub_ref(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "file:///srv/models/bert",
        "file://localhost/srv/x",
        "./models/bert",
        "/no/such/dir",
        "a/b/c",
        "x--y",
        "s3://bucket/org/name",
        "https://host/org/name.tgz",
    ],
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
    src = str(Path(__file__).resolve().parents[2] / "src")
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


# --- maskserve download hf://... ---------------------------------------------------------------------------


def _listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_download_copies_the_snapshot_into_dir(
    hub: FakeHub, cache: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    parent = tmp_path / "models"
    parent.mkdir()
    dest = download_model("hf://org/both", parent / "bert", cache_dir=cache, endpoint=hub.url)

    assert dest == parent / "bert"
    wanted = {"config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors"}
    assert _listing(dest) == wanted
    for name in wanted:
        # real files, not links into the cache's blob store: DIR must survive the cache being cleared
        assert not (dest / name).is_symlink()
        assert (dest / name).read_bytes() == BOTH_WEIGHTS[name]
    assert _listing(parent) == {"bert"}  # no staging directory left behind
    # huggingface_hub's own progress bar was left on
    assert "Fetching 4 files" in capfd.readouterr().err


def test_download_reuses_the_cache(hub: FakeHub, cache: Path, tmp_path: Path) -> None:
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
    download_model("hf://org/both", tmp_path / "first", cache_dir=cache, endpoint=hub.url)
    fetched = len([p for p in hub.paths("GET") if "/resolve/" in p])

    second = download_model("org/both", tmp_path / "second", cache_dir=cache, endpoint=hub.url)

    assert (second / "model.safetensors").read_bytes() == BOTH_WEIGHTS["model.safetensors"]
    assert len([p for p in hub.paths("GET") if "/resolve/" in p]) == fetched


@pytest.mark.parametrize(("source", "revision"), [("hf://org/both@v1", None), ("hf://org/both", "v1")])
def test_download_a_revision(
    hub: FakeHub, cache: Path, tmp_path: Path, source: str, revision: str | None
) -> None:
    v1 = {**BOTH_WEIGHTS, "config.json": b'{"model_type": "bert", "v": 1}'}
    hub.add_repo("org/both", {"main": BOTH_WEIGHTS, "v1": v1})
    dest = download_model(source, tmp_path / "m", revision=revision, cache_dir=cache, endpoint=hub.url)
    assert (dest / "config.json").read_bytes() == v1["config.json"]


def test_download_refused_leaves_nothing(hub: FakeHub, cache: Path, tmp_path: Path) -> None:
    hub.add_repo("org/private", {"main": BOTH_WEIGHTS})
    hub.required_token["org/private"] = TOKEN
    parent = tmp_path / "models"
    parent.mkdir()
    with pytest.raises(ModelLoadError, match="HF_TOKEN"):
        download_model("hf://org/private", parent / "m", cache_dir=cache, endpoint=hub.url, token="hf_wrong")
    assert _listing(parent) == set()


def test_download_unreachable_hub_leaves_nothing(cache: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ModelLoadError, match="cannot reach the Hugging Face Hub"):
        download_model("hf://org/both", tmp_path / "m", cache_dir=cache, endpoint=endpoint)
    assert _listing(tmp_path) == set()
