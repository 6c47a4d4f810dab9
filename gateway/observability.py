"""Logs (JSON, one line per event, with the request id, the merchant and the GraphQL
operation while serving a request) that never carry a secret."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from gateway import telemetry

SECRET_KEYS = re.compile(
    r"(authorization|token|secret|password|api[_-]?key|refresh|cookie|signature)", re.I
)
# The Kounta add-on token travels in the path; a signed offer is bearer-like too, and so
# is a connect link's invite (it lets a browser connect the merchant's POS).
SECRET_PATHS = [
    (re.compile(r"(/kounta/redeem/)[^/?]+"), r"\1***"),
    (re.compile(r"(/kounta/)(?!redeem/)[^/?]+(/)"), r"\1***\2"),
    (re.compile(r"(/connect/)(?!(?:xseries|kounta)/callback\b)[^/?]+"), r"\1***"),
    (re.compile(r"(/webhooks/xseries/)[^/?]+"), r"\1***"),
]
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)


def redact_path(path: str) -> str:
    for pattern, replacement in SECRET_PATHS:
        path = pattern.sub(replacement, path)
    return path


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return BEARER.sub(r"\1***", redact_path(value))
    if isinstance(value, dict):
        return {k: "***" if SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and secrets embedded in strings."""
    for key in list(event):
        if key != "event" and SECRET_KEYS.search(key):
            event[key] = "***"
        else:
            event[key] = _redact(event[key])
    return event


def add_request_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every line logged while serving a request says which request,
    and, once known, for which merchant and GraphQL operation (``gateway/telemetry.py``)."""
    record = telemetry.current()
    if record is not None:
        event.setdefault("request_id", record.request_id)
        if record.merchant_id is not None:
            event.setdefault("merchant_id", record.merchant_id)
        if record.operation is not None:
            event.setdefault("operation", record.operation)
    return event


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr looked up when writing, not when configuring: it may be swapped later.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        # Not cached: loggers made at import time must follow a later configure (the CLI
        # and the tests configure after importing), at a few microseconds per log call.
        cache_logger_on_first_use=False,
    )
    # httpx logs every request URL at INFO; ours are logged (redacted) by pos/http.py.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
