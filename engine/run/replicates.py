"""The replicate loop of a run (`--seeds K`), one for a one-process and a distributed run. No torch.

Replicate k keeps the split, S and the initial weights of replicate 0; seed s+k orders the batches,
drops out and samples. The run_start goes out once, after the first replicate's arms exist (it carries
their initial weights' checksums); a `replicate` event opens each replicate when there are several.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, TypeVar

from engine.log import events as ev
from engine.run.config import RunConfig


class Replicate(Protocol):
    """What the loop needs of one replicate's experiment (engine.train.experiment.Experiment)."""

    def samples(self, phase: str, epoch: int) -> None: ...

    def run(self) -> str: ...


E = TypeVar("E", bound=Replicate)


def run_replicates(
    cfg: RunConfig,
    make: Callable[[RunConfig], E],
    emit: Callable[[ev.Event], None],
    run_start: Callable[[E], ev.RunStart],
    on_replicate: Callable[[], None] | None = None,
    resume: tuple[int, Callable[[E], None]] | None = None,
) -> tuple[str, E]:
    """Run every replicate until one does not finish; (its status, the last experiment).
    make(cfg with seed s+k) builds replicate k; run_start(the first one) is the run_start event;
    on_replicate() is called before each replicate is built (the activity of a live run).
    resume = (k, restore): `run --resume` from a checkpoint of replicate k; restore(experiment) puts the
    checkpoint into it (its log has run_start, the replicate event and the samples before training)."""
    status, experiment = "finished", None
    first = resume[0] if resume is not None else 0
    for k in range(first, cfg.seeds):
        if on_replicate is not None:
            on_replicate()
        seed = cfg.seed + k
        experiment = make(dataclasses.replace(cfg, seed=seed))
        if resume is not None and k == first:
            resume[1](experiment)
        else:
            if k == 0:
                emit(run_start(experiment))
            if cfg.seeds > 1:
                emit(ev.Replicate(replicate=k, of=cfg.seeds, seed=seed))
            experiment.samples("pre", -1)
        status = experiment.run()
        if status != "finished":
            break
    if experiment is None:
        raise ValueError("--seeds must be at least 1")  # RunConfig refuses it first
    return status, experiment
