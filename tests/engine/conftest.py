"""Fixtures shared by the engine tests."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from tests.tiny_models import WORDS, make_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random GPT-2 (4 blocks) and a 6000-word corpus of its one-token words; read-only for tests."""
    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_model(root, "gpt2", n_layer=4)
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(6000)))
    return model, corpus


def run_cli_process(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """`freeze-tui ARGS` in a fresh interpreter (offline, one thread, no terminal), for what needs one: a
    run's own exit path and start-up; in-process `main(argv)` for the rest (tests/forked.py forks the
    many processes of the signal, resume and distributed tests instead)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TERM": "dumb"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "freeze_tui", *args],
            cwd=cwd,
            env=env,
            timeout=timeout,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"freeze-tui {' '.join(args)} was still running after {timeout} s (did an app start?)")


@pytest.fixture
def cli_process():
    """run_cli_process as a fixture: `cli_process("report", log, cwd=tmp_path)`."""
    return run_cli_process


def run_cli_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`freeze-tui ARGS` in-process through `main` (the entry point `python -m freeze_tui` calls), in `cwd`,
    as a CompletedProcess like run_cli_process gives: for bad input and commands that need no process of
    their own (no interpreter or torch start-up per case). Starting an app fails the test."""
    from freeze_tui.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd),
        mock.patch("freeze_tui.cli.main.run_app", side_effect=AssertionError("an app started")),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exit_info,
    ):
        main(list(args))
    code = exit_info.value.code
    return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())
