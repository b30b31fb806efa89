"""Heartbeat overhead (issue 11), measured side by side:
* the loop's per-step cost: Activity.enter, timed alone;
* the same demo run with heartbeats once a second vs once an hour (one at the start), alternating;
* reading a log (read_events + RunState, as report and replay at max speed do) with a heartbeat
  every 10 steps vs the same log without them.

    python -m bench.heartbeat_overhead [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from pathlib import Path

from bench.result import Result
from engine.core.activity import Activity
from engine.log import events as ev
from engine.log.runlog import LogWriter, read_events
from engine.log.state import RunState
from engine.run.config import RunConfig
from engine.train.session import RunSession
from tests.synthetic_log import synthetic_events


def enter_ns() -> float:
    activity = Activity()
    n = 200_000
    return min(timeit.repeat(lambda: activity.enter("step", 5, 0), number=n, repeat=3)) / n * 1e9


def loop_seconds(interval: float, steps: int, log: Path) -> float:
    cfg = RunConfig(max_steps=steps, epochs=1, samples=0).validate()
    session = RunSession(cfg, log, producer="bench")
    session._heartbeat.interval = interval
    session.start()
    state = RunState()
    while not session.done:
        state.apply_all(session.get_batch(0.1))
    session.join()
    times = [e.t for e in read_events(log) if isinstance(e, ev.Step)]
    return (times[-1] - times[0]) * len(times) / (len(times) - 1)


def read_seconds(path: Path) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        RunState().apply_all(read_events(path))
        best = min(best, time.perf_counter() - start)
    return best


def write_logs(folder: Path, steps: int) -> tuple[Path, Path]:
    plain, beating = folder / "plain.jsonl", folder / "beating.jsonl"
    a, b = LogWriter(plain), LogWriter(beating)
    seq = 0
    for e in synthetic_events(steps=steps):
        a.write(e)
        b.write(ev.replaced(e, seq=seq))
        seq += 1
        if isinstance(e, ev.Step) and e.step % 10 == 0:
            b.write(ev.Heartbeat(seq=seq, t=e.t, phase="step", seconds=0.01, step=e.step, pid=1, host="h"))
            seq += 1
    a.close()
    b.close()
    return plain, beating


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    on, off = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            off.append(loop_seconds(3600.0, args.steps, Path(tmp) / f"off{i}.jsonl"))
            on.append(loop_seconds(1.0, args.steps, Path(tmp) / f"on{i}.jsonl"))
        plain, beating = write_logs(Path(tmp), 20_000)
        read_plain, read_beating = read_seconds(plain), read_seconds(beating)
    return [
        Result("Activity.enter per step", enter_ns(), 2000, "ns", higher_is_better=False),
        Result(
            "heartbeat on / off, wall time of the loop",
            min(on) / min(off),
            1.03,
            higher_is_better=False,
            note=f"best of {args.rounds}: on {min(on):.2f} s, off {min(off):.2f} s, {args.steps} steps, demo",
        ),
        Result(
            "reading a log with / without heartbeats",
            read_beating / read_plain,
            1.10,
            higher_is_better=False,
            note=f"20k steps, a heartbeat every 10: {read_beating:.2f} s vs {read_plain:.2f} s",
        ),
    ]


if __name__ == "__main__":
    for result in main():
        print(result.line())
