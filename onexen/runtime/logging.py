"""structlog set up for services: one JSON object per line on stderr.

Every event gets an ISO-8601 UTC timestamp, its level and whatever is bound in
contextvars (the interceptor binds request_id and method for each call). Records
from the standard library's `logging` (grpc, paramiko) go through the same
processors, so stderr stays one JSON object per line.

Secrets never reach the output: values under keys that name a secret are
replaced by "***", at any depth of nested dicts and lists.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "***"
SECRET_KEYS = frozenset(
    {
        "passwd",
        "password",
        "passphrase",
        "key",
        "private_key",
        "token",
        "secret",
        "authorization",
        "credentials",
    }
)
_SECRET_SUFFIXES = tuple(f"_{key}" for key in ("passwd", "password", "passphrase", "key", "token", "secret"))
_MAX_REDACT_DEPTH = 8

# Chatty below WARNING, and paramiko's DEBUG logs protocol details of key exchange.
_QUIET_LIBRARIES = ("paramiko", "grpc", "asyncio", "urllib3")


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _redact(value: Any, depth: int) -> Any:
    if depth > _MAX_REDACT_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, depth + 1) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace the values of secret-named keys by "***"."""
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if is_secret_key(key) else _redact(value, 1)
    return event_dict


_LEADING_KEYS = ("timestamp", "level", "event", "logger")


def _leading_keys_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level and event first so a human reading raw lines finds them."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library root logger; call once per process.

    `stream` defaults to stderr, looked up at call time so tests may swap it.
    """
    stream = sys.stderr if stream is None else stream
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    # Tracebacks as data, but without frame locals: a local named `password`
    # would slip past the key-based redaction.
    exception_processor: Processor = (
        structlog.processors.format_exc_info
        if fmt == "console"
        else structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    )
    shared = _shared_processors()

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            exception_processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Caching would pin loggers made at import time to the first configuration.
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, exception_processor],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _leading_keys_first,
                _renderer(fmt),
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(name, **initial)
    return logger
