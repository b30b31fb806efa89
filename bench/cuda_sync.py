"""Host synchronisations of the training loop on CUDA: with torch.cuda.set_sync_debug_mode("warn"),
count the synchronising calls over N steps (values are read off the device every 20 steps). Target:
no sync between flushes, i.e. at most a few per flush (the batched reads of losses and norms).
Prints a skip line where no CUDA device is visible (CPU machines, CI). Not yet run on a GPU.

    python -m bench.cuda_sync [--steps 60]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from bench.result import Result
from engine.core.control import Control
from engine.run.config import RunConfig


def count_syncs(steps: int) -> tuple[int, int]:
    """(synchronising calls seen by torch, flushes) over `steps` steps of the demo, 2 arms."""
    from engine.train.experiment import Experiment
    from engine.train.setup import prepare

    cfg = RunConfig(device="cuda", max_steps=steps, epochs=1, samples=0, norm_every=1).validate()
    experiment = Experiment(cfg, prepare(cfg), lambda event: None, Control())
    flushes = 0
    real_flush = experiment.flush

    def counted_flush():
        nonlocal flushes
        flushes += 1
        real_flush()

    experiment.flush = counted_flush
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            experiment.run()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = sum(1 for w in seen if "synchroniz" in str(w.message).lower())
    return syncs, flushes


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_sync: skipped, no CUDA device visible")
        return []
    syncs, flushes = count_syncs(args.steps)
    per_flush = syncs / max(1, flushes)
    return [
        Result(
            "CUDA host syncs per flush (every 20 steps)",
            per_flush,
            3,
            higher_is_better=False,
            note=f"{syncs} syncs over {args.steps} steps, {flushes} flushes; the batched reads of "
            "losses and norms are expected at each flush, nothing between",
        )
    ]


if __name__ == "__main__":
    for result in main():
        print(result.line())
