"""Structured logging for every Junction service, with personal data kept out.

``configure_logging`` sets structlog up once per process: JSON lines in production,
coloured key=value lines in a terminal. Its ``redact_personal_data`` processor removes
the values of members that hold personal data (names, dates of birth, addresses,
postcodes, identifiers) wherever they appear in an event, and masks anything in free text
that looks like an NHS number, a National Insurance number or a UK postcode.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = [
    "PERSONAL_KEYS",
    "REDACTED",
    "configure_logging",
    "mark_logged",
    "redact_personal_data",
]

REDACTED = "[redacted]"

PERSONAL_KEYS = frozenset(
    {
        "name",
        "names",
        "given_name",
        "family_name",
        "full_name",
        "other_names",
        "date_of_birth",
        "dob",
        "birth_date",
        "address",
        "address_line",
        "postcode",
        "uprn",
        "nhs_number",
        "upn",
        "ni_number",
        "identifiers",
        "subject",
        "email",
        "phone",
        "justification",
    }
)

_PATTERNS = (
    # NHS number: 10 digits, optionally grouped 3-3-4.
    re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"),
    # National Insurance number (any prefix letters: masking too much is the safe error).
    re.compile(r"\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b", re.IGNORECASE),
    # UK postcode.
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE),
)


def _scrub_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in PERSONAL_KEYS else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, depth + 1) for item in value]
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no personal data leaves in a log line."""
    for key in list(event_dict):
        if key.lower() in PERSONAL_KEYS:
            event_dict[key] = REDACTED
        elif key not in ("timestamp", "level", "logger"):
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


_LOGGED = "_junction_logged"


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` was logged in full, so the server need not log it again."""
    setattr(exc, _LOGGED, True)


def _not_logged_before(record: logging.LogRecord) -> bool:
    """False for a record of an exception already logged in full (see ``mark_logged``).

    Starlette answers an unexpected error with the application's handler, which logs it
    with the reference the caller sees, and then re-raises it for the server: uvicorn
    would log the same traceback a second time, without the reference.
    """
    error = record.exc_info[1] if record.exc_info else None
    return not getattr(error, _LOGGED, False)


def configure_logging(*, json_output: bool, level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger for this process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        # Plain tracebacks: the default (rich) one prints every frame's local variables,
        # which hold request bodies and bearer tokens.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info if json_output else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    # Standard-library loggers (uvicorn, sqlalchemy) go through the same redaction.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    handler.addFilter(_not_logged_before)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # One line per outgoing request is noise at INFO (and costly under load); the
    # services log exchanges themselves.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
