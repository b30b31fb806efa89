"""The ETA in words, for the app's header and the headless progress line. Pure."""

from __future__ import annotations

from engine.log.eta import eta
from engine.log.state import RunState
from freeze_tui.draw import fmt


def eta_text(state: RunState, ticking: float = 0.0, compact: bool = False) -> str:
    """'ETA 12m 05s', 'ETA ~4m 10s' ("~": a validation or sampling pass not yet measured, or too few
    steps); compact (narrow terminals): minutes only past one minute, 'ETA ~12m'. "" when unknown."""
    left = eta(state)
    if left is None:
        return ""
    seconds = left.left(ticking)
    text = fmt.duration(seconds)
    if compact and seconds >= 60:
        text = text.split(" ")[0]
    elif seconds < 60:  # a forecast: whole seconds (fmt.duration gives tenths, for measured times)
        text = f"{seconds:.0f}s"
    return f"ETA {'~' if left.approximate else ''}{text}"
