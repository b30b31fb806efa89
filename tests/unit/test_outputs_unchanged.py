"""`report` and `export` of every sample run give what they gave before the event types were rewritten
(the expected outputs under tests/data/golden/ were recorded from main at 687c27b), and so does the
run_end summary a run would write for them. A change that is meant (a new column, corrected statistics)
re-records them: FREEZE_TUI_UPDATE_GOLDEN=1 pytest tests/unit/test_outputs_unchanged.py, and the commit
says why."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec
import pytest

from engine.log.runlog import read_events
from engine.log.state import RunState
from engine.log.summary import summarize
from freeze_tui.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"
RUNS = ["demo-full-targeted-lora", "demo-full-targeted-reverse", "demo-full-vs-targeted"]
CASES = {name: [f"sample_runs/{name}.jsonl"] for name in RUNS} | {
    "merged": ["sample_runs/demo-full-vs-targeted.jsonl", "sample_runs/demo-full-targeted-lora.jsonl"]
}
TABLES = ["steps.csv", "dw.csv", "samples.csv", "summary.csv"]
UPDATE = os.environ.get("FREEZE_TUI_UPDATE_GOLDEN") == "1"


def check(path: Path, data: bytes) -> None:
    if UPDATE:
        path.write_bytes(data)
    assert data == path.read_bytes()


def run_cli(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0 and err == ""
    return out


def expected_hashes() -> dict[str, str]:
    lines = (GOLDEN / "export.sha256").read_text().splitlines()
    return {path: digest for digest, path in (line.split() for line in lines)}


@pytest.mark.parametrize("case", list(CASES))
def test_report_and_export_as_before(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    report = run_cli(capsys, "report", "--format", "markdown", *CASES[case])
    check(GOLDEN / f"{case}.md", report.encode("utf-8"))
    run_cli(capsys, "export", "--out", str(tmp_path), *CASES[case])
    check(GOLDEN / f"{case}.summary.csv", (tmp_path / "summary.csv").read_bytes())
    hashes = expected_hashes()
    for table in TABLES:
        digest = hashlib.sha256((tmp_path / table).read_bytes()).hexdigest()
        if UPDATE and hashes.get(f"{case}/{table}") != digest:
            hashes[f"{case}/{table}"] = digest
            lines = [f"{d}  {p}" for p, d in sorted(hashes.items())]
            (GOLDEN / "export.sha256").write_text("\n".join(lines) + "\n")
        assert digest == hashes[f"{case}/{table}"], table


@pytest.mark.parametrize("name", RUNS)
def test_run_end_summary_as_before(name):
    state = RunState().apply_all(read_events(ROOT / "sample_runs" / f"{name}.jsonl"))
    written = msgspec.json.encode(msgspec.json.decode(msgspec.json.encode(summarize(state), enc_hook=str)))
    check(GOLDEN / f"{name}.summary.json", written + b"\n")
