"""Show recorded text literally, whatever it contains.

Messages, contexts, tracebacks and even plugin ids come from other programs.
Rich markup in them must stay text (so every widget gets a ``rich.text.Text``,
never a markup string) and terminal control characters must never reach the
terminal: an ESC starts a colour change, a window-title rewrite (OSC) or worse,
``\\r`` overwrites a line, bidi overrides reorder what the operator reads,
zero-width characters make two different ids look alike.
Each such character is replaced by a visible escape such as ``\\x1b``
(``pmon.plain_text`` decides which characters, for the CLI and the console alike).
"""

from __future__ import annotations

import json

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text

from pmon.plain_text import escape_char, escape_controls, is_unsafe

ESCAPE_STYLE = "reverse"
"""How replaced control characters are marked, so ``\\x1b`` typed by a plugin and a real ESC look different."""


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, format or separator character replaced by its ``\\xNN`` / ``\\uNNNN`` escape.

    ``keep_newlines`` keeps ``\\n`` and tab for multi-line views (message,
    traceback); single-line cells escape them too so one record is one row.
    """
    if keep_newlines:
        text = text.replace("\r\n", "\n")
    return escape_controls(text, keep_newlines)


def safe_text(text: object, style: str = "", *, keep_newlines: bool = False) -> Text:
    """A Rich ``Text`` showing ``text`` literally, with replaced control characters highlighted."""
    raw = text if isinstance(text, str) else str(text)
    if keep_newlines:
        raw = raw.replace("\r\n", "\n")
    result = Text(style=style, end="")
    if raw.isprintable():
        result.append(raw)
        return result
    plain: list[str] = []
    for char in raw:
        if is_unsafe(char, keep_newlines):
            if plain:
                result.append("".join(plain))
                plain = []
            result.append(escape_char(char), ESCAPE_STYLE)
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
