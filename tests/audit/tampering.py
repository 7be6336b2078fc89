"""What someone with write access to the log's database might do, for the tamper tests."""

from __future__ import annotations

import sqlalchemy as sa

from audit.merkle import leaf_hash


def rewrite_entry(engine: sa.Engine, index: int, old: bytes, new: bytes) -> None:
    """Replace ``old`` with ``new`` in entry ``index`` and store the matching leaf hash.

    The stored tree (interior nodes) is left as it was, as a careful forger would leave
    it: only recomputing from the entries finds the change.
    """
    with engine.begin() as conn:
        leaf = bytes(
            conn.scalar(sa.text("SELECT leaf FROM audit_entries WHERE idx = :i"), {"i": index})
        )
        changed = leaf.replace(old, new)
        assert changed != leaf, f"entry {index} holds no {old!r}"
        conn.execute(
            sa.text("UPDATE audit_entries SET leaf = :leaf, leaf_hash = :hash WHERE idx = :i"),
            {"leaf": changed, "hash": leaf_hash(changed), "i": index},
        )
