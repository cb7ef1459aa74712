"""Log set-up, and JSON log lines (BONECDS_LOG_FORMAT=json): one object per line with time,
level, logger, message and, for hook calls, the fields the caller passed with `extra=` (hook,
hookInstance, service, rules, ms, method, path, status).

Every line written while a request is answered also carries its request id and, once the body is
read, its hook instance (text lines end with `[request=… hookInstance=…]`), so a FHIR fetch warning
can be matched to the call. Only the allow-listed extra keys are written, so nothing else attached
to a record (bodies, tokens, patient data) can leak into the log.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

EXTRA_FIELDS = ("hook", "hookInstance", "service", "rules", "ms", "method", "path", "status")

# The request being answered in this thread (set by the HTTP layer and the use case; a context
# variable, so threads of one worker never see each other's).
REQUEST_ID: ContextVar[str | None] = ContextVar("bonecds_request_id", default=None)
HOOK_INSTANCE: ContextVar[str | None] = ContextVar("bonecds_hook_instance", default=None)


def request_fields() -> dict[str, str]:
    fields = {}
    if (request_id := REQUEST_ID.get()) is not None:
        fields["requestId"] = request_id
    if (hook_instance := HOOK_INSTANCE.get()) is not None:
        fields["hookInstance"] = hook_instance
    return fields


class TextFormatter(logging.Formatter):
    """The plain-text line, with the request id and hook instance appended while a request is
    answered."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = request_fields()
        if not fields:
            return line
        shown = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{line} [{shown}]"


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
        line.update(request_fields())
        for key in EXTRA_FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            # the type only, no text
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Text lines, or one JSON object per line when `log_format` (default: BONECDS_LOG_FORMAT) is
    "json"."""
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr)
    formatter = json_or_text(log_format)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    # httpx logs full request URLs, which carry patient ids: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def json_mode(log_format: str | None = None) -> bool:
    return (log_format or os.environ.get("BONECDS_LOG_FORMAT", "text")).strip().lower() == "json"


def json_or_text(log_format: str | None = None) -> logging.Formatter:
    return JsonFormatter() if json_mode(log_format) else TextFormatter()
