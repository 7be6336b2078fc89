"""Structured logging for every Junction service, with personal data kept out.

``configure_logging`` sets structlog up once per process: JSON lines in production,
coloured key=value lines in a terminal. Its ``redact_personal_data`` processor removes
the values of members that hold personal data (names, dates of birth, addresses,
postcodes, identifiers) wherever they appear in an event, and masks anything in free text
(an exception's message and traceback included) that looks like an NHS number, a
National Insurance number, a unique pupil number, a UK postcode, a date or a value a
validation error echoes. The web server's access lines name the path, never the query
string.
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
    # Unique pupil number: a check letter, 11 digits, then a digit or a letter.
    re.compile(r"\b[A-Z]\d{11}[A-Z\d]\b", re.IGNORECASE),
    # UK postcode.
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE),
    # A date on its own (a date of birth, ISO or day/month/year); a time stamp is kept.
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b(?![T:\d])|\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
)
# pydantic's message for a value it refused repeats the value: a name, a date of birth.
_ECHOED_INPUT = re.compile(r"input_value=.*?(?=, input_type=|\]$)", re.MULTILINE | re.DOTALL)


def _scrub_text(text: str) -> str:
    text = _ECHOED_INPUT.sub(f"input_value={REDACTED}", text)
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


def _path_only(record: logging.LogRecord) -> bool:
    """Give uvicorn's access line the request's path without its query string.

    A query string is whatever the caller typed after ``?``: a name or an NHS number
    sent that way would otherwise be written to the log in full.
    """
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        args = list(record.args)
        if len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            args[2] = args[2].partition("?")[0] + "?" + REDACTED
            record.args = tuple(args)
    return True


def configure_logging(*, json_output: bool, level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger for this process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # The traceback becomes text before redaction, so that an exception's message
        # is masked like any other. Plain tracebacks: the rich one prints every frame's
        # local variables, which hold request bodies and bearer tokens.
        structlog.dev.set_exc_info,
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
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
    handler.addFilter(_path_only)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # One line per outgoing request is noise at INFO (and costly under load); the
    # services log exchanges themselves.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
