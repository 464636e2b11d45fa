"""Logging: JSON lines when output is not a terminal, readable lines when it is.

Every line logged while a request is served carries its `request_id`,
and bearer tokens are masked in the lines of every logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


# The id of the request being served in this thread, set by the request-id middleware.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# Tokens this service issues, and whatever follows "Bearer" in a header value.
_TOKEN = re.compile(r"sntry[us]_[A-Za-z0-9+/=_-]+|(?<=Bearer )\S+", re.IGNORECASE)
MASK = "[token]"


class RequestContextFilter(logging.Filter):
    """Add the current request id to records that lack one, and mask tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        record.msg = mask_tokens(record.getMessage())
        record.args = None
        for key, value in _extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, mask_tokens(value))
        return True


def mask_tokens(text: str) -> str:
    return _TOKEN.sub(MASK, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = mask_tokens(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value}" for key, value in _extra_fields(record).items())
        line = (
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
            f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {fields}"
        ).rstrip()
        if record.exc_info:
            line += "\n" + mask_tokens(self.formatException(record.exc_info))
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """Send the service's logs to stderr once per process."""
    root = logging.getLogger()
    # gunicorn.conf.py may have installed the handler already.
    if any(isinstance(f, RequestContextFilter) for h in root.handlers for f in h.filters):
        return
    root.addHandler(log_handler())
    root.setLevel(level)


def log_handler() -> logging.Handler:
    """Return a stderr handler with this service's format, filter and masking."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if sys.stderr.isatty() else JsonFormatter())
    handler.addFilter(RequestContextFilter())
    return handler


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
