"""Show untrusted text (samples, prompts, names, log messages) literally.

Text from models, data and logs may contain Rich markup (`[bold]`) or terminal
control sequences (`\\x1b[2J`). Views build `rich.text.Text` objects from it (which
never parse markup) and pass it through `clean` first, so a control character is
*shown* as a visible symbol instead of being sent to the terminal.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

ELLIPSIS = "…"
NEWLINE_MARK = "⏎"

# Unicode bidi overrides/isolates can reorder what is displayed: show them too.
_BIDI = {0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _visible(ch: str) -> str:
    """A visible stand-in for one control character."""
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode "control pictures": ␛ for ESC, ␀ for NUL
    if code == 0x7F:
        return "␡"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _is_control(code: int) -> bool:
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _BIDI or code in (0x2028, 0x2029)


def clean(text: object, *, one_line: bool = False, max_len: int | None = None) -> str:
    """`text` as a plain string with every control character made visible.

    Newlines are kept unless `one_line`; tabs become a space; `max_len` caps the
    result (with an ellipsis) so one huge line cannot flood a view.
    """
    raw = "" if text is None else str(text)
    if max_len is not None and len(raw) > 4 * max_len:
        raw = raw[: 4 * max_len]  # bound the work on giant inputs before escaping
    out = []
    for ch in raw:
        code = ord(ch)
        if ch == "\n":
            out.append(NEWLINE_MARK if one_line else ch)
        elif ch == "\t":
            out.append(" ")
        elif _is_control(code):
            out.append(_visible(ch))
        else:
            out.append(ch)
    result = "".join(out)
    if max_len is not None and len(result) > max_len:
        result = result[: max(0, max_len - 1)] + ELLIPSIS
    return result


def safe(text: object, style: str | Style = "", *, one_line: bool = True, max_len: int | None = 500) -> Text:
    """A Rich Text of untrusted `text`: never markup, never a control sequence."""
    return Text(clean(text, one_line=one_line, max_len=max_len), style=style)
