"""Issue 14's hostile inputs, one test per numbered case (signals, pipes and the live app are in
test_signals.py): each reproduces the report and checks what the README's "Failure behaviour" promises.
Crafted files are generated here, small."""

from __future__ import annotations

import io
import os
import random
import stat
import sys
from pathlib import Path

import pytest
from rich.console import Console

from engine.core.errors import FreezeTuiError, LogError
from engine.log.events import encode
from engine.log.runlog import LogFollower, LogWriter, read_events
from engine.run.config import RunConfig
from engine.train.session import RunSession
from freeze_tui.cli.headless import run_headless
from tests import forked
from tests.engine.test_cli_errors import check, cli, run_main
from tests.synthetic_log import synthetic_events, write_synthetic_log
from tests.tiny_models import WORDS, make_tiny_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    make_tiny_model(root, "gpt2", n_layer=2)
    (root / "corpus.txt").write_text(" ".join(random.Random(0).choice(WORDS[2:40]) for _ in range(3000)))
    return root


RUN = ("run", "--headless", "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--block-size", "16")


def args(*extra: str, log: str = "out.jsonl", data: str = "corpus.txt") -> list[str]:
    return [*RUN, "--samples", "0", "--model", "gpt2", "--data", data, "--log", log, *extra]


# -- 1, 2: weights that would be lost ------------------------------------------------------------------------
def test_save_where_an_arm_folder_is_a_file_is_refused_before_training(files):
    (files / "sdir").mkdir(exist_ok=True)
    (files / "sdir" / "full").write_text("x")
    check(cli(*args("--save", "sdir"), cwd=files), "sdir/full is a file, not a folder", "choose another --save")
    assert not (files / "out.jsonl").exists()


def test_save_onto_the_log_is_refused_before_training(files):
    check(cli(*args("--save", "same.jsonl", log="same.jsonl"), cwd=files), "would write into the run log")
    assert not (files / "same.jsonl").exists()


def test_a_save_that_writes_nothing_fails_the_run(files, tmp_path, monkeypatch, capsys):
    from transformers import PreTrainedModel

    # what transformers does with a path it cannot use: it logs and returns
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", lambda self, *a, **k: None)
    monkeypatch.chdir(files)
    code, out, err = run_main([*args(log=str(tmp_path / "r.jsonl")), "--save", str(tmp_path / "w")], capsys)
    assert code == 2 and "no weights were written" in err
    assert list(read_events(tmp_path / "r.jsonl"))[-1].status == "failed"


# -- 3: a live log is locked against a second writer --------------------------------------------------------
def test_overwrite_of_a_log_that_is_being_written_is_refused(tmp_path):
    path = tmp_path / "live.jsonl"
    first = LogWriter(path)
    events = list(synthetic_events(steps=3))
    for event in events[:4]:
        first.write(event)
    before = path.read_bytes()
    with pytest.raises(FreezeTuiError, match="is being written by a run that is still going"):
        LogWriter(path, overwrite=True)
    assert path.read_bytes() == before  # not truncated
    for event in events[4:]:
        first.write(event)
    first.close()
    assert len(list(read_events(path))) == len(events)
    second = LogWriter(path, overwrite=True)  # the first run has ended: --overwrite replaces it
    second.close()
    assert path.read_bytes() == b""


# -- 4: a catastrophic regex ---------------------------------------------------------------------------------
def test_a_catastrophic_regex_is_refused_at_once(files, capsys):
    code, out, err = run_main(["plan", "--model", str(files / "gpt2"), "--arm", "x=+re:(.*.*)*X"], capsys)
    assert code == 2 and "matches no parameter name" in err and "Traceback" not in err


def test_a_slow_regex_is_stopped_at_its_budget(files, monkeypatch):
    from engine.plans import freeze, match
    from engine.train.models import load_layout

    monkeypatch.setattr(match, "REGEX_BUDGET_S", 0.01)
    _, _, layout = load_layout(str(files / "gpt2"))
    with pytest.raises(FreezeTuiError, match="takes longer than 0.01 s .* simplify it"):
        freeze.resolve_plan("x", r"+re:((.)+)+\d{6}$", layout)


