"""Reading a job's input: JSON Lines (texts, objects, per-record parameters, a bad line among good ones),
CSV and Parquet, streamed; and the usage errors found before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maskserve.jobs.records import InputSpec, Record, UsageError, check, count, parse_parameters, read


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_lines_texts_objects_and_a_bad_line(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "in.jsonl",
        [
            json.dumps("a [MASK] ."),
            json.dumps({"inputs": "b [MASK] .", "parameters": {"top_k": 2}, "key": "k2"}),
            "",  # a blank line holds no record
            "{not json",
            json.dumps({"text": "c [MASK] ."}),
            json.dumps(7),
        ],
    )
    records = list(read(InputSpec(str(path))))
    assert records[0] == Record(1, 1, text="a [MASK] .")
    assert records[1] == Record(2, 2, text="b [MASK] .", params={"top_k": 2})
    assert records[2].number == 3
    assert records[2].error is not None
    assert "not valid JSON" in records[2].error
    assert records[3] == Record(4, 4, text="c [MASK] .")  # "text" when there is no "inputs"
    assert records[4].error == "a record must be a text or an object, got 7"
    assert count(InputSpec(str(path))) == 6  # lines, for the progress bar
    ids = [r.id for r in read(InputSpec(str(path), id_column="key"))]
    assert ids[1] == "k2"
    assert [r.number for r in read(InputSpec(str(path)), skip=3)] == [4, 5]  # a resumed job's


def test_csv_and_parquet_by_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text('id,sentence\n7,"a [MASK], here"\n8,b [MASK]\n', encoding="utf-8")
    spec = InputSpec(str(csv_path), text_column="sentence", id_column="id")
    check(spec)
    assert [(r.id, r.text) for r in read(spec)] == [("7", "a [MASK], here"), ("8", "b [MASK]")]
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["x [MASK]", None], "n": [1, 2]}), parquet)
    records = list(read(InputSpec(str(parquet), id_column="n")))
    assert records[0] == Record(1, 1, text="x [MASK]")
    assert records[1].error == "'text' must be one text (a string), got no text"
    assert count(InputSpec(str(parquet))) == 2


@pytest.mark.parametrize(
    ("name", "content", "spec", "message"),
    [
        ("in.txt", "a", {}, "cannot tell the format"),
        ("missing.jsonl", None, {}, "is not a readable file"),
        ("in.csv", "a,b\n1,2\n", {}, "has no column 'inputs' or 'text'"),
        ("in.csv", "text\nx\n", {"id_column": "key"}, "--id_column 'key' is not a column"),
    ],
)
def test_usage_errors_before_any_work(
    tmp_path: Path, name: str, content: str | None, spec: dict[str, str], message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        check(InputSpec(str(path), **spec))


def test_job_parameters_are_a_json_object() -> None:
    assert parse_parameters('{"top_k": 3}') == {"top_k": 3}
    assert parse_parameters(None) is None
    with pytest.raises(UsageError, match="must be a JSON object"):
        parse_parameters("[1]")
