"""Which mode the app is in (LIVE, REPLAY ×speed, WATCH, FINISHED) and which keys it offers there. Pure.

One table of keys serves the footer (through the app's check_action), the help screen and
the README, so what is offered, what works and what is documented cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE, REPLAY, WATCH, FINISHED = "live", "replay", "watch", "finished"
ALL_MODES = frozenset({LIVE, REPLAY, WATCH, FINISHED})
RUNNING = frozenset({LIVE, REPLAY, WATCH})


def mode_of(source_mode: str, run_ended: bool, source_done: bool) -> str:
    """live/watch become FINISHED once the run ended (or the source has nothing more); a replay stays a replay."""
    if source_mode in (LIVE, WATCH) and (run_ended or source_done):
        return FINISHED
    return source_mode if source_mode in RUNNING else REPLAY


def mode_label(mode: str, speed: float | None = None) -> str:
    """The header's badge: LIVE, WATCH, FINISHED, REPLAY ×20 (×max when as fast as possible)."""
    if mode == REPLAY:
        return f"REPLAY ×{'max' if speed is None else f'{speed:g}'}"
    return mode.upper()


def paused_label(mode: str) -> str:
    """What `p` paused: in watch only the display (the writer trains on), in a replay the playback."""
    return {WATCH: "display paused (training continues)", REPLAY: "replay paused"}.get(mode, "paused")


@dataclass(frozen=True)
class Key:
    keys: str  # as shown: "1-7", "+/-"
    what: str
    modes: frozenset[str] = ALL_MODES
    view: str = ""  # "" = every view


KEYS = (
    Key("1-8", "views: Loss, ΔW, Samples, Time, Plan, Log, Run, Frontier"),
    Key("? F1", "this help"),
    Key("p", "pause the display (training continues)", frozenset({WATCH})),
    Key("p", "pause / resume the replay", frozenset({REPLAY})),
    Key("p", "pause / resume the view of the live run", frozenset({LIVE})),
    Key("s", "stop the run at the next step boundary (asks first)", frozenset({LIVE})),
    Key("ctrl+s", "save an SVG screenshot (next to the log, or --screenshot-dir)"),
    Key("q", "quit (a live run is stopped at a step boundary first)"),
    Key("m", "smoothing on / off (raw curve stays, faded)", view="loss"),
    Key("+ / -", "smoothing weight up / down (0 … 0.99, TensorBoard-style)", view="loss"),
    Key("x", "x axis: steps → tokens → wall time", view="loss"),
    Key("z", "zoom: all steps → last 1000 → 200 → 50", view="loss"),
    Key("a", "show / hide arms (a list to toggle)", view="loss"),
    Key("↑ ↓ ← →", "move / scroll the table (block and matrix stay put)", view="dw"),
    Key("PgUp PgDn Home End", "page / jump through the table", view="dw"),
    Key("[ ]", "previous / next arms when not all fit", view="dw"),
    Key("↑ ↓ PgUp PgDn", "scroll", view="samples"),
    Key("↑ ↓ PgUp PgDn", "scroll", view="plan"),
    Key("↑ ↓ PgUp PgDn", "scroll", view="log"),
    Key("↑ ↓ PgUp PgDn", "scroll", view="run"),
)


def keys_for(mode: str, view: str) -> list[Key]:
    """Every key that works in this mode and view, global ones first."""
    return [k for k in KEYS if mode in k.modes and k.view in ("", view)]
