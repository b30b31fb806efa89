"""tests/forked.py gives what subprocess gives: each case runs the same program both ways and compares
exit code, output and what the program saw; and it falls back to a real interpreter where a fork could
differ."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests import forked


def env(**more: str) -> dict:
    """The environment the server forks for, as the suite's process tests pass it."""
    return {**forked.server_env(), "TERM": "dumb", **more}


PROGRAMS = {
    "exit code": "import sys; sys.exit(3)",
    "exit with text": "import sys; sys.exit('no good')",
    "exception": "raise ValueError('boom')",
    "ctrl-c": "raise KeyboardInterrupt",
    "argv cwd env": "import os, sys; print(sys.argv[1:], os.getcwd(), os.environ['MARK'])",
    "stdin echo": "import sys; print(sys.stdin.read().upper(), end='')",
    "unicode": "print('ΔW ‖·‖ → ✓')",
    "atexit and threads": (
        "import atexit, threading, time\n"
        "atexit.register(print, 'atexit ran')\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()"
    ),
    "imported": "import sys; print('torch' in sys.modules)",
}


def both(code: str, tmp_path, *more: str, **kw) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    argv = [sys.executable, "-c", code, *more]
    kw = dict(cwd=tmp_path, env=env(MARK="m1"), capture_output=True, text=True, timeout=60, **kw)
    return subprocess.run(argv, **kw), forked.run(argv, **kw)


@pytest.mark.parametrize("name", [n for n in PROGRAMS if n != "imported"])
def test_a_forked_program_ends_and_prints_as_a_real_one(name, tmp_path):
    extra = {"input": "piped text"} if name == "stdin echo" else {}
    real, fork = both(PROGRAMS[name], tmp_path, "a", "b c", **extra)
    assert (fork.returncode, fork.stdout) == (real.returncode, real.stdout)
    assert fork.stderr.splitlines()[-1:] == real.stderr.splitlines()[-1:]


def test_the_fork_skips_the_imports_and_merged_streams_and_unbuffered_output_work(tmp_path):
    real, fork = both(PROGRAMS["imported"], tmp_path)
    assert (real.stdout, fork.stdout) == ("False\n", "True\n")  # the point: torch came with the fork
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    merged = forked.run([sys.executable, "-u", "-c", code], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert merged.stdout == b"out\nerr\n"


def test_a_forked_process_takes_signals_and_a_session_of_its_own(tmp_path):
    code = "import os, time; print(os.getsid(0) == os.getpid(), flush=True); time.sleep(60)"
    proc = forked.Popen([sys.executable, "-c", code], env=env(), stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc._forked is not None and proc.stdout.readline() == b"True\n"
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.stdout.close()


def test_another_environment_or_flag_starts_a_real_interpreter(tmp_path):
    """Variables read while torch and transformers import, and interpreter flags, need a fresh start."""
    code = "import sys; print('torch' in sys.modules)"
    for argv, environment in (
        ([sys.executable, "-c", code], env(OMP_NUM_THREADS="2")),
        ([sys.executable, "-I", "-c", code], env()),
    ):
        proc = forked.Popen(argv, env=environment, stdout=subprocess.PIPE, text=True)
        assert proc.communicate(timeout=60)[0] == "False\n" and proc._forked is None


def test_variables_read_at_run_time_do_not_need_a_fresh_interpreter(tmp_path):
    """torchrun's variables and inductor's cache folder (torch sets it in a process that compiled)."""
    more = {"TORCHELASTIC_RUN_ID": "r1", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    proc = forked.Popen([sys.executable, "-c", "import sys; print('torch' in sys.modules)"], env=env(**more),
                        stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.communicate(timeout=60)[0] == "True\n" and proc._forked is not None


def test_a_forked_process_starts_forked_children_and_its_environment_is_known(tmp_path):
    """torch's launcher starts ranks with subprocess.Popen: in a forked process that forks too."""
    inner = "import os, sys, time; print(os.getpid(), 'torch' in sys.modules, flush=True); time.sleep(2)"
    outer = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {inner!r}], stdout=subprocess.PIPE, text=True)\n"
        "print(child.stdout.readline(), end='', flush=True)\n"
        "sys.exit(child.wait())"
    )
    proc = forked.Popen([sys.executable, "-c", outer], env=env(MARK="outer"), stdout=subprocess.PIPE, text=True)
    try:
        pid, imported = proc.stdout.readline().split()
        assert imported == "True" and forked.environ(int(pid))["MARK"] == "outer"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.stdout.close()
