"""Untrusted text is shown literally: no markup, no control sequences."""

from rich.console import Console

from freeze_tui.draw.safe_text import ELLIPSIS, NEWLINE_MARK, clean, safe


def test_markup_is_kept_as_text():
    text = safe("[bold red]x[/]")
    assert text.plain == "[bold red]x[/]"
    assert not text.spans


def test_escape_sequences_become_visible_symbols():
    assert clean("\x1b[2Jhi") == "␛[2Jhi"
    assert clean("a\x00b\x07") == "a␀b␇"
    assert clean("\x9b31m") == "\\x9b31m"  # C1 CSI
    assert clean("del\x7f") == "del␡"
    assert clean("rtl\u202eevil") == "rtl\\u202eevil"


def test_newlines_tabs_and_one_line():
    assert clean("a\nb\tc") == "a\nb c"
    assert clean("a\nb", one_line=True) == f"a{NEWLINE_MARK}b"
    assert clean("a\r\nb", one_line=True) == f"a␍{NEWLINE_MARK}b"


def test_long_lines_are_capped():
    out = clean("x" * 10_000, max_len=20)
    assert len(out) == 20 and out.endswith(ELLIPSIS)
    assert clean("short", max_len=20) == "short"


def test_none_and_non_strings():
    assert clean(None) == ""
    assert clean(3.5) == "3.5"


def test_rendered_output_has_no_raw_escape():
    console = Console(width=80, force_terminal=True, color_system=None)
    with console.capture() as cap:
        console.print(safe("\x1b[31mred[/] \x1b]0;title\x07"))
    out = cap.get()
    assert "\x1b]0;" not in out and "␛[31mred[/]" in out
