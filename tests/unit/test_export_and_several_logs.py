"""`export` writes tidy CSV tables; `report` and `export` take several logs; bad input: one line, exit 2."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from engine.log.runlog import read_events
from engine.log.state import RunState
from engine.log.summary import arm_rows
from freeze_tui.cli.main import main
from tests.synthetic_log import write_synthetic_log

TABLES = ["steps.csv", "dw.csv", "samples.csv", "summary.csv"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def log(tmp_path) -> Path:
    return write_synthetic_log(tmp_path / "run.jsonl", steps=30, arms=("full", "targeted", "reverse"))


def test_export_writes_tidy_tables(tmp_path, log, capsys):
    code, out, err = run_cli(capsys, "export", str(log), "--out", str(tmp_path / "tables"))
    assert code == 0 and err == "" and "steps.csv  (90 rows)" in out
    steps = read_csv(tmp_path / "tables" / "steps.csv")
    assert list(steps[0]) == ["step", "epoch", "arm", "loss", "dt", "lr"]
    assert len(steps) == 30 * 3 and {r["arm"] for r in steps} == {"full", "targeted", "reverse"}
    state = RunState().apply_all(read_events(log))
    assert [float(r["loss"]) for r in steps if r["arm"] == "targeted"] == list(state.arms["targeted"].losses)
    dw = read_csv(tmp_path / "tables" / "dw.csv")
    assert list(dw[0]) == ["step", "arm", "matrix", "dw", "drift", "rel"]
    assert {r["step"] for r in dw} == {"0", "10", "20"} and all(r["drift"] != "" for r in dw)
    samples = read_csv(tmp_path / "tables" / "samples.csv")
    assert {r["phase"] for r in samples} == {"pre", "epoch"} and all(r["text"] for r in samples)
    summary = read_csv(tmp_path / "tables" / "summary.csv")
    rows = arm_rows(state)
    assert [r["arm"] for r in summary] == [r.arm for r in rows]
    assert float(summary[1]["r"]) == pytest.approx(rows[1].r) and float(summary[1]["T"]) == rows[1].T
    assert float(summary[1]["p_post"]) == pytest.approx(rows[1].p_post)
    assert summary[1]["p_post_hi"] == ""  # 2 prompts: no interval (issue 18), an empty cell


def test_export_keeps_existing_tables_unless_told(tmp_path, log, capsys):
    out_dir = tmp_path / "tables"
    out_dir.mkdir()
    (out_dir / "steps.csv").write_text("mine\n")
    code, _, err = run_cli(capsys, "export", str(log), "--out", str(out_dir))
    assert code == 2 and err.count("\n") == 1 and "steps.csv" in err and "--overwrite" in err
    assert (out_dir / "steps.csv").read_text() == "mine\n" and sorted(p.name for p in out_dir.iterdir()) == [
        "steps.csv"
    ]
    code, _, _ = run_cli(capsys, "export", str(log), "--out", str(out_dir), "--overwrite")
    assert code == 0 and (out_dir / "steps.csv").read_text().startswith("step,epoch,arm")


@pytest.mark.parametrize("content", [b"not a log\n", None])
def test_export_of_a_bad_log_writes_nothing(tmp_path, log, capsys, content):
    bad = tmp_path / "bad.jsonl"
    if content is None:  # a good start, then a corrupt line in the middle
        lines = log.read_bytes().splitlines(keepends=True)
        content = b"".join(lines[:40]) + b"{broken\n" + b"".join(lines[40:])
    bad.write_bytes(content)
    out_dir = tmp_path / "tables"
    code, out, err = run_cli(capsys, "export", str(bad), "--out", str(out_dir))
    assert code == 2 and err.startswith("freeze-tui: error: ") and err.count("\n") == 1
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_export_and_report_of_several_logs(tmp_path, capsys):
    a = write_synthetic_log(tmp_path / "runA.jsonl", steps=20, seed=1)
    b = write_synthetic_log(tmp_path / "runB.jsonl", steps=20, seed=2)
    code, _, _ = run_cli(capsys, "export", str(a), str(b), "--out", str(tmp_path / "t"))
    assert code == 0
    arms = {r["arm"] for r in read_csv(tmp_path / "t" / "steps.csv")}
    assert arms == {"runA/full", "runA/targeted", "runB/full", "runB/targeted"}
    code, out, _ = run_cli(capsys, "report", str(a), str(b))
    assert code == 0 and out.count("# freeze-tui report") == 1 and "runA.jsonl + runB.jsonl" in out
    table = [line for line in out.splitlines() if line.startswith("| run")]
    assert [line.split(" | ")[0] for line in table] == [
        "| runA/full",
        "| runA/targeted",
        "| runB/full",
        "| runB/targeted",
    ]


def test_report_as_text_fits_80_columns(log, capsys):
    code, out, _ = run_cli(capsys, "report", "--format", "text", str(log))
    lines = out.splitlines()
    assert code == 0 and all(len(line) <= 80 for line in lines) and "|" not in out
    assert "reverse" in lines and any(line.startswith("  trains 6.58 %") for line in lines)


def test_runs_named_on_the_command_line(tmp_path, capsys):
    a = write_synthetic_log(tmp_path / "20261129-120000-gpt2.jsonl", steps=10, seed=1)
    b = write_synthetic_log(tmp_path / "20261130-090000-gpt2.jsonl", steps=10, seed=2)
    code, out, _ = run_cli(capsys, "report", f"yesterday={a}", f"today={b}")
    assert code == 0 and "| yesterday/full |" in out and "| today/targeted |" in out
    code, _, err = run_cli(capsys, "report", f"x={a}", f"x={b}")
    assert code == 2 and "named alike" in err


def test_several_logs_fail_on_the_bad_one(tmp_path, capsys):
    a = write_synthetic_log(tmp_path / "a.jsonl", steps=5)
    for command in ("report", "replay", "watch"):
        code, _, err = run_cli(capsys, command, str(a), str(tmp_path / "missing.jsonl"))
        assert code == 2 and "missing.jsonl does not exist" in err and err.count("\n") == 1, (command, err)


def test_export_and_report_stay_torch_free(tmp_path, log):
    code = (
        "import sys; from freeze_tui.cli.main import cli; "
        f"cli.main(args=['export', {str(log)!r}, '--out', {str(tmp_path / 'x')!r}], standalone_mode=False); "
        f"cli.main(args=['report', {str(log)!r}], standalone_mode=False); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
