"""Structured logs: JSON lines carrying request and trace ids, scrubbed end to end."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import random
import re
import secrets
import uuid
from collections.abc import Iterator

import pytest

from governance.observability import (
    REQUEST_ID,
    JsonFormatter,
    Scrubber,
    ScrubbingFilter,
    configure_logging,
)
from governance.observability.logs import TRACE_IDS, UVICORN_LOGGERS, TollhouseLogHandler

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"


def tollhouse_key() -> str:
    return f"th-{secrets.token_hex(4)}-{secrets.token_urlsafe(24)}"


class Capture:
    """A logger of its own whose lines, formatted by ``JsonFormatter``, land in a buffer."""

    def __init__(self, scrubber: Scrubber) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter(scrubber))
        self.logger = logging.getLogger(f"tollhouse.test.{uuid.uuid4().hex[:8]}")
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def lines(self) -> list[dict[str, object]]:
        text = self.stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]

    def one(self) -> dict[str, object]:
        (entry,) = self.lines()
        return entry

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    captured = Capture(Scrubber())
    yield captured
    captured.close()


def test_a_line_is_one_json_object_with_the_basic_fields(capture: Capture) -> None:
    before = dt.datetime.now(dt.UTC)
    capture.logger.warning("policy %s denied\nsecond line", "p-1")
    entry = capture.one()
    assert entry["level"] == "WARNING"
    assert entry["logger"] == capture.logger.name
    assert entry["message"] == "policy p-1 denied\nsecond line"
    assert isinstance(entry["time"], str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    logged = dt.datetime.fromisoformat(entry["time"])
    assert before - dt.timedelta(seconds=1) <= logged <= dt.datetime.now(dt.UTC)
    assert "request_id" not in entry
    assert "trace_id" not in entry
    assert "span_id" not in entry
    assert "exception" not in entry


def test_arguments_that_do_not_fit_still_give_a_scrubbed_line() -> None:
    # Formatted directly: through a logger, pytest's own capture handler would fail the test.
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "user %s %d", (EMAIL,), None)
    message = json.loads(JsonFormatter(Scrubber()).format(record))["message"]
    assert message == "user %s %d (arguments that do not fit the format: ('[EMAIL_ADDRESS]',))"


def test_time_is_rfc3339_utc_with_milliseconds() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", (), None)
    record.created = dt.datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=dt.UTC).timestamp()
    entry = json.loads(JsonFormatter(Scrubber()).format(record))
    assert entry["time"] == "2026-11-21T10:00:00.123Z"


def test_message_and_args_are_scrubbed(capture: Capture) -> None:
    key = tollhouse_key()
    capture.logger.info(f"key {key} used by %s from %s", EMAIL, PHONE)
    message = capture.one()["message"]
    assert message == f"key {key[:12]}[SECRET] used by [EMAIL_ADDRESS] from [PHONE_NUMBER]"


def test_exceptions_are_formatted_and_scrubbed(capture: Capture) -> None:
    key = tollhouse_key()
    try:
        raise ValueError(f"upstream refused {key} for {EMAIL}")
    except ValueError:
        capture.logger.exception("call failed")
    entry = capture.one()
    exception = entry["exception"]
    assert isinstance(exception, str)
    assert exception.startswith("Traceback (most recent call last):")
    assert "ValueError: upstream refused th-" in exception
    assert key not in exception
    assert EMAIL not in exception
    assert "[EMAIL_ADDRESS]" in exception


def test_extras_are_kept_when_scalar_and_scrubbed(capture: Capture) -> None:
    key = tollhouse_key()
    capture.logger.info(
        "done",
        extra={
            "principal": "app-checkout",
            "user_email": EMAIL,
            "authorization": f"Bearer {key}",
            "status": 200,
            "latency_ms": 12.5,
            "cached": False,
            "nothing": None,
            "card_number": 4111111111111111,
            "big": 2**70,
            "headers": {"x-api-key": key},
            "tags": [EMAIL],
        },
    )
    entry = capture.one()
    assert entry["principal"] == "app-checkout"
    assert entry["user_email"] == "[EMAIL_ADDRESS]"
    assert entry["authorization"] == f"Bearer {key[:12]}[SECRET]"
    assert entry["status"] == 200
    assert entry["latency_ms"] == 12.5
    assert entry["cached"] is False
    assert entry["card_number"] == "[CREDIT_CARD]"
    assert entry["big"] == str(2**70)
    for left_out in ("nothing", "headers", "tags"):
        assert left_out not in entry
    line = capture.stream.getvalue()
    assert key not in line
    assert EMAIL not in line


def test_standard_record_attributes_are_not_extras(capture: Capture) -> None:
    capture.logger.info("hello %s", "world", extra={"route": "/v1/chat/completions"})
    entry = capture.one()
    assert set(entry) == {"time", "level", "logger", "message", "route"}


def test_extras_do_not_overwrite_the_fields(capture: Capture) -> None:
    capture.logger.info("real", extra={"level": "FAKE", "time": "never", "logger": "x"})
    entry = capture.one()
    assert entry["level"] == "INFO"
    assert entry["logger"] == capture.logger.name
    assert entry["time"] != "never"


def test_request_id_comes_from_the_context(capture: Capture) -> None:
    request_id = f"req_{uuid.uuid4().hex}"
    token = REQUEST_ID.set(request_id)
    try:
        capture.logger.info("inside")
    finally:
        REQUEST_ID.reset(token)
    capture.logger.info("outside")
    inside, outside = capture.lines()
    assert inside["request_id"] == request_id
    assert "request_id" not in outside


def test_trace_and_span_ids_come_from_the_request_span(capture: Capture) -> None:
    trace_id, span_id = random.getrandbits(128), random.getrandbits(64)
    token = TRACE_IDS.set((trace_id, span_id))
    try:
        capture.logger.info("in a span")
    finally:
        TRACE_IDS.reset(token)
    capture.logger.info("after it")
    inside, after = capture.lines()
    assert inside["trace_id"] == format(trace_id, "032x")
    assert inside["span_id"] == format(span_id, "016x")
    assert re.fullmatch(r"[0-9a-f]{32}", str(inside["trace_id"]))
    assert re.fullmatch(r"[0-9a-f]{16}", str(inside["span_id"]))
    assert "trace_id" not in after
    assert "span_id" not in after


def test_scrubbing_filter_rewrites_the_record() -> None:
    key = tollhouse_key()
    try:
        raise RuntimeError(f"bad {key}")
    except RuntimeError as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "mail %s", (EMAIL,), exc_info)
    assert ScrubbingFilter(Scrubber()).filter(record) is True
    assert record.msg == "mail [EMAIL_ADDRESS]"
    assert record.args == ()
    assert record.exc_info is None
    assert record.exc_text is not None
    assert "RuntimeError: bad th-" in record.exc_text
    assert key not in record.exc_text
    assert record.__dict__["request_id"] == "-"
    assert key not in logging.Formatter().format(record)


def test_scrubbing_filter_survives_arguments_that_do_not_fit() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s and %s", (EMAIL,), None)
    assert ScrubbingFilter(Scrubber()).filter(record) is True
    assert EMAIL not in record.getMessage()


# -- configure_logging, on the real root logger -------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger and uvicorn's loggers, put back as they were afterwards."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in UVICORN_LOGGERS
    }
    yield root
    for handler in root.handlers[:]:
        if handler not in saved_root[0]:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate) in saved_uvicorn.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def test_configuring_twice_leaves_one_handler(root_logging: logging.Logger) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    handler = configure_logging(level="debug", stream=second)
    ours = [h for h in root_logging.handlers if isinstance(h, TollhouseLogHandler)]
    assert ours == [handler]
    assert root_logging.level == logging.DEBUG
    logging.getLogger("tollhouse.test.twice").debug("once %s", EMAIL)
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert json.loads(line)["message"] == "once [EMAIL_ADDRESS]"


def test_uvicorn_lines_go_through_the_root_handler(root_logging: logging.Logger) -> None:
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)  # servers started by earlier tests may have raised it
    own = io.StringIO()
    access.addHandler(logging.StreamHandler(own))  # as uvicorn's own config does
    access.propagate = False
    stream = io.StringIO()
    key = tollhouse_key()
    configure_logging(stream=stream, scrubber=Scrubber())
    for name in UVICORN_LOGGERS:
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True
    path = f"/v1?api_key={key}"
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    assert own.getvalue() == ""
    entry = json.loads(stream.getvalue())
    assert entry["logger"] == "uvicorn.access"
    assert entry["message"] == f'127.0.0.1:5000 - "GET /v1?api_key={key[:12]}[SECRET] HTTP/1.1" 200'
    access.setLevel(level)


def test_text_format_is_scrubbed_and_carries_the_request_id(
    root_logging: logging.Logger,
) -> None:
    stream = io.StringIO()
    upstream_key = f"upstream-{secrets.token_hex(8)}"
    configure_logging(fmt="text", scrubber=Scrubber([upstream_key]), stream=stream)
    logger = logging.getLogger("tollhouse.test.text")
    token = REQUEST_ID.set("req_0123abcd0123abcd0123abcd0123abcd")
    try:
        try:
            raise ConnectionError(f"upstream rejected {upstream_key}")
        except ConnectionError:
            logger.exception("forwarding for %s failed", EMAIL)
    finally:
        REQUEST_ID.reset(token)
    logger.info("no request")
    text = stream.getvalue()
    assert upstream_key not in text
    assert EMAIL not in text
    first, *traceback, last = text.splitlines()
    assert first.endswith(
        "ERROR tollhouse.test.text [req_0123abcd0123abcd0123abcd0123abcd] "
        "forwarding for [EMAIL_ADDRESS] failed"
    )
    assert traceback[-1] == "ConnectionError: upstream rejected [SECRET]"
    assert last.endswith("INFO tollhouse.test.text [-] no request")


def test_an_unknown_level_or_format_is_refused(root_logging: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging(level="LOUD")
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging(fmt="xml")  # type: ignore[arg-type]
    assert not [h for h in root_logging.handlers if isinstance(h, TollhouseLogHandler)]
