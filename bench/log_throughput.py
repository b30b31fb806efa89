"""Decoding + folding a synthetic 100k-step paired log (a dw event every step, 2 arms x 48 matrices),
and RunState memory for a 1,000,000-step run."""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.result import Result
from engine.log.runlog import LogWriter, read_events
from engine.log.state import RunState
from tests.synthetic_log import synthetic_events


def log_throughput(steps: int = 100_000) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        writer = LogWriter(path)
        for event in synthetic_events(steps=steps, n_blocks=12, epochs=3, norm_every=1):
            writer.write(event)
        writer.close()
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        state = RunState()
        n = 0
        for event in read_events(path):
            state.apply(event)
            n += 1
        seconds = time.perf_counter() - start
    return [
        Result(
            "log decode + fold (events/s)",
            n / seconds,
            100_000,
            "ev/s",
            note=f"{n} events, {size_mb:.0f} MB, {seconds:.1f} s",
        )
    ]


def state_memory(steps: int = 1_000_000) -> list[Result]:
    tracemalloc.start()
    state = RunState()
    for event in synthetic_events(steps=steps, n_blocks=12, epochs=3, norm_every=1000):
        state.apply(event)
    _, peak = tracemalloc.get_traced_memory()
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return [
        Result(
            "RunState memory, 1M-step paired run (MB)",
            current / 1e6,
            300,
            "MB",
            higher_is_better=False,
            note=f"peak while folding {peak / 1e6:.0f} MB",
        )
    ]


if __name__ == "__main__":
    for r in log_throughput() + state_memory():
        print(r.line())