# -- 7, 13, 16: only regular files are corpora; unreadable folders are named --------------------------------
def test_devices_fifos_and_pipes_are_not_corpora(files, tmp_path):
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("some text")
    os.symlink("/dev/zero", folder / "zero.txt")
    for data, needle in (("/dev/zero", "/dev/zero is a device"), (str(fifo), "is a FIFO or pipe")):
        check(cli(*args(data=data), cwd=files, timeout=30), needle, "not a regular file")
    check(cli(*args(data=str(folder)), cwd=files, timeout=30), "zero.txt is a device")
    piped = forked.run(
        [sys.executable, "-m", "freeze_tui", *args(data="/dev/stdin")],
        input="some text", capture_output=True, text=True, cwd=files, timeout=30,
    )  # fmt: skip
    check(piped, "/dev/stdin is a FIFO or pipe", "save the text to a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_data_subfolder_is_named(files, tmp_path):
    folder = tmp_path / "data"
    (folder / "locked").mkdir(parents=True)
    (folder / "a.txt").write_text("text")
    (folder / "locked").chmod(0)
    try:
        check(cli(*args(data=str(folder)), cwd=files, timeout=30), "cannot read", "locked", "permissions")
    finally:
        (folder / "locked").chmod(stat.S_IRWXU)


def test_an_empty_data_file_is_refused_before_a_log_is_written(files):
    (files / "empty.txt").write_text("\n  \n")
    check(cli(*args(data="empty.txt"), cwd=files, timeout=30), "holds no text")
    assert not (files / "out.jsonl").exists()


# -- 10, 11: the exit code and the log tell one story ------------------------------------------------------
def test_every_arm_dead_on_the_last_step_is_a_failed_run(files, tmp_path, monkeypatch):
    import engine.train.experiment

    real_step = engine.train.experiment.train_step

    def step(arm, batch, **kw):
        loss, mark = real_step(arm, batch, **kw)
        return (loss * float("nan") if kw["rng_seed"] == 3 else loss), mark  # step 2 of 3: the last one

    monkeypatch.setattr(engine.train.experiment, "train_step", step)
    cfg = RunConfig(
        model=str(files / "gpt2"), data=(str(files / "corpus.txt"),), epochs=1, max_steps=3,
        batch_size=2, block_size=16, samples=0,
    ).validate()  # fmt: skip
    session = RunSession(cfg, tmp_path / "r.jsonl", producer="test")
    out = io.StringIO()
    code = run_headless(session.start(), Console(file=out, width=120, color_system=None))
    assert session.join(10)
    assert code == 1 and "The run failed" in out.getvalue()
    assert list(read_events(tmp_path / "r.jsonl"))[-1].status == "failed"


def test_the_exit_code_follows_the_logged_status():
    from freeze_tui.cli.exit_codes import for_status

    assert [for_status(s) for s in ("finished", "failed", "stopped", "running", "loading")] == [0, 1, 130, 130, 130]


# -- 12: values that passed validation and crashed later ---------------------------------------------------
@pytest.mark.parametrize(
    "extra,needle",
    [
        (("--seed", str(2**70)), "--seed must be an integer from 0 to"),
        (("--lr", "1e39"), "--lr must be a positive number up to"),
        (("--block-size", "1"), "--block-size must be at least 2"),
        (("--weight-decay", "nan"), "--weight-decay must be a non-negative number"),
        (("--grad-clip", "nan"), "--grad-clip must be a non-negative number"),
    ],
)
def test_values_that_crashed_later_are_refused_first(files, extra, needle):
    check(cli(*args(*extra), cwd=files, timeout=30), needle)
    assert not (files / "out.jsonl").exists()


def test_a_prompt_longer_than_the_context_is_bad_input(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(files)
    code, out, err = run_main(args("--prompt", "the " * 80, log=str(tmp_path / "p.jsonl")), capsys)
    assert code == 2 and "tokens, the model's context is 64: leave room" in err


def test_plan_on_an_inconsistent_config_is_one_line(files, tmp_path, capsys):
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(files / "gpt2", bad)
    config = json.loads((bad / "config.json").read_text())
    config["n_head"] = 3
    (bad / "config.json").write_text(json.dumps(config))
    code, out, err = run_main(["plan", "--model", str(bad)], capsys)
    assert code == 2 and "config.json is inconsistent" in err and "divisible" in err


# -- 14: crafted logs ------------------------------------------------------------------------------------------
def crafted(tmp_path: Path) -> dict[str, Path]:
    lines = [encode(e).decode() for e in synthetic_events(steps=4)]
    step = next(i for i, line in enumerate(lines) if '"kind":"step"' in line)

    def variant(name: str, line: str, at: int = step) -> Path:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join([*lines[:at], line, *lines[at + 1 :]]) + "\n")
        return path

    deep = '{"kind":"warning","seq":1,"t":1.0,"message":"x","arm":' + "[" * 2000 + "]" * 2000 + "}"
    return {
        "nested 2000 levels": variant("deep", deep, 1),
        "sum overflow": variant("big", lines[step].replace('"loss":', '"loss":1e308,"x":', 1)),
        "beyond float": variant("h400", lines[step].replace('"loss":', '"loss":1' + "0" * 400 + ',"y":', 1)),
        "step 2**63": variant("huge", lines[step].replace('"step":0', f'"step":{2**63}', 1)),
        "long line": variant("long", '{"kind":"warning","seq":1,"t":1.0,"message":"' + "x" * 2000 + '"}', 1),
    }


@pytest.mark.parametrize("name", ["nested 2000 levels", "sum overflow", "beyond float", "step 2**63"])
def test_crafted_log_content_is_one_line_exit_2(tmp_path, name):
    path = crafted(tmp_path)[name]
    with pytest.raises(LogError, match="line"):
        list(read_events(path))
    check(cli("report", str(path), cwd=tmp_path, timeout=30), str(path))
    if name == "nested 2000 levels":  # on line 2: replay fails before its app starts
        check(cli("replay", str(path), cwd=tmp_path, timeout=30), "nested deeper than")


def test_lines_longer_than_the_bound_are_refused(tmp_path, monkeypatch):
    from engine.log import runlog

    monkeypatch.setattr(runlog, "MAX_LINE", 1000)
    path = crafted(tmp_path)["long line"]
    with pytest.raises(LogError, match="line 2 is longer than"):
        list(read_events(path))
    follower = LogFollower(path)
    with pytest.raises(LogError, match="longer than"):
        follower.poll()


@pytest.mark.parametrize("command", ["report", "replay", "watch"])
def test_non_regular_logs_are_refused(tmp_path, command):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for log in ("/dev/zero", "/dev/null", str(fifo)):
        check(cli(command, log, cwd=tmp_path, timeout=30), "is not a regular file")


# -- 15: watch notices a rotated or rewritten log ----------------------------------------------------------
def test_watch_notices_a_rotated_log(tmp_path):
    path = tmp_path / "run.jsonl"
    write_synthetic_log(path, steps=5, finished=False)
    follower = LogFollower(path)
    assert follower.poll()
    path.rename(tmp_path / "run.jsonl.1")
    write_synthetic_log(path, steps=5)
    with pytest.raises(LogError, match="replaced by another file"):
        follower.poll()


def test_watch_notices_a_truncated_and_rewritten_log(tmp_path):
    path = tmp_path / "run.jsonl"
    write_synthetic_log(path, steps=20, finished=False)
    follower = LogFollower(path)
    assert follower.poll()
    with open(path, "r+b") as f:
        f.truncate(0)
    with pytest.raises(LogError, match="truncated and rewritten"):
        follower.poll()
    follower = LogFollower(path)  # a second run's header further down: not merged into the first
    events = list(synthetic_events(steps=2))
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events) * 2)
    with pytest.raises(LogError, match="rewritten by another run"):
        follower.poll()


