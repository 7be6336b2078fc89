"""Saying where a file stops being UTF-8 text.

Every file an agency writes for Junction (config, mapping, local policy, CSV exports,
registry seed) is UTF-8. When one is not, the message names the first byte that breaks
it and its offset in the file, so the operator can find it with ``xxd`` or an editor.
"""

from __future__ import annotations

import codecs
from pathlib import Path

__all__ = ["not_utf8"]

_CHUNK = 1 << 20


def not_utf8(path: Path) -> str:
    """``"<path> is not UTF-8 text (byte 0x.. at offset N)"`` for a file that is not.

    The file is read again, in chunks, to find the first offending byte's offset in the
    whole file (a decoder that streamed it only knows the offset in its buffer). If it
    cannot be read now, or decodes after all (changed meanwhile), the message says less.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with path.open("rb") as handle:
            while True:
                chunk = handle.read(_CHUNK)
                # Bytes the decoder holds back (a sequence split across chunks) come first
                # in the buffer an error reports against.
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    at, byte = offset - pending + exc.start, exc.object[exc.start]
                    return f"{path} is not UTF-8 text (byte 0x{byte:02x} at offset {at})"
                if not chunk:
                    break
                offset += len(chunk)
    except OSError:
        pass
    return f"{path} is not UTF-8 text"
