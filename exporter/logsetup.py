"""Log output in the two formats Prometheus exporters use: logfmt (default) and JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar

LEVELS = ("debug", "info", "warn", "error")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """ts, level, logger, msg, then whatever `extra=` the caller passed."""
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": "warn" if record.levelname == "WARNING" else record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["err"] = logging.Formatter().formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    """key=value pairs, values quoted when they hold spaces, quotes or '='."""

    _NEEDS_QUOTES: ClassVar[set[str]] = set(' "=\n\t')

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={self._value(v)}" for k, v in _fields(record).items())

    def _value(self, value: Any) -> str:
        text = str(value)
        if text == "" or self._NEEDS_QUOTES & set(text):
            return json.dumps(text, ensure_ascii=False)  # quoted, as typed: "—" stays "—"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Configure the root logger once, writing to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if level == "warn" else level.upper())