def test_an_unreadable_data_subfolder_is_named_in_process(tmp_path, monkeypatch):
    """The same as above where the tests run as root (who reads every folder): scandir refuses."""
    from engine.core.textfiles import find_text_files

    folder = tmp_path / "data"
    (folder / "locked").mkdir(parents=True)
    (folder / "a.txt").write_text("text")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(FreezeTuiError, match="cannot read .*locked \\(Permission denied\\); fix its permissions"):
        find_text_files((str(folder),))


class InterruptedLate:
    """A run interrupted while its last samples are drawn: the loop had already finished, so the log says
    'finished' (or, for two SIGTERMs, 'stopped'), and the exit code and summary must say the same."""

    mode = "live"
    failure = None

    def __init__(self, events: list, interrupts: int) -> None:
        self.events, self.interrupts, self.done, self.stops = events, interrupts, False, 0

    def get_batch(self, timeout: float) -> list:
        if self.interrupts:
            self.interrupts -= 1
            raise KeyboardInterrupt
        batch, self.events = self.events, []
        self.done = not batch
        return batch

    def stop(self) -> None:
        self.stops += 1


@pytest.mark.parametrize("status,interrupts,code", [("finished", 1, 0), ("stopped", 2, 130), ("failed", 1, 1)])
def test_the_exit_code_and_the_summary_tell_the_log_story(status, interrupts, code):
    events = list(synthetic_events(steps=6))
    events[-1] = type(events[-1])(seq=events[-1].seq, t=events[-1].t, status=status, summary=events[-1].summary)
    out = io.StringIO()
    assert run_headless(InterruptedLate(events, interrupts), Console(file=out, width=150, color_system=None)) == code
    assert f"The run {status}" in out.getvalue() and "did not finish" not in out.getvalue()
