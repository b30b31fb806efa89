"""The event schema is one schema in two files (events.py, records.py): sample runs re-encode to their own
bytes, old lines still read, no other product file spells an event key as a string, and the schema is
imported through one path, engine.log.events."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from engine.log import events as ev

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RUNS = sorted((ROOT / "sample_runs").glob("*.jsonl"))
SCHEMA_MODULES = {ROOT / "engine" / "log" / "events.py", ROOT / "engine" / "log" / "records.py"}
PRODUCT = [ROOT / "engine", ROOT / "freeze_tui", ROOT / "bench"]
# keys of the per-arm step record and of the dw maps: attributes of ArmStep / ArmDW / DW everywhere else
EVENT_KEYS = {"loss", "dt", "lr", "arms", "drift", "rel"}
# the keys of run_start's arm records (ArmRecord, AdapterRecord) that are no other record's words
EVENT_KEYS |= {"flop_ratio", "r_pred", "grid", "init_checksum", "lora", "dora", "matrices"}
# the same words as other keys, in files that also read events
ALLOWED = {
    ("engine/train/setup.py", "lr"): "the config's lr (a RunConfig setting)",
    ("freeze_tui/app/widgets/run_view.py", "lr"): "the config's lr, labelled",
    ("freeze_tui/app/activity.py", "arms"): "an engine phase's name",
    ("freeze_tui/cli/commands/study.py", "arms"): "the run command's --arm option",
    ("freeze_tui/cli/commands/report.py", "arms"): "the JSON report's per-arm part",
    ("engine/run/config.py", "arms"): "the --arm setting in run_start.config",
    ("freeze_tui/cli/resume.py", "arms"): "the --arm setting in run_start.config, read back for --resume",
    ("engine/train/session_checkpoints.py", "lr"): "the config's lr, resolved as run_start records it",
}


@pytest.mark.parametrize("path", SAMPLE_RUNS, ids=lambda p: p.name)
def test_every_sample_run_re_encodes_byte_identically(path):
    lines = path.read_bytes().splitlines()
    assert lines
    for number, line in enumerate(lines, 1):
        assert ev.encode(ev.decode(line)) == line, f"{path.name}:{number}"


def test_lines_of_older_logs_read_with_defaults():
    """A sample before `ids`, an epoch record before `val_batches`, a dw line before drift/rel."""
    sample = ev.decode(b'{"kind":"sample","seq":2,"t":1.0,"phase":"pre","arm":"*","p":0.5,"index":0,"epoch":-1}')
    assert isinstance(sample, ev.Sample) and sample.p == 0.5 and sample.ids is ev.UNSET
    epoch = ev.decode(b'{"kind":"epoch_end","seq":3,"t":1.0,"epoch":0,"arms":{"a":{"loss_mean":2.5,"x":1}}}')
    assert isinstance(epoch, ev.EpochEnd) and epoch.arms["a"].loss_mean == 2.5
    assert list(epoch.arms["a"].val_batch_losses) == [] and epoch.arms["a"].t_total is None
    dw = ev.decode(b'{"kind":"dw","seq":4,"t":1.0,"step":0,"arms":{"a":{"h.0.attn.q":0.5}}}')
    assert isinstance(dw, ev.DW) and dw.by_arm() == {"a": ev.ArmDW({"h.0.attn.q": 0.5})}


def test_a_dw_line_with_malformed_maps_reads_as_no_norms():
    dw = ev.decode(b'{"kind":"dw","seq":4,"t":1.0,"step":0,"arms":{"a":[1,2]},"drift":{},"rel":{}}')
    assert isinstance(dw, ev.DW) and dw.by_arm() == {} and dw.norms_of("a") is None


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b'{"kind":"step","seq":1,"t":1.0,"step":1e400}', "bad step event|out of range"),
        (b'{"kind":"step","seq":1,"t":1.0,"step":9007199254740993}', "bad step event|out of range"),
        (b'{"kind":"nope","seq":1}', "unknown event kind 'nope'"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"kind":"run_start","config":{"a":1e200}}', "out of range"),
        (b'{"kind":"run_end","summary":' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
    ],
)
def test_bad_lines_say_what_is_wrong(line, words):
    with pytest.raises(ev.LogError, match=words):
        ev.decode(line)


def _keys_spelled(path: Path) -> list[tuple[int, str]]:
    """String constants used as a key: `x["k"]`, `x.get("k")`, `{"k": v}`, `getattr(x, "k")`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Subscript):
            keys = [node.slice]
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop"):
            keys = node.args[:1]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            keys = node.args[1:2]
        else:
            continue
        out += [(k.lineno, k.value) for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return out


def _reads_events(path: Path) -> bool:
    return any(line.lstrip().startswith("from engine.log") for line in path.read_text(encoding="utf-8").splitlines())


def test_no_event_key_is_spelled_outside_the_schema_module():
    """Readers and producers of events use ArmStep / ArmDW / DW attributes, never the log's key strings."""
    found = [
        f"{name}:{line}: {value!r}"
        for folder in PRODUCT
        for path in sorted(folder.rglob("*.py"))
        if path not in SCHEMA_MODULES and _reads_events(path)
        for name in [path.relative_to(ROOT).as_posix()]
        for line, value in _keys_spelled(path)
        if value in EVENT_KEYS and (name, value) not in ALLOWED
    ]
    assert found == []
    unused = [key for key in ALLOWED if key[1] not in {value for _, value in _keys_spelled(ROOT / key[0])}]
    assert unused == [], "allowed words a file no longer spells: remove them from ALLOWED"


# `.kind` compared with one of these words, outside the schema, is another thing's kind, not an event's
KIND_ALLOWED = {
    ("freeze_tui/app/alerting.py", "run_end"): "an Alert's kind (engine/log/alerts.py)",
    ("freeze_tui/cli/headless.py", "run_end"): "an Alert's kind (engine/log/alerts.py)",
}


def _kinds_spelled(path: Path) -> list[tuple[int, str]]:
    """Event kinds written as text: `x.kind == "step"` (or !=, in) and byte or text constants that hold
    `"kind":"...`, the start of a logged line."""
    tags = {kind.kind for kind in ev.Event.__subclasses__()}
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode("utf-8", "replace") if isinstance(node.value, bytes) else node.value
            if '"kind":"' in text:
                out.append((node.lineno, text))
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "kind":
            for right in node.comparators:
                words = right.elts if isinstance(right, (ast.Tuple, ast.List, ast.Set)) else [right]
                out += [(w.lineno, w.value) for w in words if isinstance(w, ast.Constant) and w.value in tags]
    return out


def test_no_event_kind_is_spelled_outside_the_schema_module():
    """Readers tell events apart by type (isinstance) and scan a log's bytes with `line_mark(kind)`."""
    found = [
        f"{name}:{line}: {value!r}"
        for folder in PRODUCT
        for path in sorted(folder.rglob("*.py"))
        if path not in SCHEMA_MODULES
        for name in [path.relative_to(ROOT).as_posix()]
        for line, value in _kinds_spelled(path)
        if (name, value) not in KIND_ALLOWED
    ]
    assert found == []
    assert ev.line_mark(ev.Resumed) in ev.encode(ev.Resumed(seq=3, t=1.0, after_seq=2))


def _imports_records(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (
            node.module == "engine.log.records"
            or (node.module == "engine.log" and any(alias.name == "records" for alias in node.names))
        ):
            return True
        if isinstance(node, ast.Import) and any(alias.name == "engine.log.records" for alias in node.names):
            return True
    return False


def _defined_at_top(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return {name for name in names if not name.startswith("_")}


def test_the_schema_has_one_import_path_and_files_under_500_lines():
    """records.py is the schema's second file: events.py re-exports all of it, and only events.py imports it."""
    records = importlib.import_module("engine.log.records")  # (this test is the one other reader)
    importers = [
        path.relative_to(ROOT).as_posix()
        for folder in [*PRODUCT, ROOT / "tests", ROOT / "tools"]
        for path in sorted(folder.rglob("*.py"))
        if _imports_records(path)
    ]
    assert importers == ["engine/log/events.py"]
    names = _defined_at_top(ROOT / "engine" / "log" / "records.py")
    assert {"ArmSummary", "SEED_MEANS", "MAX_ABS", "epoch_record"} <= names
    assert [name for name in sorted(names) if getattr(ev, name, None) is not getattr(records, name)] == []
    assert all(len(path.read_text(encoding="utf-8").splitlines()) < 500 for path in SCHEMA_MODULES)


def test_run_start_arms_are_typed_records_in_the_order_written():
    line = (
        b'{"kind":"run_start","seq":1,"t":1.0,"config":{},"model":{},"data":{},"common_tokens":[],"arms":['
        b'{"name":"lora","spec":"lora:8:attn","trainable":10,"total":100,"flop_ratio":0.5,"r_pred":0.5,'
        b'"grid":{"blocks":2},"lora":{"r":8,"alpha":16.0,"matrices":3},"init_checksum":"ab","device":"cpu",'
        b'"memory":{"weights":4,"total":4.5}},{"name":"full","spec":"full","trainable":0,"total":0}]}'
    )
    start = ev.decode(line)
    assert isinstance(start, ev.RunStart) and all(isinstance(a, ev.ArmRecord) for a in start.arms)
    lora, full = start.arms
    assert (
        lora.lora == ev.AdapterRecord(8, 16.0, 3)
        and lora.dora is ev.UNSET
        and lora.memory == {"weights": 4, "total": 4.5}
    )
    assert full.flop_ratio is ev.UNSET and full.grid is ev.UNSET
    assert ev.encode(start) == line


@pytest.mark.parametrize(
    "arm", [b'{"name":"a","trainable":1e200}', b'{"name":"a","grid":{"x":1e200}}', b'{"name":"a","memory":{"x":"y"}}']
)
def test_an_arm_record_out_of_range_or_of_the_wrong_type_is_refused(arm):
    with pytest.raises(ev.LogError, match="run_start|out of range"):
        ev.decode(b'{"kind":"run_start","seq":1,"t":1.0,"arms":[' + arm + b"]}")


def test_the_recorder_without_a_plan_writes_the_canonical_arm_record(tmp_path):
    from engine.log.runlog import read_events
    from freeze_tui.integrations.recorder import Recorder

    rec = Recorder(tmp_path / "run.jsonl", arm="mine", main_process=True)
    rec.end()
    start = next(e for e in read_events(tmp_path / "run.jsonl") if isinstance(e, ev.RunStart))
    assert start.arms == [ev.ArmRecord(name="mine")]
    assert b'"arms":[{"name":"mine","spec":"","trainable":0,"total":0}]' in ev.encode(start)
