"""Show recorded text literally, whatever it contains.

Messages, contexts, tracebacks and even plugin ids come from other programs.
Rich markup in them must stay text (so every widget gets a ``rich.text.Text``,
never a markup string) and terminal control characters must never reach the
terminal: an ESC starts a colour change, a window-title rewrite (OSC) or worse,
``\\r`` overwrites a line, bidi overrides reorder what the operator reads.
Each such character is replaced by a visible escape such as ``\\x1b``.
"""

from __future__ import annotations

import json
import unicodedata

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text

ESCAPE_STYLE = "reverse"
"""How replaced control characters are marked, so ``\\x1b`` typed by a plugin and a real ESC look different."""

# Bidi controls and line/paragraph separators are not category Cc, yet they
# change how the rest of the line is displayed.
_FORMAT_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def _is_unsafe(char: str, keep_newlines: bool) -> bool:
    if char == "\n" or char == "\t":
        return not keep_newlines
    if char in _FORMAT_CONTROLS:
        return True
    return unicodedata.category(char) in ("Cc", "Cs")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character replaced by its ``\\xNN`` / ``\\uNNNN`` escape.

    ``keep_newlines`` keeps ``\\n`` and tab for multi-line views (message,
    traceback); single-line cells escape them too so one record is one row.
    """
    if keep_newlines:
        text = text.replace("\r\n", "\n")
    if text.isprintable() and not any(c in _FORMAT_CONTROLS for c in text):
        return text
    return "".join(_escape(c) if _is_unsafe(c, keep_newlines) else c for c in text)


def safe_text(text: object, style: str = "", *, keep_newlines: bool = False) -> Text:
    """A Rich ``Text`` showing ``text`` literally, with replaced control characters highlighted."""
    raw = text if isinstance(text, str) else str(text)
    if keep_newlines:
        raw = raw.replace("\r\n", "\n")
    result = Text(style=style, end="")
    if raw.isprintable() and not any(c in _FORMAT_CONTROLS for c in raw):
        result.append(raw)
        return result
    plain: list[str] = []
    for char in raw:
        if _is_unsafe(char, keep_newlines):
            if plain:
                result.append("".join(plain))
                plain = []
            result.append(_escape(char), ESCAPE_STYLE)
        else:
            plain.append(char)
    if plain:
        result.append("".join(plain))
    return result


def first_line(text: str, style: str = "") -> Text:
    """The first line of ``text`` for a table cell, with ``…`` when more lines follow."""
    head, newline, _rest = text.partition("\n")
    line = safe_text(head.rstrip("\r"), style)
    if newline:
        line.append(" …", "dim")
    return line


def safe_block(text: str | None, lexer: str) -> RenderableType:
    """A multi-line record (a traceback, pretty JSON) highlighted by ``lexer``, control characters made visible;
    "(none)" when there is nothing."""
    if not text:
        return Text("(none)", style="dim")
    return Syntax(visible(text, keep_newlines=True), lexer, word_wrap=True, theme="ansi_dark")


def safe_json(data: object) -> RenderableType:
    """Recorded JSON (context, event data) pretty-printed, non-ASCII kept readable, shown literally."""
    if data is None:
        return safe_block(None, "json")
    return safe_block(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str), "json")
