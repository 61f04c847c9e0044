"""Structured logs: one JSON object per line, scrubbed, tied to the request and the trace.

Every line goes through the ``Scrubber`` on its way out, whatever logged it (Tollhouse,
uvicorn, a library), because ``configure_logging`` puts the one scrubbing handler on the
root logger and routes uvicorn's loggers to it. Lines carry the request id the proxy sets
in ``REQUEST_ID`` and the trace and span ids it sets in ``TRACE_IDS``, so a log line, a
span and an audit record of the same request can be found from one another.
"""

from __future__ import annotations

import contextvars
import logging
import math
import sys
import time
from typing import Literal, TextIO

import orjson

from governance.observability.scrub import Scrubber

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tollhouse_request_id", default=None
)
"""The id of the request being served; the proxy sets it per request (a context key, so
concurrent requests each see their own)."""

TRACE_IDS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "tollhouse_trace_ids", default=None
)
"""The trace id and span id of the request's server span, while one is recorded."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# Attributes every LogRecord has (plus those Formatter.format adds): never copied as extras.
# uvicorn's ``color_message`` (the message with terminal colours) is left out too.
_RECORD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",
    }
)
_JSON_FIELDS = frozenset(
    {
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "trace_id",
        "span_id",
        "exception",
        "stack",
    }
)
_INT64 = range(-(2**63), 2**64)  # what orjson can write as a JSON integer
_CARD_SIZED = 10**12  # integers this large could be card numbers: scrubbed as text


def _timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-21T10:00:00.123Z``."""
    # Truncate, as logging's own msecs does: a rounded time could lie after the event.
    # The microsecond nudge keeps a float such as 0.12299999... at 123.
    seconds, millis = divmod(math.floor(created * 1000 + 0.001), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _message(record: logging.LogRecord) -> str:
    """The record's message with its arguments, unscrubbed. A call whose arguments do not
    fit its format still gets a line: left to logging, the error report would print the
    arguments unscrubbed (and from a filter, the error would reach the caller)."""
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):
        return f"{record.msg} (arguments that do not fit the format: {record.args!r})"


def _trace_ids() -> tuple[str, str] | None:
    """The current server span's trace and span ids in W3C hex, or None outside one."""
    ids = TRACE_IDS.get()
    if ids is None:
        return None
    return format(ids[0], "032x"), format(ids[1], "016x")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; every free-text field is scrubbed.

    Fields: time, level, logger, message, request_id, trace_id, span_id, exception (and
    stack, when asked for), then the caller's ``extra`` fields that are JSON scalars.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        scrub = self._scrubber.scrub
        entry: dict[str, object] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(_message(record)),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = scrub(request_id)
        ids = _trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:  # already formatted, e.g. by ScrubbingFilter
            entry["exception"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        for name, value in record.__dict__.items():
            if name in _RECORD_ATTRIBUTES or name in _JSON_FIELDS or name in entry:
                continue
            field = self._extra(value)
            if field is not None:
                entry[name] = field
        return orjson.dumps(entry).decode()

    def _extra(self, value: object) -> object:
        """An ``extra`` value as it may be written, or None to leave it out: strings
        scrubbed; numbers, booleans kept; anything else (including None) left out."""
        if isinstance(value, str):
            return self._scrubber.scrub(value)
        if isinstance(value, bool | float):
            return value
        if isinstance(value, int):
            if abs(value) < _CARD_SIZED:
                return value
            text = str(value)
            scrubbed = self._scrubber.scrub(text)
            return value if scrubbed == text and value in _INT64 else scrubbed
        return None


class ScrubbingFilter(logging.Filter):
    """For the plain-text format: scrubs a record in place before any handler formats it.

    The message is formatted and scrubbed into ``msg`` (``args`` cleared); an exception is
    formatted and scrubbed into ``exc_text`` (``exc_info`` cleared so that the formatter
    prints the scrubbed text); the record gains ``request_id`` (``-`` when there is none).
    """

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrubber = scrubber
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        scrub = self._scrubber.scrub
        record.msg = scrub(_message(record))
        record.args = ()
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        request_id = REQUEST_ID.get()
        record.__dict__["request_id"] = "-" if request_id is None else scrub(request_id)
        return True


class TollhouseLogHandler(logging.StreamHandler[TextIO]):
    """The root handler ``configure_logging`` installs; its class marks it for removal."""


def configure_logging(
    level: str = "INFO",
    fmt: Literal["json", "text"] = "json",
    scrubber: Scrubber | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send all logging through one scrubbing handler on the root logger; return it.

    Replaces the handler an earlier call installed (so calling twice does not print lines
    twice), sets the root level, and makes uvicorn's loggers drop their own handlers and
    propagate to the root, so that their lines are scrubbed and formatted like ours.
    ``stream`` defaults to the ``sys.stderr`` of the moment.
    """
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(levels)}")
    if fmt not in ("json", "text"):
        raise ValueError(f"unknown log format {fmt!r}: use 'json' or 'text'")
    scrubber = scrubber if scrubber is not None else Scrubber()
    handler = TollhouseLogHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(scrubber))
    else:
        handler.addFilter(ScrubbingFilter(scrubber))
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, TollhouseLogHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
