"""Bad input ends with one clear line on stderr, exit code 2, no traceback, nothing already written lost.

Two tiers, cheapest first:
* `freeze_tui.cli.main.main` in-process, the same entry point `python -m freeze_tui` calls, for every error
  found before or after the run started (config, spec syntax, data files, log paths, unreadable logs,
  model, tokenizer, plan, context, device): no interpreter and torch start-up per case;
* one real subprocess for a post-start error, to see the terminal split for real: `log: PATH` on
  stdout, the one error line on stderr, and a valid log that ends with run_end "failed".
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.log.runlog import read_events
from tests.engine.conftest import run_cli_in_process
from tests.engine.conftest import run_cli_process as cli_process
from tests.synthetic_log import write_synthetic_log
from tests.tiny_models import WORDS, make_tiny_model

PREFIX = "freeze-tui: error: "


# -- helpers ------------------------------------------------------------------------------------------
def cli(*args: str, cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`freeze-tui ARGS` in-process through `main`, in `cwd`; starting an app fails the test (bad input
    must be refused before any app starts). With a `timeout`: in a real process that may not outlive it
    (for inputs that could block a process, e.g. a FIFO as data)."""
    if timeout is not None:
        return cli_process(*args, cwd=cwd, timeout=timeout)
    return run_cli_in_process(*args, cwd=cwd)


def one_error_line(stderr: str, stdout: str, code: int, *needles: str) -> str:
    """Exit 2, exactly one non-empty line on stderr with our prefix and every needle, no traceback."""
    assert code == 2, f"exit code {code}; stderr: {stderr!r}"
    assert "Traceback" not in stderr and "Traceback" not in stdout
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith(PREFIX), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def check(result: subprocess.CompletedProcess, *needles: str) -> str:
    return one_error_line(result.stderr, result.stdout, result.returncode, *needles)


def assert_failed_log(path: Path, message_part: str) -> None:
    """The log written so far is valid and ends with run_end 'failed' after a fatal error event."""
    events = list(read_events(path))
    assert events[0].kind == "header"
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].kind == "run_end" and events[-1].status == "failed"
    errors = [e for e in events if e.kind == "error"]
    assert errors and errors[-1].fatal and message_part in errors[-1].message


# -- shared files ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    model = make_tiny_model(root, "gpt2", n_layer=2)
    rng = random.Random(0)
    (root / "corpus.txt").write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(3000)))
    (root / "short.txt").write_text("hi there")
    (root / "binary.txt").write_bytes(b"text\x00\x01\x02more")
    (root / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (root / "empty-folder").mkdir()
    (root / "no-config").mkdir()
    (root / "no-config" / "model.safetensors").write_bytes(b"")
    no_tok = root / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model / name, no_tok / name)
    from transformers import BertConfig, DistilBertConfig

    BertConfig(
        vocab_size=256, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).save_pretrained(root / "bert")
    DistilBertConfig(vocab_size=256, dim=32, n_layers=1, n_heads=2, hidden_dim=32).save_pretrained(root / "distilbert")
    (root / "a-file").write_text("not a folder")
    write_synthetic_log(root / "good.jsonl", steps=40)
    return root


RUN = ("run", "--headless", "--epochs", "1", "--batch-size", "2", "--block-size", "16", "--samples", "0")


def run_args(*extra: str, model: str = "gpt2", data: str = "corpus.txt", log: str = "out.jsonl") -> list[str]:
    return [*RUN, "--model", model, "--data", data, "--log", log, *extra]


