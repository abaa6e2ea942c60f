"""Local sources (resolve and download) and how a download is put in place: staging, --force, mount points."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import DestinationExists, download_model, resolve_model_source
from maskserve.storage.atomic import Stage, staged_directory


@pytest.fixture
def model(tmp_path: Path) -> Path:
    source = tmp_path / "src model"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text('{"model_type": "bert"}')
    (source / "sub" / "vocab.txt").write_text("[MASK]\n")
    return source


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- resolve: used where it is -----------------------------------------------------------------------------


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


# --- download: copied, links followed ----------------------------------------------------------------------


@pytest.mark.parametrize("as_uri", [False, True])
def test_download_copies(model: Path, tmp_path: Path, as_uri: bool) -> None:
    (model / "weights.bin").symlink_to(model / "config.json")  # as in a Hub cache snapshot
    dest = download_model(model.as_uri() if as_uri else str(model), tmp_path / "out" / "bert")
    assert dest == tmp_path / "out" / "bert"
    assert _files(dest) == {**_files(model), "weights.bin": b'{"model_type": "bert"}'}
    assert not (dest / "weights.bin").is_symlink()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bert"]


def test_download_relative_dest(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert download_model(str(model), Path("rel")) == tmp_path / "rel"
    assert (tmp_path / "rel" / "config.json").is_file()


def test_download_into_an_empty_dir(model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    download_model(str(model), dest)
    assert _files(dest) == _files(model)


def test_existing_dest_needs_force(model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(DestinationExists, match="already exists and is not empty; pass --force"):
        download_model(str(model), dest)
    assert _files(dest) == {"old.txt": b"old"}

    download_model(str(model), dest, force=True)
    assert _files(dest) == _files(model)  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src model"]


def test_dest_is_a_file(model: Path, tmp_path: Path) -> None:
    (tmp_path / "dest").write_text("x")
    with pytest.raises(ModelLoadError, match="exists and is not a directory"):
        download_model(str(model), tmp_path / "dest", force=True)


@pytest.mark.parametrize(("dest", "force"), [("src model", False), ("src model/copy", False), (".", True)])
def test_dest_and_source_nested(model: Path, tmp_path: Path, dest: str, force: bool) -> None:
    before = _files(model)
    with pytest.raises(ModelLoadError, match="inside"):
        download_model(str(model), tmp_path / dest, force=force)
    assert _files(model) == before


def test_missing_source_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        download_model(str(tmp_path / "missing"), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# --- staging -----------------------------------------------------------------------------------------------


def _stage(dest: Path, body: Callable[[Stage], None], *, replace: bool = False) -> None:
    with staged_directory(dest, replace=replace) as stage:
        body(stage)


def test_failure_removes_the_stage(tmp_path: Path) -> None:
    def body(stage: Stage) -> None:
        assert stage.model.parent.parent == tmp_path  # a sibling of the destination: same file system
        (stage.model / "config.json").write_text("{}")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _stage(tmp_path / "dest", body)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_removes_the_stage(tmp_path: Path) -> None:
    def body(stage: Stage) -> None:
        (stage.scratch / "part").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _stage(tmp_path / "dest", body)
    assert list(tmp_path.iterdir()) == []


def test_failed_force_keeps_the_old_model(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.txt").write_text("old")

    def body(stage: Stage) -> None:
        (stage.model / "new.txt").write_text("new")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _stage(dest, body, replace=True)
    assert _files(dest) == {"old.txt": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]


def test_dest_filled_meanwhile(tmp_path: Path) -> None:
    dest = tmp_path / "dest"

    def body(stage: Stage) -> None:
        (stage.model / "mine.txt").write_text("mine")
        dest.mkdir()
        (dest / "theirs.txt").write_text("theirs")

    with pytest.raises(DestinationExists, match="filled by something else"):
        _stage(dest, body)
    assert _files(dest) == {"theirs.txt": b"theirs"}
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]


@pytest.mark.parametrize("force", [False, True])
def test_mount_point_is_filled_in_place(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    """A volume mounted at the destination cannot be renamed over: the stage goes inside it instead."""
    dest = tmp_path / "mnt"
    dest.mkdir()
    if force:
        (dest / "old").mkdir()
        (dest / "old" / "weights.bin").write_bytes(b"old")
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == dest or real_ismount(p))
    renamed: list[tuple[str, str]] = []
    real_rename = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == dest:
            raise OSError(16, "Device or resource busy")
        renamed.append((str(src), str(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    download_model(str(model), dest, force=force)
    assert _files(dest) == _files(model)
    assert all(Path(src).is_relative_to(dest) for src, _ in renamed)  # staged inside the mount
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt", "src model"]
