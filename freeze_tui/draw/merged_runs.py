"""The Run view's part for merged logs: which run each short name stands for, and the settings that differ
between the runs (both from run_start's `config.runs`, written by engine.log.merge). Pure.

Also `fit_arm`: an arm name cut to a width without hiding the arm: a merged arm `<run>/<arm>` loses
its run part first."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from engine.log.comparisons import run_groups
from engine.log.events import MergedRun
from engine.log.state import RunState
from freeze_tui.draw.safe_text import ELLIPSIS, safe


def merged_runs(state: RunState) -> list[MergedRun]:
    """The runs of merged logs as recorded in run_start (`[]` for a single log)."""
    return state.settings.merged_runs()


def differing_settings(state: RunState) -> set[str]:
    return {str(k) for run in merged_runs(state) for k in run.settings}


def fit_arm(name: str, width: int) -> str:
    """`name` in at most `width` characters: `demo-full-targeted/lora` -> `demo-f…/lora`; where not even
    that fits, the run's initial and the arm, cut last and in the middle (`d/lora`, `d/lo…a`)."""
    if len(name) <= width:
        return name
    run, sep, arm = name.rpartition("/")
    if sep:
        room = width - len(arm) - 1  # what is left for the run part
        if room >= 2:
            return f"{run[: room - 1]}{ELLIPSIS}/{arm}"
        if width >= 4:  # the run's initial still tells `l/ta…ed` from `r/ta…ed`
            return f"{run[:1]}/{_cut(arm, width - 2)}"
    return _cut(name, width)


def _cut(name: str, width: int) -> str:
    """`name` in `width` characters, cut in the middle: `random-1` -> `rand…-1` (the ends tell arms apart)."""
    if len(name) <= width:
        return name
    if width < 4:
        return name[: max(0, width - 1)] + ELLIPSIS
    tail = max(1, (width - 1) // 3)
    return name[: width - 1 - tail] + ELLIPSIS + name[-tail:]


def _or(value: str | None, missing: str) -> str:
    return missing if value is None else value


def _cell(value, max_len: int = 120) -> Text:
    if value is None or value == "" or value == [] or value == {}:
        return Text("–", style="dim")
    return safe(", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value), max_len=max_len)


def merged_tables(state: RunState) -> list[Table]:
    """`Merged runs` (short name, run, run id, arms) and `Settings that differ` (one column per run);
    nothing for a single log."""
    runs = merged_runs(state)
    if len(runs) < 2:
        return []
    legend = Table(title="Merged runs", title_justify="left", title_style="bold", box=None, pad_edge=False)
    for column in ("", "run", "run id", "arms"):
        legend.add_column(column, style="dim" if column == "run id" else None)
    groups = run_groups(state)  # each run's arms, in the order of the runs
    for k, run in enumerate(runs):
        arms = [a.rpartition("/")[2] for a in groups[k]] if len(groups) == len(runs) else []
        short = _or(run.short, _or(run.name, "?"))
        legend.add_row(Text(short, style="bold"), safe(_or(run.name, "?")), safe(_or(run.run_id, "")), _cell(arms))
    settings = [run.settings for run in runs]
    keys = list(dict.fromkeys(k for s in settings for k in s))
    diff = Table(title="Settings that differ", title_justify="left", title_style="bold", box=None, pad_edge=False)
    diff.add_column("setting", style="dim", no_wrap=True)
    for run in runs:
        diff.add_column(safe(_or(run.short, "?")).plain)
    for key in keys:
        diff.add_row(key.replace("_", " "), *(_cell(s.get(key)) for s in settings))
    if not keys:
        diff.add_row(Text("none: every setting is the same in every run", style="dim"))
    return [legend, diff]


def runs_markdown(state: RunState) -> list[str]:
    """The report's legend of merged runs: what each short name stands for and the settings that differ
    (`[]` for a single log)."""
    runs = merged_runs(state)
    if len(runs) < 2:
        return []
    names = "; ".join(f"**{_or(r.short, '?')}** = {_or(r.name, '?')} (run {_or(r.run_id, '?')})" for r in runs)
    settings = [run.settings for run in runs]
    keys = list(dict.fromkeys(k for s in settings for k in s))
    differ = "; ".join(f"{k}: " + " / ".join(_cell(s.get(k), 400).plain for s in settings) for k in keys)
    return [f"Runs: {names}.", "", f"Settings that differ: {differ or 'none'}.", ""]
