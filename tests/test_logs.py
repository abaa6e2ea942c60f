from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from maskserve import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the tests that follow."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    routed = [logging.getLogger(name) for name in logs.ROUTED_LOGGERS]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in routed]
    yield
    for handler in root.handlers:
        if handler not in saved_root[0]:
            handler.close()
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def configured(fmt: logs.LogFormat, level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    logs.configure_logging(level, fmt, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_time_level_logger_message_and_fields() -> None:
    stream = configured("json")
    logging.getLogger("maskserve.test").info("served %d", 3, extra={"fields": {"status": 200, "ms": 1.5}})
    (line,) = lines(stream)
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "maskserve.test"
    assert record["message"] == "served 3"
    assert record["status"] == 200
    assert record["ms"] == 1.5
    assert "request_id" not in record
    stamp = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)


def test_json_lines_carry_the_current_request_id() -> None:
    stream = configured("json")
    token = logs.request_id.set("abc123")
    try:
        logging.getLogger("maskserve.test").warning("inside")
    finally:
        logs.request_id.reset(token)
    logging.getLogger("maskserve.test").warning("outside")
    inside, outside = (json.loads(line) for line in lines(stream))
    assert inside["request_id"] == "abc123"
    assert "request_id" not in outside


def test_fields_cannot_forge_the_core_keys() -> None:
    stream = configured("json")
    logging.getLogger("maskserve.test").info("real", extra={"fields": {"message": "fake", "level": "X"}})
    record = json.loads(lines(stream)[0])
    assert (record["message"], record["level"]) == ("real", "INFO")


def test_values_json_cannot_represent_are_written_as_text() -> None:
    stream = configured("json")
    logging.getLogger("maskserve.test").info("x", extra={"fields": {"odd": {1}}})
    assert json.loads(lines(stream)[0])["odd"] == "{1}"


def test_exceptions_become_one_string_field() -> None:
    stream = configured("json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("maskserve.test").exception("failed")
    (line,) = lines(stream)  # the traceback stays inside the one JSON line
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "RuntimeError: boom" in record["exc_info"]
    assert "Traceback" in record["exc_info"]


def test_text_lines_show_the_request_id_and_fields() -> None:
    stream = configured("text")
    token = logs.request_id.set("req-7")
    try:
        fields = {"request_id": "req-7", "route": "/x", "ua": "a b"}
        logging.getLogger("maskserve.access").info("GET /x 200", extra={"fields": fields})
    finally:
        logs.request_id.reset(token)
    (line,) = lines(stream)
    assert " INFO maskserve.access [req-7]: GET /x 200 " in line
    assert line.endswith(': GET /x 200 route=/x ua="a b"')  # the id once, in the brackets


def test_level_filters() -> None:
    stream = configured("json", level="warning")
    logging.getLogger("maskserve.test").info("quiet")
    logging.getLogger("maskserve.test").warning("loud")
    assert [json.loads(line)["message"] for line in lines(stream)] == ["loud"]


def test_configuring_twice_replaces_the_handler() -> None:
    configured("text")
    stream = configured("json")
    logging.getLogger("maskserve.test").info("once")
    assert len(lines(stream)) == 1
    ours = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h.formatter, logs.JsonFormatter | logs.TextFormatter)
    ]
    assert len(ours) == 1


def test_handlers_installed_by_others_are_kept() -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    configured("json")
    configured("json")
    assert other in logging.getLogger().handlers


def test_uvicorn_lines_go_through_the_root_handler() -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn_error.propagate = False
    stream = configured("json")
    uvicorn_error.info("Uvicorn running")
    assert uvicorn_error.handlers == []
    assert json.loads(lines(stream)[0]) | {"time": None} == {
        "time": None,
        "level": "INFO",
        "logger": "uvicorn.error",
        "message": "Uvicorn running",
    }


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        logs.configure_logging("chatty", "json")
    with pytest.raises(ValueError, match="unknown log format"):
        logs.configure_logging("info", "xml")  # type: ignore[arg-type]


def test_redact_headers_hides_credentials() -> None:
    raw = [
        (b"Authorization", b"Bearer secret-key"),
        (b"proxy-authorization", b"Basic c2VjcmV0"),
        (b"X-API-Key", b"k1"),
        (b"cookie", b"session=s"),
        (b"accept", b"a/b"),
        (b"accept", b"c/d"),
    ]
    redacted = logs.redact_headers(raw)
    assert redacted == {
        "authorization": "[redacted]",
        "proxy-authorization": "[redacted]",
        "x-api-key": "[redacted]",
        "cookie": "[redacted]",
        "accept": "a/b, c/d",
    }
    assert "secret" not in json.dumps(redacted)
    assert logs.redact_headers({"Authorization": "Bearer x", "Host": "h"}) == {
        "authorization": "[redacted]",
        "host": "h",
    }
