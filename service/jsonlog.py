"""JSON log lines (BONECDS_LOG_FORMAT=json): one object per line with time, level, logger, message
and, for hook calls, the fields the caller passed with `extra=` (hook, hookInstance, service, rules,
ms).

Only the allow-listed extra keys are written, so nothing else attached to a record (bodies, tokens,
patient data) can leak into the log.
"""

from __future__ import annotations

import logging
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
