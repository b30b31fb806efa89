"""Shared test set-up: nothing reaches the network; torch uses one thread (2 shared cores); the token
cache (engine/train/tokens.py) of a test session, its subprocesses included, is a fresh temporary folder,
so tests never read or fill the user's ~/.cache/freeze-tui. Fixtures live in each folder's conftest.py; this one
also orders the slowest test files first for pytest-xdist."""

import atexit
import os
import shutil
import tempfile
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# what every run's session sets (engine/train/session.py): set from the start, so the environment of a
# process a test starts does not depend on whether a session ran in the test process before it (both are
# read when transformers imports, so tests/forked.py compares them)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ["FREEZE_TUI_CACHE"] = tempfile.mkdtemp(prefix="freeze-tui-test-cache-")
atexit.register(shutil.rmtree, os.environ["FREEZE_TUI_CACHE"], True)

# The test files that take longest (wall seconds of a whole `-n 3` run on the idle 2-core box, most
# first). pytest-xdist's `--dist loadfile` hands out whole files in collection order (addopts turn off
# its own reordering, which puts files with the fewest tests, i.e. these, last): starting them first
# lets the other workers fill in with short files, so all finish together. Wall, not CPU: since
# tests/forked.py forks the tests' processes from a preloaded server, the long files wait (a rank
# declared lost, a checkpoint's step, Textual settling) more than they compute.
SLOWEST_FIRST = (  # measured with FREEZE_TUI_TEST_CPU (its wall-s column)
    "tests/app/test_snapshots.py",
    "tests/engine/test_dist_hunt.py",
    "tests/app/test_views.py",
    "tests/engine/test_dist_resume.py",
    "tests/engine/test_resume.py",
    "tests/engine/test_signals.py",
    "tests/engine/test_study.py",
    "tests/engine/test_distributed.py",
    "tests/engine/test_liveness.py",
    "tests/engine/test_faults.py",
    "tests/app/test_watch_stop.py",
    "tests/engine/test_kernels.py",
    "tests/engine/test_detach.py",
    "tests/app/test_serve_guard.py",
    "tests/engine/test_tokens.py",
    "tests/engine/test_hostile.py",
    "tests/app/test_keys_and_modes.py",
    "tests/app/test_controls.py",
    "tests/unit/test_fuzz.py",
    "tests/engine/test_dist_board.py",
    "tests/engine/test_cli_errors.py",
    "tests/engine/test_run.py",
    "tests/engine/test_hunt3_defects.py",
    "tests/engine/test_dist_exit.py",
    "tests/unit/test_outputs_unchanged.py",
)


@pytest.fixture(autouse=True)
def _environment_kept():
    """What a test (or product code it runs in-process: a session's setdefaults) writes into os.environ
    ends with it, so later tests' processes start with the environment they were written for (and
    tests/forked.py can fork them: its server's import-time variables are compared)."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


def pytest_collection_modifyitems(items) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    order = {id(item): (rank.get(item.nodeid.split("::")[0], len(rank)), i) for i, item in enumerate(items)}
    items.sort(key=lambda item: order[id(item)])


# FREEZE_TUI_TEST_CPU=PATH: each worker writes PATH.<worker> with the CPU seconds (this process and the
# processes it reaped) and wall seconds per test file, most CPU first: what SLOWEST_FIRST is judged by
# on a shared box, where wall time varies tenfold with the load.
_CPU_BY_FILE: dict[str, list[float]] = {}  # file: [CPU-s, of it in children, wall-s]


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process and of the processes it reaped."""
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not os.environ.get("FREEZE_TUI_TEST_CPU"):
        yield
        return
    (own, children), wall = _cpu_s(), time.monotonic()
    yield
    (own_after, children_after), wall_after = _cpu_s(), time.monotonic()
    spent = _CPU_BY_FILE.setdefault(item.nodeid.split("::")[0], [0.0, 0.0, 0.0])
    spent[0] += own_after - own + children_after - children
    spent[1] += children_after - children
    spent[2] += wall_after - wall


def pytest_sessionfinish(session) -> None:
    path = os.environ.get("FREEZE_TUI_TEST_CPU")
    if path and _CPU_BY_FILE:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        rows = sorted(_CPU_BY_FILE.items(), key=lambda row: -row[1][0])
        lines = [f"{cpu:8.1f} {children:8.1f} {wall:8.1f}  {name}" for name, (cpu, children, wall) in rows]
        total, children = (sum(spent[i] for spent in _CPU_BY_FILE.values()) for i in (0, 1))
        with open(f"{path}.{worker}", "w") as f:
            f.write(f"{total:8.1f} {children:8.1f} total CPU-s, of it in child processes, then wall-s, of {worker}\n")
            f.write("\n".join(lines) + "\n")
