"""Commitment salts: fresh for every private value, never shared with a forked child."""

from __future__ import annotations

import os

from audit.entry import _salt


def test_salts_are_32_random_bytes_and_never_repeat() -> None:
    salts = [_salt() for _ in range(5_000)]
    assert all(len(salt) == 32 for salt in salts)
    assert len(set(salts)) == len(salts)


def test_a_forked_child_does_not_reuse_the_parents_unused_salts() -> None:
    _salt()  # the parent now holds a partly used batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next salt and leave at once
        os.close(read)
        os.write(write, _salt())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != _salt()
