"""run_start's config, model and data are read through typed views (issue 19): RunSettings, ModelInfo and
DataInfo, decoded once by the schema's `lenient` (a wrong-typed value is left at its default, never an
exception), while the dicts stay on disk as written."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import msgspec

from engine.log import events as ev
from engine.log.state import RunState

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_MODULES = {ROOT / "engine" / "log" / "events.py", ROOT / "engine" / "log" / "records.py"}
PRODUCT = [ROOT / "engine", ROOT / "freeze_tui", ROOT / "bench"]
PARTS = {"config", "model", "data"}  # run_start's dicts, as RunStart and RunState name them


def test_lenient_keeps_the_fields_of_their_type_and_leaves_the_rest_at_defaults():
    raw = {"batch_size": "x", "session": 3, "block_size": 64, "device": "cpu", "monitor": False, "extra": [1]}
    settings = ev.lenient(raw, ev.RunSettings)
    assert (settings.batch_size, settings.session, settings.block_size) == (None, None, 64)
    assert (settings.device, settings.monitor) == ("cpu", False)
    # as strictly as the log is read: a number as text is no number, a bool no count
    assert ev.lenient({"epochs": "3", "max_steps": True, "batch_size": 4.0}, ev.RunSettings) == ev.RunSettings(
        batch_size=4.0
    )
    assert ev.lenient(None, ev.ModelInfo) == ev.ModelInfo()
    assert ev.lenient([1, 2], ev.DataInfo) == ev.DataInfo()
    assert ev.lenient({"retain": {"n_blocks": "x"}, "n_tokens": 5}, ev.DataInfo) == ev.DataInfo(n_tokens=5)
    assert ev.lenient({"throughput": {"peak_basis": "h100"}}, ev.RunSettings).throughput == ev.ThroughputRecord(
        peak_basis="h100"
    )


def test_a_run_start_folds_into_its_views_and_keeps_its_dicts_as_written():
    config = {"batch_size": "x", "session": 3, "epochs": 2, "device": "cpu", "unknown": {"a": 1}}
    model, data = {"name": "gpt2", "n_params": "many"}, {"n_train_batches": 5, "common_base_rate": None}
    start = ev.RunStart(config=config, model=model, data=data, arms=[ev.ArmRecord(name="full")])
    state = RunState().apply_all([start])
    assert state.config == config and state.model == model and state.data == data
    assert state.settings == ev.RunSettings(epochs=2, device="cpu")
    assert state.model_info == ev.ModelInfo(name="gpt2") and state.data_info == ev.DataInfo(n_train_batches=5)
    assert state.total_steps == 10 and math.isnan(state.tokens_per_step) and math.isnan(state.common_base_rate)
    assert ev.decode(ev.encode(start)) == start  # the bytes: the dicts, not the views


def _string_key_reads(source: str) -> list[tuple[int, str]]:
    """Reads of run_start's dicts by a string key: `x.config["k"]`, `x.model.get("k")`, `"k" in x.data`, and
    the same through a name bound to one of them (`cfg = state.config`; `model, data = s.model, s.data`)."""
    tree = ast.parse(source)
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, value in zip(targets, values, strict=False):
                if isinstance(target, ast.Name) and isinstance(value, ast.Attribute) and value.attr in PARTS:
                    aliases.add(target.id)

    def is_part(expr: ast.AST) -> bool:
        return (isinstance(expr, ast.Attribute) and expr.attr in PARTS) or (
            isinstance(expr, ast.Name) and expr.id in aliases
        )

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_part(node.value):
            key = node.slice
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and is_part(node.func.value)
            and node.args
        ):
            key = node.args[0]
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and is_part(node.comparators[0])
        ):
            key = node.left
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append((node.lineno, key.value))
    return found


def test_the_check_sees_every_form_of_a_string_key_read():
    source = (
        'a = state.config.get("device", "?")\n'
        'b = start.model["name"]\n'
        'c = "retain" in s.data\n'
        "cfg, data = state.config, state.data\n"
        'd = cfg.get("epochs") + data["n_tokens"]\n'
        'state.config["x"] = 1\n'  # a write (the writers build run_start's dicts)
        "e = state.config.get(name)\n"  # a setting named by a variable: generic (a table of every setting)
    )
    assert _string_key_reads(source) == [(1, "device"), (2, "name"), (3, "retain"), (5, "epochs"), (5, "n_tokens")]


def test_no_product_module_reads_run_start_config_model_or_data_by_a_string_key():
    """Readers take state.settings / model_info / data_info (or RunStart.settings() ...): a key the product
    reads is a field of RunSettings, ModelInfo or DataInfo, spelled in the schema only."""
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{line}: {key!r}"
        for folder in PRODUCT
        for path in sorted(folder.rglob("*.py"))
        if path not in SCHEMA_MODULES
        for line, key in _string_key_reads(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_a_run_start_of_wrong_types_everywhere_folds_and_renders():
    """Every setting, model and data value the product reads, of a type no run writes: the report, its
    JSON, the header, the Run view and the ETA read them as not logged instead of raising."""
    import json

    from freeze_tui.app.widgets.header_bar import SourceView, progress_line, run_line
    from freeze_tui.app.widgets.run_view import run_tables
    from freeze_tui.cli.commands.report import json_report
    from freeze_tui.cli.headless import epoch_plan
    from freeze_tui.draw.report import markdown_report, pair_lines
    from tests.synthetic_log import synthetic_events

    junk: dict[str, object] = {"x": [1]}
    events = list(synthetic_events(steps=6, epochs=2))
    start = next(e for e in events if isinstance(e, ev.RunStart))
    config = dict.fromkeys(ev.RunSettings.__struct_fields__, junk) | {"session": 3, "runs": [3, {"arms": 4}]}
    hostile = ev.replaced(
        start,
        config=config,
        model=dict.fromkeys(ev.ModelInfo.__struct_fields__, junk),
        data=dict.fromkeys(ev.DataInfo.__struct_fields__, junk),
    )
    state = RunState().apply_all([hostile if e is start else e for e in events])
    settings = state.settings
    assert msgspec.structs.replace(settings, runs=None, throughput=None) == ev.RunSettings() and state.n_skipped == 0
    assert settings.throughput == ev.ThroughputRecord() and settings.merged_runs() == [ev.MergedRun()]
    assert state.model_info == ev.ModelInfo() and state.data_info == ev.DataInfo(retain=ev.RetainRecord())
    assert "Model: ?" in markdown_report(state) and state.total_steps is None
    assert json.dumps(json_report(state, ("full", "targeted")), allow_nan=False)
    pair_lines(state, "full", "targeted")
    run_line(state, "freeze-tui"), progress_line(state, SourceView()), run_tables(state), epoch_plan(state)
