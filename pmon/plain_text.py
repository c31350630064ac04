"""Recorded text made safe for a plain terminal line or log file (no Rich, no Textual).

Plugin ids, messages and paths come from other programs: a raw ESC would
recolour or retitle the operator's terminal, ``\\r`` would hide what came
before it on the line, a bidi override would reorder it, a zero-width space
would make two different ids look the same. Each such character becomes a
visible escape (``\\x1b``, ``\\r``, ``\\u202e``, ``\\u200b``).

What counts as such a character is decided here once, for the CLI, the
daemon's log and the console alike: the Unicode categories Cc (C0 and C1
controls, DEL), Cf (format: bidi controls, zero-width characters, the BOM,
tag characters), Cs (lone surrogates), Zl and Zp (line and paragraph
separators).
"""

from __future__ import annotations

import unicodedata

UNSAFE_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
"""Unicode categories never written to a terminal raw."""

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(char: str, keep_newlines: bool = False) -> bool:
    """True when ``char`` must be shown as an escape; ``keep_newlines`` lets ``\\n`` and tab through."""
    if keep_newlines and (char == "\n" or char == "\t"):
        return False
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def escape_char(char: str) -> str:
    """``\\n``, ``\\x1b``, ``\\u202e`` or ``\\U000e0001``: the escape a Python string literal would use."""
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control, format, separator and lone-surrogate character shown as an escape."""
    if text.isprintable():  # every unsafe category is unprintable: the usual line costs one scan in C
        return text
    return "".join(escape_char(c) if is_unsafe(c, keep_newlines) else c for c in text)
