"""Monitoring overhead: the same paired run on the demo with everything on (ΔW, drift and rel norms of
every attention matrix every step, the log writer, the viewer channel drained by a console-style
reader) vs the bare loop (monitor off), same steps, same arms. Runs alternate on/off to share noise.

    python -m bench.monitor_overhead [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.result import Result
from engine.log.events import Step
from engine.log.runlog import read_events
from engine.log.state import RunState
from engine.run.config import RunConfig
from engine.train.session import RunSession


def loop_seconds(monitor: bool, steps: int, log: Path) -> float:
    """Wall time of the training loop: from the first to the last step event (set-up excluded)."""
    cfg = RunConfig(max_steps=steps, epochs=1, monitor=monitor, norm_every=1, samples=0).validate()
    session = RunSession(cfg, log, producer="bench")
    session.start()
    state = RunState()
    while not session.done:  # a reader like the app or the console printer
        state.apply_all(session.get_batch(0.1))
    session.join()
    times = [e.t for e in read_events(log) if isinstance(e, Step)]
    return (times[-1] - times[0]) * len(times) / (len(times) - 1)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    on, off = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            off.append(loop_seconds(False, args.steps, Path(tmp) / f"off{i}.jsonl"))
            on.append(loop_seconds(True, args.steps, Path(tmp) / f"on{i}.jsonl"))
    ratio = min(on) / min(off)
    return [
        Result(
            "monitoring on / off, wall time of the loop",
            ratio,
            1.03,
            higher_is_better=False,
            note=f"best of {args.rounds}: on {min(on):.2f} s, off {min(off):.2f} s, {args.steps} steps, demo",
        )
    ]


if __name__ == "__main__":
    for result in main():
        print(result.line())
