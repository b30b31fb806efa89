"""Which mode the app is in (LIVE, REPLAY ×speed, WATCH, FINISHED) and which keys it offers there. Pure.

One table of views (VIEWS) and one of keys (KEYS) make the bindings and the footer (keys.py, with
check_action), the tabs (app.py), the help screen and the README's key table (a test compares), so
what is offered, what works and what is documented cannot drift apart. A new view is one View row
(and its widget in app.py's VIEW_WIDGETS).
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
    return {WATCH: "display paused (training continues)", REPLAY: "replay paused", LIVE: PAUSED_VIEW}.get(
        mode, "paused"
    )


PAUSED_VIEW = "view paused — training continues"  # LIVE: `p` freezes the screen only (docs/DECISIONS.md)


@dataclass(frozen=True)
class View:
    key: str  # the digit that shows it
    name: str  # "loss": the tab is tab-loss (tab_id), the widget view-loss (widget_id)
    title: str  # "Loss": on its tab ("1 Loss") and in the help
    about: str = ""  # said after the title in the README


# The views' names, spelled here only: the app, its keys and its widgets' ids use these (renaming a view
# is this line).
LOSS, DW, SAMPLES, TIME, PLAN, LOG, RUN, FRONTIER = "loss", "dw", "samples", "time", "plan", "log", "run", "frontier"

VIEWS = (
    View("1", LOSS, "Loss"),
    View("2", DW, "ΔW"),
    View("3", SAMPLES, "Samples"),
    View("4", TIME, "Time"),
    View("5", PLAN, "Plan"),
    View("6", LOG, "Log"),
    View("7", RUN, "Run", "model, data, every setting, log path, version, start time"),
    View("8", FRONTIER, "Frontier", "arms in the time-saving and learning–forgetting planes"),
)
VIEW_TITLES = {v.name: v.title for v in VIEWS}
VIEW_RANGE = f"{VIEWS[0].key}-{VIEWS[-1].key}"
_TAB = "tab-"


def tab_id(view: str) -> str:
    """The id of a view's tab pane (TabbedContent.active names it)."""
    return f"{_TAB}{view}"


def view_of_tab(tab: str) -> str:
    """The view a tab pane id shows: tab_id's inverse."""
    return tab.removeprefix(_TAB)


def widget_id(view: str) -> str:
    """The id of a view's widget."""
    return f"view-{view}"


@dataclass(frozen=True)
class Bind:
    """One Textual binding of a key row (keys.py turns it into a textual.binding.Binding)."""

    keys: str  # Textual key names, comma separated
    action: str
    label: str = ""  # the footer's word
    shown: bool = True  # offered in the footer (when check_action allows it)
    display: str | None = None  # the footer's key, when not the first of `keys`


@dataclass(frozen=True)
class Key:
    keys: str  # as shown in the help and the README: "1-7", "+ / -"
    what: str  # the help screen's line
    modes: frozenset[str] = ALL_MODES
    view: str = ""  # "" = every view; else the only view where it works (check_action hides it elsewhere)
    binds: tuple[Bind, ...] = ()  # none: the view's own widget handles the key (scrolling)
    doc: str = ""  # the README's line when longer than `what`; rows with the same keys and doc merge there


PAUSE_DOC = "pause / resume: the replay, or in LIVE and WATCH only the display (training continues)"


def _pause(mode: str, what: str, label: str) -> Key:
    """`p` pauses, and while paused the same key resumes: the footer offers whichever applies."""
    binds = (Bind("p", f"pause('{mode}')", label), Bind("p", f"resume('{mode}')", "resume"))
    return Key("p", what, frozenset({mode}), binds=binds, doc=PAUSE_DOC)


def _scroll(view: str) -> Key:
    return Key("↑ ↓ PgUp PgDn", "scroll", view=view)