# -- before torch loads: config, spec syntax, data, log path ------------------------------------------
PRE_START = {
    # spec syntax
    "bad role": (["--arm", "a=+atn[1:]"], "unknown role 'atn'", "expected one of"),
    "bad slice": (["--arm", "a=+attn[1:x]"], "bad slice [1:x]", "e.g. 6:"),
    "missing sign": (["--arm", "a=attn"], "missing sign", "start the rule with + (train) or - (freeze)"),
    "unknown preset": (["--arm", "a=partial"], "unknown preset 'partial'", "full, targeted, reverse"),
    "bad schedule unit": (["--arm", "a=+mlp@week 2"], "unknown schedule unit 'week'", "@step N or @epoch N"),
    "schedule without number": (["--arm", "a=+mlp@step"], "missing number after '@step'", "@step N"),
    "empty arm": (["--arm", "=full"], "must look like NAME=SPEC", "--arm targeted=targeted"),
    "duplicate arm": (["--arm", "a=full", "--arm", "a=targeted"], "two arms are named 'a'", "different NAME"),
    # numbers
    "zero epochs": (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    "negative epochs": (["--epochs", "-2"], "--epochs must be at least 1, got -2"),
    "zero batch": (["--batch-size", "0"], "--batch-size must be at least 1"),
    "negative batch": (["--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    "zero block": (["--block-size", "0"], "--block-size must be at least 2"),
    "negative block": (["--block-size", "-16"], "--block-size must be at least 2"),
    "zero lr": (["--lr", "0"], "--lr must be a positive number"),
    "negative lr": (["--lr", "-1e-4"], "--lr must be a positive number"),
    "nan lr": (["--lr", "nan"], "--lr must be a positive number"),
    "bad device name": (["--device", "gpu"], "--device 'gpu' is not one of", "cuda"),
    "bad device list": (["--device", "cuda:0,gpu"], "--device 'cuda:0,gpu': 'gpu' is not one of", "comma list"),
    "bad memory limit": (["--memory-limit", "lots"], "--memory-limit 'lots' is not a size", "24GB"),
    "bad dtype": (["--dtype", "fp8"], "--dtype 'fp8' is not one of", "bf16"),
    "epochs not a number": (["--epochs", "three"], "'three' is not a valid integer", "--help"),
    "unknown option": (["--epoch", "3"], "No such option '--epoch'", "--epochs", "--help"),
    "missing retain data": (["--retain-data", "nope.txt"], "--retain-data path nope.txt does not exist"),
    "binary retain data": (["--retain-data", "binary.txt"], "--retain-data: ", "looks binary"),
    "zero peak": (["--peak-tflops", "0"], "--peak-tflops must be a positive number", "989"),
    "negative val blocks": (["--val-blocks", "-1"], "--val-blocks must not be negative, got -1"),
}


@pytest.mark.parametrize("case", list(PRE_START))
def test_bad_options_and_specs(files, case):
    extra, *needles = PRE_START[case]
    check(cli(*run_args(*extra), cwd=files), *needles)
    assert not (files / "out.jsonl").exists()  # nothing was started, nothing written


DATA_CASES = {
    "missing": ("nope.txt", "data path nope.txt does not exist", "pass text files or folders"),
    "empty folder": ("empty-folder", "has no .txt or .md files", "put text files in it"),
    "binary": ("binary.txt", "looks binary", "pass UTF-8 text files"),
    "not utf-8": ("latin1.txt", "is not UTF-8 (byte 0xe9", "iconv"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(files, case):
    data, *needles = DATA_CASES[case]
    check(cli(*run_args(data=data), cwd=files), *needles)
    assert not (files / "out.jsonl").exists()


def test_model_dir_without_config(files):
    check(cli(*run_args(model="no-config"), cwd=files), "has no config.json", "save_pretrained")


def test_log_that_exists_is_refused_and_kept(files):
    log = files / "good.jsonl"
    before = hashlib.sha256(log.read_bytes()).hexdigest()
    check(cli(*run_args(log="good.jsonl"), cwd=files), "already exists", "--overwrite")
    assert hashlib.sha256(log.read_bytes()).hexdigest() == before


def test_log_under_a_file(files):
    check(cli(*run_args(log="a-file/run.jsonl"), cwd=files), "a-file is a file, not a folder", "writable --log")
    check(cli(*run_args(log="a-file/deeper/run.jsonl"), cwd=files), "a-file is a file", "writable --log")


def test_log_path_is_a_folder(files):
    check(cli(*run_args(log="empty-folder"), cwd=files), "is a directory", "empty-folder/run.jsonl")


def test_log_in_a_read_only_place(files, tmp_path):
    if os.geteuid() == 0:  # root writes wherever chmod says not to; sysfs refuses even root
        log = "/sys/freeze-tui-test.jsonl"
        try:
            open(log, "wb").close()
        except OSError:
            pass
        else:
            os.unlink(log)
            pytest.skip("running as root, and /sys takes new files")
    else:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        log = str(ro / "run.jsonl")
    check(cli(*run_args(log=log), cwd=files), "cannot write log", "choose a writable --log path")


def test_save_folder_not_writable_is_refused_before_training(files):
    check(cli(*run_args("--save", "a-file/weights"), cwd=files), "--save", "a-file is a file", "another --save")
    assert not (files / "out.jsonl").exists()


# -- replay, watch, report on logs that cannot be read -------------------------------------------------
@pytest.fixture(scope="module")
def bad_logs(files) -> Path:
    good = (files / "good.jsonl").read_bytes()
    lines = good.split(b"\n")
    (files / "empty.jsonl").write_bytes(b"")
    (files / "not-json.jsonl").write_bytes(b"hello, world\nsecond line\n")
    (files / "future.jsonl").write_bytes(
        lines[0].replace(b'"schema":1', b'"schema":99') + b"\n" + b"\n".join(lines[1:])
    )
    (files / "binary.jsonl").write_bytes(bytes(random.Random(1).randrange(256) for _ in range(2000)) + b"\n")
    cut = len(good) * 2 // 3
    (files / "truncated.jsonl").write_bytes(good[: good.rindex(b"\n", 0, cut) + 25])  # mid-line
    return files


LOG_CASES = {
    "missing.jsonl": ("missing.jsonl does not exist", "pass the path of a .jsonl file"),
    "empty.jsonl": ("empty.jsonl is empty", "header"),
    "not-json.jsonl": ("line 1: not valid JSON", "is this a freeze-tui run log?"),
    "future.jsonl": ("uses log schema 99", "use a matching freeze-tui version"),
    "binary.jsonl": ("line 1:", "is this a freeze-tui run log?"),
}


@pytest.mark.parametrize("command", ["report", "replay", "watch"])
@pytest.mark.parametrize("name", list(LOG_CASES))
def test_unreadable_logs(bad_logs, command, name):
    # replay/watch open the app only after the log checked out: here no app may start (cli fails the test)
    result = cli(command, name, cwd=bad_logs)
    check(result, *LOG_CASES[name])
    assert "\x1b" not in result.stdout  # no app drew anything


def test_report_on_a_log_cut_mid_line(bad_logs):
    result = cli("report", "truncated.jsonl", cwd=bad_logs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "did not finish" in result.stdout and "| full |" in result.stdout


def test_replay_speed_must_be_positive(bad_logs):
    check(cli("replay", "good.jsonl", "--speed", "0", cwd=bad_logs), "--speed '0'", "or 'max'")


# -- after the engine thread started: in-process through the same entry point ---------------------------
POST_START = {
    "hub name offline": (
        dict(model="no-such-org/no-such-model"),
        "could not be found locally",
        "pass a local model directory",
    ),
    "bert config": (dict(model="bert"), "(bert) is a bidirectional encoder", "pass a causal LM"),
    "encoder": (dict(model="distilbert"), "(distilbert) is not a causal language model", "AutoModelForCausalLM"),
    "no tokenizer": (dict(model="no-tokenizer"), "has no usable tokenizer", "tokenizer.save_pretrained"),
    "corpus shorter than a batch": (
        dict(data="short.txt"),
        "fewer than one batch of 2",
        "lower --batch-size/--block-size",
    ),
    "spec matches nothing": (
        dict(extra=("--arm", "a=+re:nothing_like_this")),
        "matches no parameter name",
        "names look like",
    ),
    "plan trains nothing": (dict(extra=("--arm", "a=-all")), "it trains nothing", "start with +"),
    "fused attn.q": (dict(extra=("--arm", "a=+attn.q")), "one fused tensor", "use attn.qkv"),
    "tied weights": (dict(extra=("--arm", "a=+head,-embed")), "one tied tensor", "+embed,+head"),
    "block out of range": (dict(extra=("--arm", "a=+attn[5]")), "block index out of range", "0..1"),
    "block size above context": (
        dict(extra=("--block-size", "100")),
        "above the model's context of 64",
        "--block-size 64 or less",
    ),
    "cuda without cuda": (dict(extra=("--device", "cuda")), "--device cuda", "use --device cpu or auto"),
}


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("case", list(POST_START))
def test_errors_found_after_the_run_started(files, case, capsys, monkeypatch, tmp_path):
    kw, *needles = POST_START[case]
    if case == "cuda without cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    monkeypatch.chdir(files)
    log = tmp_path / "run.jsonl"
    argv = run_args(
        *kw.get("extra", ()), model=kw.get("model", "gpt2"), data=kw.get("data", "corpus.txt"), log=str(log)
    )
    code, out, err = run_main(argv, capsys)
    line = one_error_line(err, out, code, *needles)
    assert out.splitlines()[0] == f"log: {log}"
    assert_failed_log(log, line.removeprefix(PREFIX)[:60])


# -- after the engine thread started: one real process (torch's start-up costs ~10 s on a busy 2-core box) ---
def test_post_start_error_in_a_real_process(files, tmp_path):
    log = tmp_path / "run.jsonl"
    result = cli_process(*run_args(model="no-tokenizer", log=str(log)), cwd=files)
    line = check(result, "has no usable tokenizer", "tokenizer.save_pretrained")
    assert result.stdout.splitlines()[0] == f"log: {log}"
    assert_failed_log(log, line.removeprefix(PREFIX)[:60])
    report = run_cli_in_process("report", str(log), cwd=files)  # the failed run's log still makes a report saying why
    assert report.returncode == 0 and report.stderr == ""
    assert "The run failed" in report.stdout and "has no usable tokenizer" in report.stdout
    assert "None" not in report.stdout
