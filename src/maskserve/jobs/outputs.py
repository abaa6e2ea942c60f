"""Writing a job's output so that a job killed at any point (SIGKILL included) resumes with nothing lost and
nothing written twice.

Records are committed in order, a chunk at a time: the chunk's output is written and flushed to disk
(fsync), then a progress file beside the output (``OUTPUT.progress``, replaced atomically) records how many
records and how much output are done. A resumed job trusts the progress file alone: JSON Lines output is
cut back to the length it records (dropping a chunk written after it), Parquet parts past its count are
deleted, and the input is read again from the next record. When the job finishes, the progress file goes;
Parquet parts (``OUTPUT.parts/``, one file per chunk) are first joined into the output, written aside and
renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from maskserve.jobs.records import UsageError

OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass
class Progress:
    """What the progress file holds."""

    job: dict[str, Any]
    records: int = 0
    failed: int = 0
    # JSON Lines: bytes of output; Parquet: part files written.
    written: int = 0
    joined: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def progress_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress")


def read_progress(output: Path) -> Progress | None:
    path = progress_path(output)
    if not path.is_file():
        return None
    return Progress(**json.loads(path.read_text(encoding="utf-8")))


def write_progress(output: Path, progress: Progress) -> None:
    path = progress_path(output)
    scratch = path.with_name(path.name + ".tmp")
    with scratch.open("w", encoding="utf-8") as handle:
        json.dump(asdict(progress), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer(Protocol):
    def write(self, rows: Sequence[tuple[Any, str | None, str | None]]) -> int:
        """Write (id, answer as JSON text, error) rows durably; return the new ``written`` count."""
        ...

    def finish(self) -> None:
        """Put the whole output in place (Parquet: join the parts); the parts stay until ``cleanup``."""
        ...

    def cleanup(self) -> None: ...


def output_format(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"cannot tell the format of --output {output}: name it .jsonl or .parquet")
    return OUTPUT_FORMATS[suffix]


class JsonLinesWriter:
    """A JSON object a line: ``{"id": ..., "answer": <the HF route's JSON>}`` or ``{"id": ..., "error"}``."""

    def __init__(self, output: Path, written: int) -> None:
        self.output = output
        with output.open("ab") as handle:  # a resumed job: drop what was written after the last commit
            handle.truncate(written)
        self.written = written

    def write(self, rows: Sequence[tuple[Any, str | None, str | None]]) -> int:
        lines = []
        for ident, answer, error in rows:
            head = '{"id":' + json.dumps(ident, ensure_ascii=False)
            tail = f',"answer":{answer}}}' if error is None else f',"error":{json.dumps(error)}}}'
            lines.append(head + tail + "\n")
        data = "".join(lines).encode("utf-8")
        with self.output.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.written += len(data)
        return self.written

    def finish(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class ParquetWriter:
    """Columns ``id``, ``answer`` (the HF route's JSON, as text) and ``error``: a part per chunk while the
    job runs, joined into the output when it ends."""

    def __init__(self, output: Path, written: int) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise UsageError("Parquet output needs pyarrow: pip install 'maskserve[parquet]'") from exc
        self.output = output
        self.parts = output.with_name(output.name + ".parts")
        self.parts.mkdir(exist_ok=True)
        for stale in self.parts.iterdir():  # parts past the last commit (and a half-written one)
            if not stale.name.endswith(".parquet") or int(stale.name.split(".")[0]) >= written:
                stale.unlink()
        self.written = written

    def write(self, rows: Sequence[tuple[Any, str | None, str | None]]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "id": pa.array([str(r[0]) for r in rows], pa.string()),
                "answer": pa.array([r[1] for r in rows], pa.string()),
                "error": pa.array([r[2] for r in rows], pa.string()),
            }
        )
        part = self.parts / f"{self.written:08d}.parquet"
        scratch = part.with_suffix(".tmp")
        pq.write_table(table, scratch)
        with scratch.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(scratch, part)
        _sync_dir(self.parts)
        self.written += 1
        return self.written

    def finish(self) -> None:
        import pyarrow.parquet as pq

        parts = sorted(self.parts.glob("*.parquet"))
        scratch = self.output.with_name(self.output.name + ".tmp")
        writer = None
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(scratch, table.schema)
            writer.write_table(table)
        if writer is None:  # no record at all: an empty table
            import pyarrow as pa

            schema = pa.schema([("id", pa.string()), ("answer", pa.string()), ("error", pa.string())])
            pq.write_table(pa.table({n: pa.array([], pa.string()) for n in schema.names}), scratch)
        else:
            writer.close()
        os.replace(scratch, self.output)
        _sync_dir(self.output.parent)

    def cleanup(self) -> None:
        shutil.rmtree(self.parts, ignore_errors=True)


def open_writer(output: Path, written: int) -> Writer:
    if output_format(output) == "parquet":
        return ParquetWriter(output, written)
    return JsonLinesWriter(output, written)