# The one table of keys: in footer order; the help and the README list the keys of every view first.
KEYS = (
    Key(
        VIEW_RANGE,
        "views: " + ", ".join(v.title for v in VIEWS),
        binds=tuple(Bind(v.key, f"view('{v.name}')", "views", v is VIEWS[0], VIEW_RANGE) for v in VIEWS),
        doc="views: " + ", ".join(f"{v.title} ({v.about})" if v.about else v.title for v in VIEWS),
    ),
    Key(
        "? F1",
        "this help",
        binds=(Bind("question_mark,f1", "help", "help", display="?"),),
        doc="help: every key of this view and mode",
    ),
    _pause(WATCH, "pause the display (training continues)", "pause display"),
    _pause(REPLAY, "pause / resume the replay", "pause replay"),
    _pause(LIVE, "pause / resume the display (training continues)", "pause view"),
    Key(
        "s",
        "stop the run at the next step boundary (asks first)",
        frozenset({LIVE, WATCH}),
        binds=(Bind("s", "stop", "stop run"),),
        doc="stop the run at the next step boundary (asks first); WATCH signals the writer on this host, "
        "or says the command to run on the writer's host",
    ),
    Key(
        "m",
        "smoothing on / off (raw curve stays, faded)",
        view=LOSS,
        binds=(Bind("m", "smooth", "smoothing"),),
        doc="smoothing on / off: the smoothed line over the faded raw one",
    ),
    Key(
        "+ / -",
        "smoothing weight up / down (0 … 0.99, TensorBoard-style)",
        view=LOSS,
        binds=(
            Bind("plus,equals_sign", "weight(1)", "smoother", False, "+"),
            Bind("minus", "weight(-1)", "rougher", False, "-"),
        ),
        doc="smoothing weight up / down, TensorBoard-style 0 … 0.99 (default 0.9, debiased: right from step 1)",
    ),
    Key(
        "x",
        "x axis: steps → tokens → wall time",
        view=LOSS,
        binds=(Bind("x", "axis", "x axis", False),),
        doc="x axis: steps → tokens seen (batch × block per step) → wall time",
    ),
    Key("z", "zoom: all steps → last 1000 → 200 → 50", view=LOSS, binds=(Bind("z", "zoom", "zoom", False),)),
    Key(
        "a",
        "show / hide arms (a list to toggle)",
        view=LOSS,
        binds=(Bind("a", "arms", "arms", False),),
        doc="show / hide arms on the charts (a list: space toggles, Esc closes)",
    ),
    Key(
        "d",
        "paired difference arm − full (band, validation gaps) ↔ loss",
        view=LOSS,
        binds=(Bind("d", "difference", "difference", False),),  # the footer is full at 80 columns in LIVE
        doc="the paired difference L_arm − L_full per step (smoothed, 95 % band) with each validation's gap "
        "and interval, and a validation-loss table; again: back to the loss curves",
    ),
    Key(
        "↑ ↓ ← →",
        "move / scroll the table (block and matrix stay put)",
        view=DW,
        doc="move / scroll the table; block and matrix columns stay put",
    ),
    Key("PgUp PgDn Home End", "page / jump through the table", view=DW),
    Key(
        "[ ]",
        "previous / next arms when not all fit",
        view=DW,
        binds=(
            Bind("left_square_bracket", "arm_page(-1)", "arms", False, "["),
            Bind("right_square_bracket", "arm_page(1)", "arms", True, "[ ]"),
        ),
        doc="previous / next arms when not all fit the width",
    ),
    Key(
        "c",
        "samples side by side: one prompt and seed, every arm ↔ the list",
        view=SAMPLES,
        binds=(Bind("c", "compare", "side by side", False),),
        doc="samples side by side: one prompt and seed, the text before training and every arm's in columns "
        "(stacked when narrow), common tokens highlighted; again: back to the list",
    ),
    Key(
        "n / N",
        "next / previous prompt and seed (side by side)",
        view=SAMPLES,
        binds=(
            Bind("n", "sample(1)", "next sample", True, "n"),
            Bind("N", "sample(-1)", "previous", False, "N"),
        ),
    ),
    *(_scroll(view) for view in (SAMPLES, PLAN, LOG, RUN)),
    Key(
        "ctrl+s",
        "save an SVG screenshot (the toast says where)",
        binds=(Bind("ctrl+s,S", "save_screenshot", "screenshot", display="^s"),),
        doc="save an SVG screenshot: `--screenshot-dir DIR`, else `$FREEZE_TUI_SCREENSHOTS`, else next to the "
        "log; a replayed log inside a git work tree (the repo's `sample_runs/`): the current directory, or "
        "`~/freeze-tui-screenshots` when that is in a work tree too; the toast gives the path",
    ),
    Key(
        "q",
        "quit (a live run is stopped at a step boundary first)",
        binds=(Bind("q", "quit", "quit"),),
        doc="quit (a live run is stopped at a step boundary first, so its log stays complete)",
    ),
    Key(
        "< >",
        "replay slower / faster (×0.5 … ×1000, then max)",
        frozenset({REPLAY}),
        binds=(
            Bind("less_than_sign", "replay_speed(-1)", "slower", False, "<"),
            Bind("greater_than_sign", "replay_speed(1)", "faster", False, ">"),
        ),
    ),
    Key(
        ", .",
        "replay: back / forward 10 steps",
        frozenset({REPLAY}),
        binds=(
            Bind("comma", "seek(-10)", "back", False, ","),
            Bind("full_stop", "seek(10)", "forward", False, "."),
        ),
        doc="replay: back / forward 10 steps (back at ×max also pauses, to stay there)",
    ),
    Key("e", "replay: jump to the end", frozenset({REPLAY}), binds=(Bind("e", "seek_end", "end", False),)),
    Key(
        "l",
        "y axis: linear ↔ log (loss curves; the difference stays linear)",
        view=LOSS,
        binds=(Bind("l", "log_y", "log y", False),),
        doc="y axis of the loss curves: linear ↔ log (the title says `log y`); the paired difference (`d`) "
        "stays linear, since differences can be negative",
    ),
)


def action_name(action: str) -> str:
    """ "view('loss')" -> "view"."""
    return action.split("(", 1)[0]


# The actions that work in one view only (check_action hides them elsewhere), from the table.
VIEW_ACTIONS = {action_name(b.action): k.view for k in KEYS if k.view for b in k.binds}


def keys_for(mode: str, view: str) -> list[Key]:
    """Every key that works in this mode and view, global ones first."""
    return sorted((k for k in KEYS if mode in k.modes and k.view in ("", view)), key=lambda k: k.view != "")


def _where(rows: list[Key]) -> str:
    views = [VIEW_TITLES[k.view] for k in rows if k.view]
    if views:
        return ", ".join(views)
    modes = frozenset().union(*(k.modes for k in rows))
    return (
        "all"
        if modes == ALL_MODES
        else "not FINISHED"
        if modes == RUNNING
        else ", ".join(sorted(m.upper() for m in modes))
    )


def readme_key_table() -> str:
    """The README's key table (a test keeps README.md equal to it): rows with the same keys and text merge."""
    merged: dict[tuple[str, str], list[Key]] = {}
    for key in sorted(KEYS, key=lambda k: k.view != ""):
        merged.setdefault((key.keys, key.doc or key.what), []).append(key)
    lines = ["| key | what it does | where |", "|---|---|---|"]
    lines += [f"| `{keys}` | {doc} | {_where(rows)} |" for (keys, doc), rows in merged.items()]
    return "\n".join(lines) + "\n"
