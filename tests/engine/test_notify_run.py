"""--notify on a real headless run: the run's end reaches the command (JSON on stdin, FREEZE_TUI_*
variables) before the process exits; a command that fails is one warning line and the run exits 0."""

from __future__ import annotations

import json

import pytest

from engine.log.runlog import read_events


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_notify_gets_the_runs_end_and_a_failing_command_only_warns(tiny, tmp_path, capsys):
    model, corpus = tiny
    got = tmp_path / "got.jsonl"
    base = ["run", "--headless", "--model", str(model), "--data", str(corpus), "--epochs", "1", "--max-steps", "2"]
    base += ["--batch-size", "2", "--block-size", "16", "--samples", "0"]
    notify = f'(cat; echo; echo "$FREEZE_TUI_ALERT_KIND $FREEZE_TUI_RUN_STATUS $FREEZE_TUI_LOG") >> {got}'
    log = tmp_path / "ok.jsonl"
    code, out, err = run_main([*base, "--log", str(log), "--notify", notify], capsys)
    assert code == 0, err
    payload, env_line = got.read_text().splitlines()
    run_id = next(iter(read_events(log))).run_id
    assert json.loads(payload) | {"message": ""} == {
        "kind": "run_end",
        "message": "",
        "arm": "",
        "step": 2,
        "status": "finished",
        "run_id": run_id,
        "log": str(log),
    }
    assert json.loads(payload)["message"].startswith(f"run {run_id} finished at step 2: loss full ")
    assert env_line == f"run_end finished {log}"
    code, out, err = run_main([*base, "--log", str(tmp_path / "bad.jsonl"), "--notify", "exit 5"], capsys)
    assert code == 0 and err.count("warning: --notify command failed with exit code 5 (run_end alert)") == 1
