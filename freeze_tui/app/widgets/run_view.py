"""Run view: what this run is -- model, data, every setting from run_start's config, the log,
the producer and when it started. Everything comes from RunState; nothing is computed here."""

from __future__ import annotations

import math
import time

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine.log.state import RunState
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.merged_runs import differing_settings, merged_tables
from freeze_tui.draw.safe_text import safe

# Shown first, in this order, with a readable name; every other config key follows as logged.
FIRST = {
    "lr": "learning rate",
    "warmup": "warm-up steps",
    "weight_decay": "weight decay",
    "grad_clip": "gradient clip",
    "epochs": "epochs",
    "max_steps": "max steps (0 = no limit)",
    "batch_size": "batch size",
    "block_size": "block size (tokens)",
    "seed": "seed",
    "dtype": "dtype",
    "device": "device",
    "placement": "placement",
}
SKIP = {"arms", "extra", "log", "model", "data", "runs"}  # shown elsewhere in this view


def _value(value) -> Text:
    if value is None or value == "" or value == [] or value == {}:
        return Text("–", style="dim")
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return safe(str(value), max_len=200)


def _table(title: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=None, show_header=False, pad_edge=False)
    table.add_column("setting", style="dim", no_wrap=True)
    table.add_column("value")
    return table


def start_time(t: float) -> str:
    return "–" if math.isnan(t) else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def run_tables(state: RunState, log_path: str = "") -> Group:
    cfg, model, data = state.config, state.model_info, state.data_info
    settings = state.settings
    run = _table("Run")
    recorded = settings.log
    rows = [("run id", state.run_id), ("log", log_path or recorded)]
    if recorded and log_path and str(recorded) != log_path:
        rows.append(("recorded as", recorded))  # a copied log: where the run wrote it
    rows += [("written by", state.producer), ("started", start_time(state.t_start))]
    for key, value in rows:
        run.add_row(key, _value(value))
    what = _table("Model and data")
    blocks = f", {model.n_blocks} blocks" if model.n_blocks else ""
    model_name = model.name if model.name is not None else fmt.or_unknown(settings.model)
    what.add_row("model", _value(f"{model_name} ({fmt.or_unknown(model.arch)}{blocks})"))
    what.add_row("parameters", _value(fmt.count(model.n_params)))
    what.add_row("data", _value(data.source or settings.data))
    what.add_row("tokens", _value(f"{fmt.count(data.n_tokens)} ({fmt.or_unknown(data.n_unique)} distinct)"))
    batches = f"{fmt.or_unknown(data.n_train_batches)} train, {fmt.or_unknown(data.n_val_batches)} val"
    what.add_row("batches", _value(batches))
    table = _table("Settings")
    differ = differing_settings(state)  # merged runs: the first run's value would mislead
    for key, label in FIRST.items():
        if key in cfg:
            table.add_row(label, _differs() if key in differ else _value(cfg[key]))
    for key, value in cfg.items():
        if key not in FIRST and key not in SKIP:
            table.add_row(key.replace("_", " "), _differs() if key in differ else _value(value))
    arms = _table("Arms (spec, device)")
    for name, arm in state.arms.items():
        where = Text(f"  on {arm.device}", style="dim") if arm.device else Text("")
        arms.add_row(safe(name, max_len=24), Text.assemble(safe(arm.spec, max_len=120), where))
    if not cfg:
        return Group(run, Text(""), Text("no run_start yet: settings appear once the run has started", style="dim"))
    merged = [part for table in merged_tables(state) for part in (table, Text(""))]
    return Group(run, Text(""), *merged, what, Text(""), table, Text(""), arms)


def _differs() -> Text:
    return Text("differs between the runs: see Settings that differ", style="italic")


class RunView(TextView):
    TEXT_ID = "run-text"

    def key(self, state: RunState) -> tuple:
        return state.run_id, len(state.config), len(state.arms), state.t_start

    def text(self, state: RunState) -> RenderableType:
        return run_tables(state, str(getattr(self.app, "log_path", None) or ""))
