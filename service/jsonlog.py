"""Log set-up, and JSON log lines (BONECDS_LOG_FORMAT=json): one object per line with time,
level, logger, message and, for hook calls, the fields the caller passed with `extra=` (hook,
hookInstance, service, rules, ms).

Only the allow-listed extra keys are written, so nothing else attached to a record (bodies, tokens,
patient data) can leak into the log.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

import orjson

EXTRA_FIELDS = ("hook", "hookInstance", "service", "rules", "ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object]  # str values, and the extra fields as the caller passed them
        line = {
            "time": (
                datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exception"] = (
                record.exc_info[0].__name__ if record.exc_info[0] else None
            )  # the type only, no text
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Text lines, or one JSON object per line when `log_format` (default: BONECDS_LOG_FORMAT) is
    "json"."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if (log_format or os.environ.get("BONECDS_LOG_FORMAT", "text")).strip().lower() == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # httpx logs full request URLs, which carry patient ids: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
