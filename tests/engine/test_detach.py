"""run --detach: the background run outlives its viewer, and a new watch re-attaches to it."""

from __future__ import annotations

import random
import time

from engine.log.sources import WatchSource
from engine.run.config import RunConfig
from freeze_tui.cli.detach import child_argv, detach_run
from tests.tiny_models import WORDS, make_tiny_model


def test_child_argv_runs_headless_with_the_fixed_log(tmp_path):
    argv = child_argv(["run", "--detach", "--epochs", "2"], tmp_path / "x.jsonl")
    assert argv[1:] == ["-m", "freeze_tui", "run", "--epochs", "2", "--headless", "--log", str(tmp_path / "x.jsonl")]
    assert child_argv(["--detach"], tmp_path / "y.jsonl")[3] == "run"


def test_detached_run_keeps_going_after_the_viewer_quits(tmp_path, monkeypatch):
    model = make_tiny_model(tmp_path, "gpt2", n_layer=2)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(random.Random(0).choice(WORDS[2:40]) for _ in range(1500)))
    log = tmp_path / "runs" / "detached.jsonl"
    monkeypatch.chdir(tmp_path)
    args = [
        "run",
        "--model",
        str(model),
        "--data",
        str(corpus),
        "--epochs",
        "2",
        "--block-size",
        "16",
        "--batch-size",
        "4",
        "--samples",
        "1",
        "--sample-tokens",
        "4",
        "--detach",
    ]
    seen_by_viewer = []

    def viewer(path):  # the first viewer sees the run start, then "quits" (terminal gone)
        source = WatchSource(path)
        deadline = time.monotonic() + 60
        while not any(e.kind == "step" for e in seen_by_viewer) and time.monotonic() < deadline:
            seen_by_viewer.extend(source.get_batch(0.2))
        source.stop()

    cfg = RunConfig(model=str(model), data=(str(corpus),), epochs=2).validate()
    assert detach_run(cfg, log, args, viewer=viewer) == 0
    assert any(e.kind == "step" for e in seen_by_viewer)
    # re-attach: a new watch follows the same log to its end
    source, kinds = WatchSource(log), []
    deadline = time.monotonic() + 120
    while not source.done and time.monotonic() < deadline:
        kinds.extend(e.kind for e in source.get_batch(0.5))
    assert kinds[0] == "header" and kinds[-1] == "run_end", kinds[-3:]
    assert kinds.count("step") > sum(1 for e in seen_by_viewer if e.kind == "step")


def test_background_run_that_cannot_start_reports_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "bad.jsonl"
    cfg = RunConfig(model=str(tmp_path / "nope"))
    try:
        detach_run(cfg, log, ["run", "--model", str(tmp_path / "nope"), "--detach"], viewer=lambda p: None)
    except Exception as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("a background run without a model should not look started")


# -- issue 14, case 8 ------------------------------------------------------------------------------------------
def tiny_run(tmp_path) -> tuple[list[str], RunConfig]:
    model = make_tiny_model(tmp_path, "gpt2", n_layer=1)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(random.Random(0).choice(WORDS[2:40]) for _ in range(1500)))
    args = ["run", "--model", str(model), "--data", str(corpus), "--epochs", "1", "--max-steps", "1"]
    args += ["--block-size", "16", "--batch-size", "2", "--samples", "0"]
    return args, RunConfig(model=str(model), data=(str(corpus),)).validate()


def test_a_background_run_given_up_on_is_killed(tmp_path, monkeypatch):
    import subprocess

    import pytest

    from engine.core.errors import FreezeTuiError
    from freeze_tui.cli import detach

    args, cfg = tiny_run(tmp_path)
    started = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(detach.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
    monkeypatch.setattr(detach, "START_TIMEOUT", 0.3)  # torch alone takes longer to import
    with pytest.raises(FreezeTuiError, match="did not start within .* and was stopped"):
        detach_run(cfg, tmp_path / "r.jsonl", [*args, "--detach"], viewer=lambda p: None)
    assert started and started[0].poll() is not None  # no orphan trains on unseen


def test_detach_keeps_an_existing_output_file_and_accepts_a_log_named_out(tmp_path):
    import pytest

    from engine.core.errors import FreezeTuiError
    from freeze_tui.cli.detach import output_path

    (tmp_path / "r.out").write_text("an earlier run's output")
    with pytest.raises(FreezeTuiError, match="r.out .* already exists"):
        detach_run(RunConfig(), tmp_path / "r.jsonl", ["run"], viewer=lambda p: None)
    assert (tmp_path / "r.out").read_text() == "an earlier run's output"
    assert output_path(tmp_path / "new.out") == tmp_path / "new.out.out"


def test_headless_detach_returns_once_started_and_the_run_goes_on(tmp_path):
    args, cfg = tiny_run(tmp_path)
    log = tmp_path / "h.jsonl"
    viewed = []
    assert detach_run(cfg, log, [*args, "--headless", "--detach"], viewer=viewed.append, watch=False) == 0
    assert not viewed  # --headless: no viewer, no app without a terminal
    source, kinds = WatchSource(log), []
    deadline = time.monotonic() + 120
    while not source.done and time.monotonic() < deadline:
        kinds.extend(e.kind for e in source.get_batch(0.5))
    assert kinds[-1] == "run_end"
