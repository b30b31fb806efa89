"""A torchrun worker that fails on purpose: `FAULT_RANK` raises at step `FAULT_STEP` (tests only)."""

from __future__ import annotations

import os
import sys

from engine.train.experiment import Experiment
from freeze_tui.cli.main import main


def _failing_step(original):
    def one_step(self, batch, epoch, total):
        if self.topology.world.rank == int(os.environ["FAULT_RANK"]) and self.step == int(os.environ["FAULT_STEP"]):
            raise RuntimeError(f"injected fault at step {self.step}")
        return original(self, batch, epoch, total)

    return one_step


if __name__ == "__main__":
    Experiment._one_step = _failing_step(Experiment._one_step)
    main(sys.argv[1:])
