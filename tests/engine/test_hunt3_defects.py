"""The third reliability hunt's defects (issue 21, section 2): one reproducing test (or a few) per item,
named after the item's number. Each failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.errors import FreezeTuiError
from engine.run.config import RunConfig
from tests.engine.conftest import run_cli_in_process as cli

PREFIX = "freeze-tui: error: "


def one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, one line on stderr with our prefix and every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(PREFIX), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- 1. an arm named `..` wrote outside --save ----------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "...", "-lead"])
def test_1_dot_only_and_dash_arm_names_are_refused(name):
    with pytest.raises(FreezeTuiError, match="must not start with '-' or be only dots"):
        RunConfig(arms=[(name, "full")]).validate()


def test_1_dot_dot_arm_with_save_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "runs" / "sv2").mkdir(parents=True)
    result = cli("run", "--headless", "--arm", "..=full", "--save", "runs/sv2/inner", "--log", "x.jsonl", cwd=tmp_path)
    one_line(result, "'..'", "only dots")
    assert not (tmp_path / "runs" / "sv2" / "model.safetensors").exists()
    assert not (tmp_path / "x.jsonl").exists()


def test_1_arm_folder_that_is_a_symlink_out_of_save_is_refused(tmp_path):
    from freeze_tui.cli.main import _check_save

    save, elsewhere = tmp_path / "save", tmp_path / "elsewhere"
    save.mkdir()
    elsewhere.mkdir()
    (save / "full").symlink_to(elsewhere)
    cfg = RunConfig(arms=[("full", "full")], save=str(save))
    with pytest.raises(FreezeTuiError, match="would write outside"):
        _check_save(cfg, save, tmp_path / "log.jsonl")


# -- 2, 3, 19. the token cache ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from engine.train.models import load_model
    from tests.tiny_models import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("tok"), "gpt2", n_layer=1))).tokenizer


def words(n: int, seed: int = 0) -> str:
    import random

    from tests.tiny_models import WORDS

    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS[2:40]) for _ in range(8)) for _ in range(n)) + "\n"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FREEZE_TUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tokens"


def test_2_a_file_rewritten_while_tokenized_is_not_served_as_its_other_text(tokenizer, tmp_path, cache, monkeypatch):
    from engine.core.textfiles import read_corpus
    from engine.train import tokens

    data = tmp_path / "a.txt"
    full_text, part_text = words(400), words(40)
    data.write_text(full_text)
    corpus = read_corpus((str(data),))
    real_pieces = tokens._file_pieces

    def rewritten_meanwhile(path, report, *rest):  # hashed whole, then read while a copy rewrites it
        data.write_text(part_text)
        yield from real_pieces(path, report, *rest)
        data.write_text(full_text)

    monkeypatch.setattr(tokens, "_file_pieces", rewritten_meanwhile)
    with pytest.warns(UserWarning, match="changed while it was tokenized"):
        partial = tokens.corpus_tokens(corpus, tokenizer)
    monkeypatch.setattr(tokens, "_file_pieces", real_pieces)
    later = tokens.corpus_tokens(read_corpus((str(data),)), tokenizer)  # the same text as first hashed
    eos = [tokenizer.eos_token_id]
    assert partial.tolist() == tokenizer(part_text, add_special_tokens=False)["input_ids"] + eos
    assert later.tolist() == tokenizer(full_text, add_special_tokens=False)["input_ids"] + eos


def _entry(cache: Path, suffix: str) -> Path:
    (found,) = cache.glob(f"*{suffix}")
    return found


BREAKAGES = {
    "empty meta": (".json", lambda p: p.write_bytes(b"")),
    "truncated bin": (".bin", lambda p: p.write_bytes(p.read_bytes()[:-6])),
    "truncated counts": (".counts.npy", lambda p: p.write_bytes(p.read_bytes()[:40])),
    "id out of range": (".bin", lambda p: p.write_bytes(b"\xff\xff" + p.read_bytes()[2:])),
    "unreadable bin": (".bin", lambda p: p.chmod(0)),
}


@pytest.mark.parametrize("broken", list(BREAKAGES))
def test_3_a_bad_cache_entry_is_a_named_miss(tokenizer, tmp_path, cache, broken):
    from engine.core.textfiles import read_corpus
    from engine.train import tokens

    if broken == "unreadable bin" and os.geteuid() == 0:
        pytest.skip("root reads a 0000 file")
    (tmp_path / "a.txt").write_text(words(100))
    corpus = read_corpus((str(tmp_path / "a.txt"),))
    good = tokens.corpus_tokens(corpus, tokenizer).tolist()
    suffix, damage = BREAKAGES[broken]
    damage(_entry(cache, suffix))
    with pytest.warns(UserWarning, match=r"token cache entry .*\.bin is not usable"):
        again = tokens.corpus_tokens(corpus, tokenizer)
    assert again.tolist() == good
    assert tokens.corpus_tokens(corpus, tokenizer).tolist() == good  # rewritten whole: a hit now


def test_3_token_files_follow_the_umask(tokenizer, tmp_path, cache):
    from engine.core.textfiles import read_corpus
    from engine.train import tokens

    (tmp_path / "a.txt").write_text(words(20))
    old = os.umask(0o022)
    try:
        tokens.corpus_tokens(read_corpus((str(tmp_path / "a.txt"),)), tokenizer)
    finally:
        os.umask(old)
    for suffix in (".bin", ".json", ".counts.npy"):
        assert _entry(cache, suffix).stat().st_mode & 0o777 == 0o644, suffix
    assert not list(cache.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("where", ["a file", "a dangling symlink"])
def test_19_an_unwritable_cache_leaves_no_temporary_folder(tokenizer, tmp_path, monkeypatch, where):
    import tempfile

    from engine.core.textfiles import read_corpus
    from engine.train import tokens

    (tmp_path / "a.txt").write_text(words(20))
    target = tmp_path / "cache"
    if where == "a file":
        target.write_text("x")
    else:
        target.symlink_to(tmp_path / "nowhere" / "at-all")
        (tmp_path / "nowhere").write_text("a file, so the link can never be followed into a folder")
    monkeypatch.setenv("FREEZE_TUI_CACHE", str(target))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen = []
    with pytest.warns(UserWarning, match="cannot be written"):
        ids = tokens.corpus_tokens(
            read_corpus((str(tmp_path / "a.txt"),)), tokenizer, progress=lambda d, t, cached: seen.append(cached)
        )
    assert len(ids) > 0 and int(tokens.token_counts(ids).sum()) == len(ids)
    assert seen and not any(seen)  # "not cached", never "cached for later runs"
    assert list((tmp_path / "tmp").iterdir()) == []


# -- 14, 17, 18. output: CSV cells, write errors ----------------------------------------------------------
def test_14_csv_cells_that_start_like_formulas_are_neutralised(tmp_path):
    import csv

    from tests.synthetic_log import write_synthetic_log

    log = write_synthetic_log(tmp_path / "run.jsonl", steps=20, arms=("full", "=HYPERLINK(1)"))
    result = cli("export", str(log), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = "".join((tmp_path / "out" / f"{name}.csv").read_text() for name in ("steps", "summary"))
    cells = [c for row in csv.reader(text.splitlines()) for c in row]
    assert "'=HYPERLINK(1)" in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)


def test_14_safe_cell_keeps_numbers_and_plain_text():
    from freeze_tui.cli.commands.export import safe_cell

    assert [safe_cell(v) for v in ("+1", "-x", "@sum", "\tq", "ok", -0.5, 3)] == [
        "'+1",
        "'-x",
        "'@sum",
        "'\tq",
        "ok",
        -0.5,
        3,
    ]


def test_17_report_onto_a_full_disk_is_one_line_exit_2_but_a_closed_pipe_stays_silent(tmp_path):
    log = Path(__file__).resolve().parents[2] / "sample_runs" / "demo-full-vs-targeted.jsonl"
    env = {**os.environ, "TERM": "dumb"}
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "freeze_tui", "report", str(log)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr
    piped = subprocess.run(
        f"{sys.executable} -m freeze_tui report {log} | head -c 10 > /dev/null; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=env,
    )
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_17_report_past_a_file_size_limit_is_one_line_exit_2(tmp_path, unbuffered):
    # `ulimit -f 1`: 1 block, while the report is ~2.7 kB. Unbuffered (PYTHONUNBUFFERED, python -u) the
    # short write used to be dropped silently: exit 0 with a cut file.
    log = Path(__file__).resolve().parents[2] / "sample_runs" / "demo-full-vs-targeted.jsonl"
    out = tmp_path / "report.md"
    env = {**os.environ, "TERM": "dumb", "PYTHONUNBUFFERED": unbuffered}
    result = subprocess.run(
        f"ulimit -f 1; exec {sys.executable} -m freeze_tui report {log} > {out}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=env,
    )
    assert 0 < out.stat().st_size < 2000  # the limit cut it
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(PREFIX)
    assert "File too large" in result.stderr and str(out) in result.stderr


def test_18_export_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    from tests.synthetic_log import write_synthetic_log

    log = write_synthetic_log(tmp_path / "run.jsonl", steps=20)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".steps.csv.partial").symlink_to("/dev/full")  # every write there fails with ENOSPC
    result = cli("export", str(log), "--out", str(out), cwd=tmp_path)
    one_line(result, "cannot write the tables", "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == []


# -- 15, 16, 20, 25. the Recorder and the Trainer callback --------------------------------------------------
def _events(log: Path) -> list:
    from engine.log.runlog import read_events

    return list(read_events(log))


def test_16_a_value_beyond_the_log_is_null_with_a_warning_and_the_log_stays_readable(tmp_path):
    from freeze_tui.integrations import Recorder

    log = tmp_path / "r.jsonl"
    with Recorder(log) as rec:
        rec.step(1e300, 0.1)
        rec.step(2.0, 1e300)
    events = _events(log)  # the reader refused the whole log before
    steps = [e.arms["run"] for e in events if e.kind == "step"]
    assert steps[0].loss is None and steps[1].loss == 2.0 and steps[1].lr is None  # null in the log
    assert sum(1 for e in events if e.kind == "warning" and "beyond what a log holds" in e.message) == 1
    assert events[-1].kind == "run_end" and events[-1].status == "finished"
    assert cli("report", str(log), cwd=tmp_path).returncode == 0


def test_20_a_non_scalar_loss_is_refused_at_once_and_the_log_still_ends(tmp_path):
    import torch

    from freeze_tui.integrations import Recorder

    log = tmp_path / "r.jsonl"
    rec = Recorder(log)
    rec.step(torch.tensor(1.5))
    with pytest.raises(ValueError, match="one number"):
        rec.step(torch.ones(4))
    rec.end()
    events = _events(log)
    assert [e.arms["run"].loss for e in events if e.kind == "step"] == [1.5]
    assert events[-1].kind == "run_end" and events[-1].status == "finished"


def test_20_a_loop_that_dies_without_end_still_ends_its_log_failed(tmp_path):
    code = (
        "from freeze_tui.integrations import Recorder\n"
        f"rec = Recorder({str(tmp_path / 'r.jsonl')!r})\n"
        "rec.step(1.0)\n"
        "raise RuntimeError('the loop broke')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "the loop broke" in result.stderr
    events = _events(tmp_path / "r.jsonl")
    assert events[-1].kind == "run_end" and events[-1].status == "failed"
    assert any(e.kind == "error" and "before Recorder.end()" in e.message for e in events)


def test_25_sys_exit_0_inside_a_recorder_block_is_finished(tmp_path):
    from freeze_tui.integrations import Recorder

    log = tmp_path / "r.jsonl"
    with pytest.raises(SystemExit), Recorder(log) as rec:
        rec.step(1.0)
        sys.exit(0)
    assert _events(log)[-1].status == "finished"


@pytest.fixture
def tiny_gpt2(tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import make_tiny_model

    return AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path, "gpt2", n_layer=2))


class _Blocks:
    def __len__(self):
        return 8

    def __getitem__(self, i):
        import torch

        ids = torch.randint(3, 100, (16,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids.clone()}


def _trainer_args(tmp_path, **extra):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=1,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **extra,
    )


def test_15_label_smoothing_leaves_a_warning_not_silent_nulls(tiny_gpt2, tmp_path):
    from transformers import Trainer

    from freeze_tui.integrations.hf import FreezeTuiCallback

    log = tmp_path / "t.jsonl"
    args = _trainer_args(tmp_path, label_smoothing_factor=0.1)
    Trainer(model=tiny_gpt2, args=args, train_dataset=_Blocks(), callbacks=[FreezeTuiCallback(log=log)]).train()
    events = _events(log)
    warnings = [e.message for e in events if e.kind == "warning"]
    assert sum("carries no loss" in m and "label_smoothing_factor" in m for m in warnings) == 1
    assert events[-1].kind == "run_end"


def test_20_an_exception_inside_trainer_train_ends_the_log_and_unhooks(tiny_gpt2, tmp_path):
    from transformers import Trainer

    from freeze_tui.integrations.hf import FreezeTuiCallback

    calls = {"n": 0}

    def breaks_at_second(module, inputs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory (pretend)")

    tiny_gpt2.register_forward_pre_hook(breaks_at_second)
    log = tmp_path / "t.jsonl"
    with pytest.raises(RuntimeError, match="pretend"), FreezeTuiCallback(log=log) as callback:
        Trainer(model=tiny_gpt2, args=_trainer_args(tmp_path), train_dataset=_Blocks(), callbacks=[callback]).train()
    events = _events(log)
    assert events[-1].kind == "run_end" and events[-1].status == "failed"
    assert any(e.kind == "error" and "pretend" in e.message for e in events)
    assert callback._hook is None and not tiny_gpt2._forward_hooks


# -- 22, 23 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["plan", "run"])
def test_22_an_astronomic_memory_limit_is_one_line(tmp_path, command):
    one_line(cli(command, "--memory-limit", "1e400GB", cwd=tmp_path), "--memory-limit '1e400GB'", "beyond any machine")


def test_23_a_newline_in_an_arm_or_run_name_stays_in_its_markdown_row(tmp_path):
    from tests.synthetic_log import write_synthetic_log

    log = write_synthetic_log(tmp_path / "run.jsonl", steps=20, arms=("full", "two\nlines"))
    result = cli("report", "--format", "markdown", f"my\nrun={log}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(rows) == 4 and all(row.endswith("|") for row in rows)  # header, rule, two arms
    assert any("two⏎lines" in row for row in rows)


# -- 25 (CLI), 10 (endpoints) --------------------------------------------------------------------------------
LAUNCH = ("run", "--headless", "--nproc-per-node", "2", "--log", "x.jsonl")
LAUNCH_ERRORS = {
    "detach": (["--detach"], "--detach starts one background process", "--headless"),
    "bogus backend": (["--rdzv-backend", "bogus"], "--rdzv-backend 'bogus' is not one of", "c10d"),
    "backend without endpoint": (["--rdzv-backend", "static"], "needs --rdzv-endpoint"),
    "port too big": (["--rdzv-endpoint", "node0:99999"], "'node0:99999' is not HOST:PORT"),
    "port not a number": (["--rdzv-endpoint", ":abc"], "':abc' is not HOST:PORT"),
    "negative port": (["--rdzv-endpoint", "node0:-1"], "'node0:-1' is not HOST:PORT"),
}


@pytest.mark.parametrize("case", list(LAUNCH_ERRORS))
def test_25_10_launch_settings_are_checked_before_anything_starts(tmp_path, case):
    extra, *needles = LAUNCH_ERRORS[case]
    one_line(cli(*LAUNCH, *extra, cwd=tmp_path), *needles)
    assert not (tmp_path / "x.jsonl").exists()


def test_25_a_block_beyond_the_context_says_so_not_the_memory_plan(tmp_path):
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(
            ["run", "--headless", "--block-size", "100000", "--memory-limit", "1MB", "--log", str(tmp_path / "x.jsonl")]
        )
    assert exit_info.value.code == 2
    from engine.log.runlog import read_events

    errors = [e.message for e in read_events(tmp_path / "x.jsonl") if e.kind == "error"]
    assert errors and "above the model's context" in errors[-1]


# -- 21. watch and a stopped writer ---------------------------------------------------------------------------
def test_21_a_stopped_writer_on_this_host_is_paused_not_gone():
    import signal
    import socket

    from engine.log import events as ev
    from engine.log.liveness import GONE_AFTER_S, WriterWatch

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        now = [1000.0]
        watch = WriterWatch(clock=lambda: now[0], wall=lambda: now[0], host=socket.gethostname())
        watch.saw([ev.Heartbeat(t=now[0], pid=proc.pid, host=socket.gethostname(), phase="step")])
        now[0] += GONE_AFTER_S + 1
        assert watch.gone().startswith(f"writer paused/not responding (pid {proc.pid} alive")
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        assert watch.gone().startswith("writer gone")  # alive and running, yet silent: not paused
    finally:
        proc.kill()
        proc.wait()
