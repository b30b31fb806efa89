"""Colours: one fixed colour per arm (same in cards, charts and tables) and the heat scale of ΔW norms."""

from __future__ import annotations

import math

ARM_RGB = [(86, 156, 255), (255, 159, 67), (80, 210, 120), (230, 100, 240), (240, 220, 90), (120, 220, 230)]
FROZEN_STYLE = "italic #6c7a89"
_COLD = (70, 95, 130)
_HOT = (255, 196, 60)


def arm_rgb(index: int) -> tuple[int, int, int]:
    return ARM_RGB[index % len(ARM_RGB)]


def hex_rgb(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def arm_style(index: int) -> str:
    """Rich style of the index-th arm."""
    return hex_rgb(arm_rgb(index))


def heat_position(value: float, lo: float, hi: float) -> float:
    """Where value lies between lo and hi, in [0, 1], on a log scale (norms span decades)."""
    if not all(math.isfinite(v) for v in (value, lo, hi)) or value <= 0 or hi <= 0:
        return 0.0
    lo = max(lo, hi * 1e-6)
    if hi <= lo:
        return 1.0
    t = (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return min(1.0, max(0.0, t))


def heat_style(value: float, lo: float, hi: float) -> str:
    """A colour from cold (small change) to hot (largest change in view)."""
    t = heat_position(value, lo, hi)
    rgb = tuple(round(c + t * (h - c)) for c, h in zip(_COLD, _HOT))
    return hex_rgb(rgb)  # type: ignore[arg-type]
