"""Colours as data: a Palette that pure drawing functions take as an argument. Pure (rich only).

The app's colours live in app.tcss (component classes of widgets/palette.py) and reach Python
only through a Palette read from there, so one stylesheet holds every colour and every arm has
the same colour in cards, charts and tables. Without an app (unit tests, scripts) PLAIN draws
with text attributes only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.style import Style

NAMES = ("frozen", "in-s", "grid", "heat-cold", "heat-hot", "finished", "running", "paused", "failed", "quiet", "fatal")
N_ARMS = 6  # arm colours repeat after this many arms
_GREY = (150, 150, 150)


@dataclass(frozen=True)
class Palette:
    arms: tuple[Style, ...] = (Style(bold=True),)
    named: Mapping[str, Style] = field(default_factory=dict)

    def arm(self, index: int) -> Style:
        """The index-th arm's style (same in every view)."""
        return self.arms[index % len(self.arms)]

    def arm_rgb(self, index: int) -> tuple[int, int, int]:
        """The index-th arm's colour for charts (plotext takes RGB)."""
        return rgb_of(self.arm(index))

    def style(self, name: str) -> Style:
        return self.named.get(name, PLAIN_STYLES.get(name, Style()))

    def rgb(self, name: str) -> tuple[int, int, int]:
        return rgb_of(self.style(name))


PLAIN_STYLES = {
    "frozen": Style(italic=True, dim=True),
    "in-s": Style(reverse=True),
    "finished": Style(bold=True),
    "running": Style(bold=True),
    "paused": Style(bold=True),
    "failed": Style(bold=True, reverse=True),
    "fatal": Style(bold=True, reverse=True),
    "quiet": Style(dim=True),
}
PLAIN = Palette()


def rgb_of(style: Style, default: tuple[int, int, int] = _GREY) -> tuple[int, int, int]:
    if style.color is None:
        return default
    triplet = style.color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def heat_position(value: float, lo: float, hi: float) -> float:
    """Where value lies between lo and hi, in [0, 1], on a log scale (norms span decades)."""
    if not all(math.isfinite(v) for v in (value, lo, hi)) or value <= 0 or hi <= 0:
        return 0.0
    lo = max(lo, hi * 1e-6)
    if hi <= lo:
        return 1.0
    t = (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return min(1.0, max(0.0, t))


def heat_style(value: float, lo: float, hi: float, palette: Palette = PLAIN) -> Style:
    """A colour from the palette's heat-cold (small change) to heat-hot (largest change in view)."""
    t = heat_position(value, lo, hi)
    cold, hot = palette.style("heat-cold"), palette.style("heat-hot")
    if cold.color is None or hot.color is None:
        return Style(bold=t > 0.5)
    rgb = tuple(round(c + t * (h - c)) for c, h in zip(rgb_of(cold), rgb_of(hot)))
    return Style(color="#{:02x}{:02x}{:02x}".format(*rgb))
