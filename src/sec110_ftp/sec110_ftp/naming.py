"""Names the landing zone can always store and always print.

Pure (no rclpy, no pyftpdlib). A device may upload any name the kernel accepts (255 bytes per
component); the names the landing zone derives from it (``-1`` suffixes, flattened quarantine
names) must fit the same limit, or the file could never leave ``.incoming``. And a name is
whatever bytes the device sent: before it reaches a log line or a diagnostic value its control
characters are escaped, so it cannot move the cursor or recolour an operator's terminal.
"""

from __future__ import annotations

import hashlib

NAME_MAX = 255  # bytes per path component (Linux, every filesystem we run on)
HASH_LEN = 8  # hex digits of sha256 that make a shortened name unique
MAX_SUFFIX = 16  # bytes; a longer "extension" is treated as part of the stem


def _bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def split_name(name: str) -> tuple[str, str]:
    """(stem, extension): 'a.tar.gz' -> ('a.tar', '.gz'); '.hidden' and 'a.<20 bytes>' have
    none."""
    i = name.rfind(".")
    if i <= 0 or len(_bytes(name[i:])) > MAX_SUFFIX:
        return name, ""
    return name[:i], name[i:]


def bounded_name(name: str, limit: int = NAME_MAX) -> str:
    """`name` when it fits in `limit` bytes, else its stem cut short + '~' + 8 hex digits of the
    full name's sha256 + its extension: the same long name always gives the same short one."""
    raw = _bytes(name)
    if len(raw) <= limit:
        return name
    stem, suffix = split_name(name)
    tag = "~" + hashlib.sha256(raw).hexdigest()[:HASH_LEN]
    room = limit - len(_bytes(suffix)) - len(tag)
    cut = _bytes(stem)[:room].decode("utf-8", "ignore")  # never half a character
    return cut + tag + suffix


def numbered_name(name: str, i: int) -> str:
    """The i-th candidate for a committed file: the name itself, then 'stem-1.ext', ... bounded."""
    if i == 0:
        return bounded_name(name)
    stem, suffix = split_name(name)
    return bounded_name(f"{stem}-{i}{suffix}")


def quarantine_name(stamp: str, rel: str, i: int = 0) -> str:
    """One flat, bounded name for an incomplete upload at `rel` (its folders joined by '__')."""
    flat = rel.replace("/", "__")
    return bounded_name(f"{stamp}_{flat}" if i == 0 else f"{stamp}-{i}_{flat}")


def _escape_char(c: str) -> str:
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def escape(text: str) -> str:
    """`text` with every unprintable character (controls, escape sequences, undecodable bytes)
    as \\xNN / \\uNNNN, for log lines and diagnostic values."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)
