"""Number and duration formatting for the views. Pure; every function maps nan/None to a dash."""

from __future__ import annotations

import math
import re
import time

DASH = "–"


def _missing(x) -> bool:
    return x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)


def or_unknown(value: object) -> str:
    """A value of the run's settings, model or data as text; "?" where the log has none."""
    return "?" if value is None else str(value)


def num(x, digits: int = 3) -> str:
    """A loss-like value: fixed decimals."""
    return DASH if _missing(x) else f"{x:.{digits}f}"


def count(n) -> str:
    """Parameter and token counts: 950, 12.3k, 124.4M, 7.0B."""
    if _missing(n):
        return DASH
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{int(n)}"


def pct(fraction, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: 0.253 -> '25.3 %'."""
    return DASH if _missing(fraction) else f"{100 * fraction:.{digits}f} %"


def signed_pts(fraction, digits: int = 1) -> str:
    """A difference of two shares in percentage points: +3.1 pts."""
    return DASH if _missing(fraction) else f"{100 * fraction:+.{digits}f} pts"


def ci(mean, lo, hi) -> str:
    """A share with its 95 % interval: '45.2 % [41.0, 49.4]'."""
    if _missing(mean):
        return DASH
    if _missing(lo) or _missing(hi) or lo == hi:
        return pct(mean)
    return f"{pct(mean)} [{100 * lo:.1f}, {100 * hi:.1f}]"


def norm(x) -> str:
    """||dW||_F: small values need scientific notation; width stays near 7 characters."""
    if _missing(x):
        return DASH
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.4f}"[:7]
    return f"{x:.2e}"


def duration(seconds) -> str:
    """Elapsed times: 0.42s, 12.3s, 4m 05s, 2h 03m."""
    if _missing(seconds):
        return DASH
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


def seconds(x, digits: int = 1) -> str:
    """A measured total time in the study's unit: 120.3 s."""
    return DASH if _missing(x) else f"{x:.{digits}f} s"


def rate(x) -> str:
    """Tokens per second: 1,234 tok/s."""
    return DASH if _missing(x) else f"{x:,.0f} tok/s"


def screenshot_name(run_id: str, when: time.struct_time) -> str:
    """A file name for an SVG screenshot: safe characters only, sortable by time."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id or "run")[:60]
    return f"freeze-tui-{slug}-{time.strftime('%Y%m%d-%H%M%S', when)}.svg"
