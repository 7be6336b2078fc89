"""Sending a form once: the key a form is sent under, and waiting on its first sending.

A form carries a one-time key made when its page was drawn, and the service it calls
remembers what it did under that key, so the same form sent again (a double click, a
reload, Back and send) is answered with what the first sending did, not done twice. The
key a form is sent under adds a digest of what the form asks to the page's key: a form
changed after it was sent asks something new, and is done as new rather than refused.
Two sendings at once find the key still at work; the second waits for the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from broker.errors import Conflict

__all__ = ["form_key", "once"]

T = TypeVar("T")


def form_key(page_key: str, asked: str) -> str:
    """The key a form whose page gave it ``page_key`` is sent under, asking ``asked``."""
    digest = hashlib.sha256(asked.encode()).hexdigest()[:16]
    return f"{page_key[:100]}.{digest}"


async def once(attempt: Callable[[], Awaitable[T]], *, patience: float) -> T | None:
    """``attempt()``, tried again while it raises ``Conflict`` (its key still at work for
    a first sending), for up to ``patience`` seconds; ``None`` if it still is then."""
    deadline = time.monotonic() + patience
    pause = 0.05
    while True:
        try:
            return await attempt()
        except Conflict:
            if time.monotonic() + pause > deadline:
                return None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
