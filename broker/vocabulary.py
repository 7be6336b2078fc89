"""Names a change may use, checked against what exists, with the nearest one suggested.

A consent statement or an agreement naming a purpose, agency or field nobody uses would
be stored and then never match anything. Both are refused instead, naming what is known.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from broker.errors import InvalidChange

__all__ = ["refuse_unknown"]


def refuse_unknown(
    what: str,
    names: Iterable[str],
    known: frozenset[str],
    where: str,
    *,
    hint: str = "",
    location: str | None = None,
) -> None:
    """Raise ``InvalidChange`` for the first of ``names`` not in ``known``.

    The message reads "<what> '<name>' is not <where>", then the nearest known name,
    or all of them when there are few. ``location``, the request member the names come
    from, goes with it, so a form can mark the input concerned.
    """
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            advice = f"; did you mean {close[0]!r}?"
        elif not known:
            advice = "; there are none yet"
        elif len(known) <= 12:
            advice = f"; use one of {', '.join(sorted(known))}"
        else:
            advice = ""
        if hint and not close:
            advice += f" ({hint})"
        raise InvalidChange(f"{what} {name!r} is not {where}{advice}", location=location)
