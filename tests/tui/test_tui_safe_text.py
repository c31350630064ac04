"""Recorded text reaches the screen literally: no markup, no terminal control."""

from __future__ import annotations

from pmon.plain_text import escape_controls
from pmon.tui.safe_text import ESCAPE_STYLE, first_line, safe_text, visible


def test_plain_text_is_unchanged() -> None:
    assert visible("handled 52 requests — ok ✓") == "handled 52 requests — ok ✓"


def test_terminal_escapes_become_visible() -> None:
    assert visible("\x1b]0;pwn\x07") == "\\x1b]0;pwn\\x07"
    assert visible("\x1b[31mred") == "\\x1b[31mred"


def test_c1_controls_delete_and_bidi_overrides_become_visible() -> None:
    assert visible("a\x9bb\x85c\x7fd") == "a\\x9bb\\x85c\\x7fd"
    assert visible("abc\u202edef\u2066") == "abc\\u202edef\\u2066"


def test_single_line_escapes_newlines_and_carriage_returns() -> None:
    assert visible("one\r\ntwo\tthree") == "one\\r\\ntwo\\tthree"


def test_multi_line_keeps_newlines_and_tabs_and_drops_crlf_noise() -> None:
    assert visible("one\r\ntwo\tx\rthree", keep_newlines=True) == "one\ntwo\tx\\rthree"


def test_markup_stays_text() -> None:
    text = safe_text("[@click=app.quit]boom[/] [red]x[/]")
    assert text.plain == "[@click=app.quit]boom[/] [red]x[/]"
    assert not text.spans


def test_replaced_characters_are_highlighted() -> None:
    text = safe_text("a\x1bb")
    assert text.plain == "a\\x1bb"
    assert [(s.start, s.end, s.style) for s in text.spans] == [(1, 5, ESCAPE_STYLE)]


def test_non_text_values_are_shown_as_text() -> None:
    assert safe_text(42).plain == "42"


def test_first_line_marks_more_lines() -> None:
    assert first_line("slow query\nsecond line").plain == "slow query …"
    assert first_line("one line").plain == "one line"
    assert first_line("windows line\r\nnext").plain == "windows line …"


def test_zero_width_characters_bom_and_separators_become_visible() -> None:
    assert visible("ad\u200bmin\u200c\u200d\ufeff\u2060") == "ad\\u200bmin\\u200c\\u200d\\ufeff\\u2060"
    assert visible("one\u2028two\u2029three", keep_newlines=True) == "one\\u2028two\\u2029three"


def test_characters_beyond_the_basic_plane_get_the_long_escape() -> None:
    assert visible("flag\U000e0001") == "flag\\U000e0001"


def test_lone_surrogates_become_visible() -> None:
    assert visible("a\ud800b\udfff") == "a\\ud800b\\udfff"
    assert safe_text("\ud800").plain == "\\ud800"


def test_the_console_and_the_cli_escape_the_same_characters() -> None:
    sample = "".join(map(chr, range(0x2100))) + "\ud800\ufeff\U000e0001"
    assert visible(sample) == escape_controls(sample)
    assert safe_text(sample).plain == escape_controls(sample)
