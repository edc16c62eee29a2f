"""Log lines: plain text (the default), or one JSON object a line with LOG_FORMAT=json.

Every request gets an id (web/security.py: SecurityHeaders), sent back as `X-Request-Id` and
written on its access line; any other line logged while the request is answered carries it too
(in JSON as `request_id`), so a complaint's id finds every line of it.

What goes in is already redacted where it is written (paths without link tokens, masked phone
numbers): this module only shapes the line; JSON escapes control characters by itself.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import secrets
import sys
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
ACCESS_FIELDS = ("method", "path", "status", "ms")  # the access line's own fields (`extra=`)


def new_request_id() -> str:
    """12 characters of [A-Za-z0-9_-]: unique enough to find a request, and never the long run
    of digits the personal-data scan of the logs would take for a phone number."""
    return secrets.token_urlsafe(9)


class TextFormatter(logging.Formatter):
    """logging.Formatter(TEXT_FORMAT), its asctime's strftime done once a second, not once a line."""

    _second: int | None = None
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._stamp, record.msecs)


class JsonFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, message, request_id; for an access line also
    method, path, status, ms; a traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name in ACCESS_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """The root logger's one handler, on standard error, in the format asked for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(old)  # basicConfig's, or a previous call's; others (tests') stay
    root.addHandler(handler)
    root.setLevel(level)
