"""Reading a job's input as a stream of records: JSON Lines, CSV or Parquet (by the file's extension; ``-``
reads JSON Lines from stdin), never the whole file at once.

A record is one text, with its id (``--id_column``, else its number: 1 for the first record) and, in JSON
Lines, its own ``parameters``. A JSON Lines line may be an object (``{"inputs": ..., "parameters": ...}``, or
any object with the text in ``--text_column``) or a plain JSON string. A line that cannot be read becomes a
record that carries its error, so the job reports it and goes on.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskserve.errors import clip

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
# The text is looked for in these columns (in this order) when --text_column is not given.
TEXT_COLUMNS = ("inputs", "text")
_PARQUET_BATCH = 1024


class UsageError(Exception):
    """The job cannot start: an input that cannot be read, a column that is not there (exit status 2)."""


@dataclass(frozen=True)
class Record:
    number: int
    id: Any
    text: str | None = None
    params: Any = None
    error: str | None = None


@dataclass(frozen=True)
class InputSpec:
    path: str
    text_column: str | None = None
    id_column: str | None = None

    @property
    def stdin(self) -> bool:
        return self.path == "-"

    @property
    def format(self) -> str:
        if self.stdin:
            return "jsonl"
        suffix = Path(self.path).suffix.lower()
        if suffix not in FORMATS:
            raise UsageError(
                f"cannot tell the format of {self.path}: name it .jsonl, .csv or .parquet (or read JSON "
                "Lines from stdin with --input -)"
            )
        return FORMATS[suffix]


def check(spec: InputSpec) -> None:
    """Usage errors, before any work: the input cannot be opened, or a column it must have is not there."""
    fmt = spec.format
    if not spec.stdin and not Path(spec.path).is_file():
        raise UsageError(f"--input {spec.path} is not a readable file")
    if fmt == "csv":
        with open(spec.path, newline="", encoding="utf-8") as handle:
            columns = next(csv.reader(handle), [])
        _check_columns(spec, columns)
    elif fmt == "parquet":
        _check_columns(spec, _parquet(spec).schema_arrow.names)


def _check_columns(spec: InputSpec, columns: list[str]) -> None:
    for flag, column in (("--text_column", spec.text_column), ("--id_column", spec.id_column)):
        if column is not None and column not in columns:
            raise UsageError(f"{flag} {column!r} is not a column of {spec.path}; it has {', '.join(columns)}")
    if spec.text_column is None and not any(c in columns for c in TEXT_COLUMNS):
        raise UsageError(
            f"{spec.path} has no column {' or '.join(map(repr, TEXT_COLUMNS))}: name the text's with "
            f"--text_column (its columns: {', '.join(columns)})"
        )


def _parquet(spec: InputSpec) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UsageError("Parquet needs pyarrow: pip install 'maskserve[parquet]'") from exc
    try:
        return pq.ParquetFile(spec.path)
    except Exception as exc:
        raise UsageError(f"--input {spec.path} is not a Parquet file: {exc}") from exc


def count(spec: InputSpec) -> int | None:
    """How many records the input holds, for the progress bar (None when it cannot tell cheaply)."""
    if spec.stdin:
        return None
    fmt = spec.format
    if fmt == "parquet":
        rows: int = _parquet(spec).metadata.num_rows
        return rows
    lines = 0
    with open(spec.path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
    # A CSV's header; a quoted field may hold line breaks, so this is an estimate there.
    return max(0, lines - 1) if fmt == "csv" else lines


def read(spec: InputSpec, skip: int = 0) -> Iterator[Record]:
    """The records after the first ``skip`` (a resumed job's), in order."""
    fmt = spec.format
    rows = _jsonl(spec) if fmt == "jsonl" else _csv(spec) if fmt == "csv" else _parquet_rows(spec)
    for number, row in enumerate(rows, start=1):
        if number > skip:
            yield to_record(spec, number, row)


def parse_line(line: str) -> Any:
    """One JSON Lines line: its value, or a Record carrying why it cannot be read."""
    try:
        return json.loads(line)
    except ValueError as exc:
        return Record(0, None, error=f"the line is not valid JSON: {exc}")


def _jsonl(spec: InputSpec) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:
        lines = _stdin_lines() if spec.stdin else stack.enter_context(open(spec.path, encoding="utf-8"))
        for line in lines:
            if line.strip():  # a blank line holds no record
                yield parse_line(line)


def _stdin_lines() -> Iterator[str]:
    """stdin's lines, read from its file descriptor: a reader blocked on the next line holds no lock of
    Python's stdin object, which a process stopping meanwhile would otherwise wait for at exit."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    while chunk := os.read(sys.stdin.fileno(), 1 << 16):
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        yield from (line + "\n" for line in complete)
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _csv(spec: InputSpec) -> Iterator[dict[str, Any]]:
    with open(spec.path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _parquet_rows(spec: InputSpec) -> Iterator[dict[str, Any]]:
    for batch in _parquet(spec).iter_batches(batch_size=_PARQUET_BATCH):
        yield from batch.to_pylist()


def to_record(spec: InputSpec, number: int, row: Any) -> Record:
    """A row of the input (a JSON Lines value, a CSV or Parquet row as a dict) as the job's record."""
    if isinstance(row, Record):  # an unreadable line: its number now known
        return Record(number, number, error=row.error)
    if isinstance(row, str):
        return Record(number, number, text=row)
    if not isinstance(row, dict):
        return Record(number, number, error=f"a record must be a text or an object, got {clip(repr(row))}")
    ident = row.get(spec.id_column, number) if spec.id_column is not None else number
    column = spec.text_column or next((c for c in TEXT_COLUMNS if c in row), TEXT_COLUMNS[0])
    text = row.get(column)
    if not isinstance(text, str):
        found = "no text" if text is None else f"{type(text).__name__} {clip(repr(text))}"
        return Record(number, ident, error=f"'{column}' must be one text (a string), got {found}")
    return Record(number, ident, text=text, params=row.get("parameters"))


def parse_parameters(text: str | None) -> dict[str, Any] | None:
    """``--parameters`` (a JSON object)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--parameters must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"--parameters must be a JSON object, got {clip(text)}")
    return value
