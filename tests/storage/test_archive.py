"""Safe unpacking of tar and zip archives, on archives built in memory."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import Limits
from maskserve.storage.archive import (
    ArchiveKind,
    archive_kind,
    content_type_kind,
    extract_archive,
    unpack_into,
)
from storage.archives import (
    MODEL_FILES,
    NOISE,
    Entry,
    directory,
    fifo,
    file,
    hardlink,
    model_entries,
    symlink,
    tar_bytes,
    zip_bytes,
)

Builder = Callable[[list[Entry]], bytes]
BUILDERS: dict[str, tuple[Builder, ArchiveKind]] = {
    "tar.gz": (tar_bytes, ArchiveKind.TAR),
    "tar": (lambda entries: tar_bytes(entries, compression=""), ArchiveKind.TAR),
    "zip": (zip_bytes, ArchiveKind.ZIP),
}


def _tree(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` by relative path; fails on anything that is not a file or dir."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        assert not path.is_symlink(), f"{path} is a link"
        if path.is_file():
            found[path.relative_to(root).as_posix()] = path.read_bytes()
        else:
            assert path.is_dir(), f"{path} is neither a file nor a directory"
    return found


def _extract(tmp_path: Path, fmt: str, entries: list[Entry], limits: Limits | None = None) -> Path:
    build, kind = BUILDERS[fmt]
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / f"model.{fmt}"
    archive.write_bytes(build(entries))
    out = tmp_path / "deep" / "out"  # two levels down, so that a "../" escape stays visible inside tmp_path
    out.mkdir(parents=True)
    extract_archive(archive, kind, out, limits or Limits(), label="test archive")
    return out


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_unpacks_files_and_directories(tmp_path: Path, fmt: str) -> None:
    entries = [directory("sub"), *model_entries("./"), file("sub/vocab.txt", b"[MASK]\n"), directory("empty")]
    out = _extract(tmp_path, fmt, entries)
    assert _tree(out) == {**MODEL_FILES, "sub/vocab.txt": b"[MASK]\n"}
    assert (out / "empty").is_dir()


@pytest.mark.parametrize(
    ("fmt", "entry", "reason"),
    [
        ("tar.gz", file("../evil", b"x"), "'..'"),
        ("tar.gz", file("sub/../../evil", b"x"), "'..'"),
        ("tar.gz", file("/tmp/evil", b"x"), "absolute"),
        ("tar.gz", file("..\\evil", b"x"), "backslash"),
        ("tar.gz", symlink("link", "../evil"), "outside the archive"),
        ("tar.gz", symlink("sub/link", "../../evil"), "outside the archive"),
        ("tar.gz", symlink("link", "/etc/passwd"), "outside the archive"),
        ("tar.gz", hardlink("link", "../evil"), "'..'"),
        ("tar.gz", hardlink("link", "/etc/passwd"), "absolute"),
        ("tar.gz", fifo("pipe"), "special file"),
        ("zip", file("../evil", b"x"), "'..'"),
        ("zip", file("/tmp/evil", b"x"), "absolute"),
        ("zip", symlink("link", "../evil"), "outside the archive"),
        ("zip", symlink("link", "/etc/passwd"), "outside the archive"),
        ("zip", fifo("pipe"), "special file"),
    ],
)
def test_refuses_unsafe_members(tmp_path: Path, fmt: str, entry: Entry, reason: str) -> None:
    with pytest.raises(ModelLoadError, match="unsafe") as info:
        _extract(tmp_path, fmt, [*model_entries(), entry])
    assert reason in str(info.value)
    assert "test archive" in str(info.value)
    assert not list(tmp_path.rglob("evil"))
    assert not list(tmp_path.rglob("pipe"))
    assert not list((tmp_path / "deep" / "out").rglob("link"))


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_links_inside_the_archive_become_copies(tmp_path: Path, fmt: str) -> None:
    entries = [
        *model_entries(),
        symlink("alias.json", "config.json"),
        symlink("sub/up.json", "../config.json"),
        symlink("chain.json", "alias.json"),
    ]
    if fmt == "tar.gz":
        entries.append(hardlink("hard.json", "./config.json"))
    out = _extract(tmp_path, fmt, entries)
    tree = _tree(out)  # asserts no link survived
    config = MODEL_FILES["config.json"]
    assert tree["alias.json"] == tree["sub/up.json"] == tree["chain.json"] == config
    if fmt == "tar.gz":
        assert tree["hard.json"] == config


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([directory("sub"), symlink("to-dir", "sub")], "not a file in the archive"),
        ([symlink("dangling", "missing.json")], "not a file in the archive"),
        ([symlink("a", "b"), symlink("b", "a")], "loop"),
        # a file below a link would be written wherever the link points
        ([symlink("d", "sub"), file("d/evil", b"x")], "conflicting"),
        ([file("d/f", b"x"), symlink("d", "elsewhere")], "conflicting"),
    ],
)
def test_refuses_links_it_cannot_copy(tmp_path: Path, entries: list[Entry], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        _extract(tmp_path, "tar.gz", [*model_entries(), *entries])


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_size_bound(tmp_path: Path, fmt: str) -> None:
    # 4 MiB of zeros compresses to a few KiB: a small bomb
    entries = [*model_entries(), file("padding.bin", bytes(4 * 1024 * 1024))]
    limits = Limits(max_extracted_bytes=1024 * 1024)
    with pytest.raises(ModelLoadError, match="unpacks to more than 1048576 bytes") as info:
        _extract(tmp_path, fmt, entries, limits)
    assert "MASKSERVE_MAX_EXTRACTED_BYTES" in str(info.value)
    written = sum(p.stat().st_size for p in (tmp_path / "deep" / "out").rglob("*") if p.is_file())
    assert written <= limits.max_extracted_bytes


def test_size_bound_counts_copied_links(tmp_path: Path) -> None:
    big = file("big.bin", bytes(600 * 1024))
    entries = [big, symlink("copy.bin", "big.bin")]
    _extract(tmp_path / "a", "tar.gz", entries, Limits(max_extracted_bytes=1300 * 1024))
    with pytest.raises(ModelLoadError, match="unpacks to more than"):
        _extract(tmp_path / "b", "tar.gz", entries, Limits(max_extracted_bytes=1000 * 1024))


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_member_count_bound(tmp_path: Path, fmt: str) -> None:
    entries = [file(f"f{i}", b"") for i in range(20)]
    with pytest.raises(ModelLoadError, match="more than 10 entries"):
        _extract(tmp_path, fmt, entries, Limits(max_members=10))


def test_truncated_tar_gz(tmp_path: Path) -> None:
    data = tar_bytes([*model_entries(), file("noise.bin", NOISE)])
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="is not a readable tar archive"):
        extract_archive(archive, ArchiveKind.TAR, tmp_path, Limits(), label="half.tar.gz")


@pytest.mark.parametrize(
    ("kind", "data"),
    [(ArchiveKind.TAR, gzip.compress(b"no tar", mtime=0)), (ArchiveKind.ZIP, b"PK?")],
    ids=["tar", "zip"],
)
def test_not_an_archive(tmp_path: Path, kind: ArchiveKind, data: bytes) -> None:
    archive = tmp_path / "junk"
    archive.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelLoadError, match=f"junk is not a readable {kind.value} archive"):
        extract_archive(archive, kind, out, Limits(), label="junk")


def test_encrypted_zip_member(tmp_path: Path) -> None:
    # Set the "encrypted" flag a password-protected zip carries, in the local and the central header (zipfile
    # itself only writes unencrypted archives).
    data = bytearray(zip_bytes([file("config.json", b"{}")]))
    data[6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    archive = tmp_path / "model.zip"
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelLoadError, match="not a readable zip archive"):
        extract_archive(archive, ArchiveKind.ZIP, out, Limits(), label="model.zip")


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (model_entries("bert/"), MODEL_FILES),  # one wrapping directory is unwrapped
        (model_entries("./bert/"), MODEL_FILES),
        (model_entries(), MODEL_FILES),
        (
            [*model_entries("bert/"), file("README", b"r")],  # two entries: kept as they are
            {**{f"bert/{k}": v for k, v in MODEL_FILES.items()}, "README": b"r"},
        ),
    ],
)
def test_unpack_into_unwraps_a_single_directory(
    tmp_path: Path, entries: list[Entry], expected: dict[str, bytes]
) -> None:
    archive = tmp_path / "scratch" / "model.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(tar_bytes(entries))
    model = tmp_path / "model"
    model.mkdir()
    unpack_into(archive, ArchiveKind.TAR, model, Limits(), label="m")
    assert _tree(model) == expected
    assert not archive.exists()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("m.tar.gz", ArchiveKind.TAR),
        ("/a/M.TGZ", ArchiveKind.TAR),
        ("m.tar", ArchiveKind.TAR),
        ("m.zip", ArchiveKind.ZIP),
        ("m.safetensors", None),
        ("m.gz", None),
        ("", None),
    ],
)
def test_archive_kind(name: str, kind: ArchiveKind | None) -> None:
    assert archive_kind(name) is kind


def test_content_type_kind() -> None:
    assert content_type_kind("application/gzip") is ArchiveKind.TAR
    assert content_type_kind("application/zip; charset=binary") is ArchiveKind.ZIP
    assert content_type_kind("application/octet-stream") is None
    assert content_type_kind(None) is None
