"""Free text that people write and others read later, in the audit log or on a page."""

from __future__ import annotations

import unicodedata
from functools import partial
from typing import Any

from pydantic import AfterValidator

__all__ = ["LINES", "ONE_LINE", "no_control"]


def no_control(value: str, *, lines: bool = False) -> str:
    """``value``, if it holds no control character (a tab or line break only in ``lines``
    text): what an IG officer reads later must read as it was typed."""
    for char in value:
        if unicodedata.category(char) == "Cc" and not (lines and char in "\t\r\n"):
            raise ValueError(
                f"remove the control character U+{ord(char):04X}: the text may hold none"
                + (" but tabs and line breaks" if lines else "")
            )
    return value


ONE_LINE: Any = AfterValidator(no_control)
"""Validates text of one line: no control character at all."""
LINES: Any = AfterValidator(partial(no_control, lines=True))
"""Validates text of several lines: tabs and line breaks, but no other control character."""
