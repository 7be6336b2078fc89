"""What a database URL's own parse cannot tell: a password whose '@' was not escaped.

SQLAlchemy reads ``postgresql://reader:Tr0ub@dor@db/rms`` as the password ``Tr0ub`` on
the host ``dor@db``, so every message naming the host would show the password's end.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

__all__ = ["UNESCAPED_AT", "has_unescaped_at"]

UNESCAPED_AT = "the user name or password holds an '@'; write each '@' in them as %40"


def has_unescaped_at(url: URL) -> bool:
    """Whether a server URL's user name or password held an '@' written as is."""
    if url.get_backend_name() == "sqlite":
        return False  # a file path may hold one
    return "@" in (url.host or "") or "@" in (url.database or "")
