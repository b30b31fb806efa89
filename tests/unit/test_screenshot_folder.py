"""ctrl+s in a replay never writes into a git work tree (the repo's sample_runs/); the env var and the option win."""

from __future__ import annotations

from pathlib import Path

from freeze_tui.app.screenshots import HOME_FOLDER, screenshot_folder

REPO_SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs" / "demo-full-targeted-lora.jsonl"


def test_a_replayed_log_in_a_git_work_tree_saves_elsewhere(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sample_runs").mkdir()
    log = repo / "sample_runs" / "run.jsonl"
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert screenshot_folder(log, replay=True, env={}) == Path(".")  # the current directory
    assert screenshot_folder(log, replay=False, env={}) == log.parent  # a live run's log: its own folder
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert screenshot_folder(log, replay=True, env={}) == tmp_path / "home" / HOME_FOLDER
    assert screenshot_folder(log, replay=True, env={"FREEZE_TUI_SCREENSHOTS": "~/shots"}) == tmp_path / "home" / "shots"
    assert screenshot_folder(log, replay=True, given="mine", env={"FREEZE_TUI_SCREENSHOTS": "x"}) == Path("mine")


def test_a_log_outside_any_work_tree_keeps_its_screenshots(tmp_path):
    log = tmp_path / "runs" / "run.jsonl"
    log.parent.mkdir()
    assert screenshot_folder(log, replay=True, env={}) == log.parent


def test_the_projects_sample_runs_are_never_the_folder():
    assert screenshot_folder(REPO_SAMPLES, replay=True, env={}).resolve() != REPO_SAMPLES.parent
