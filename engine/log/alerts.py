"""Alerts: what a person should hear about while a run goes on, detected from RunState alone, so LIVE,
WATCH, REPLAY and headless agree (pure, no torch). The app raises a toast and a bell, `--notify CMD`
runs a command (engine/run/notify.py).

* nonfinite: an arm's step record has a NaN or infinite loss (the engine then stops the arm, or not:
  --on-nan);
* diverging: an arm's loss rises. The steps are cut into blocks of DIVERGE_BLOCK; when a block
  completes, the arm diverges if its mean loss exceeds both its own lowest earlier block mean and the
  baseline arm's mean over the same block by more than k × the arm's spread (standard deviation of
  its losses in that block). An arm that only learns slower than full (a frozen arm, by design) never
  rises above its own best, so it is not called diverging; k is the run's `--diverge-k` (default 3);
* stalled: a watched log's writer is gone or not responding (engine.log.liveness);
* run_end: the run finished, stopped or failed.
Each fires once (a stall again after the writer came back); blocks make the verdict independent of
how events were batched, so a replay says what the live run said.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from engine.log.state import RunState

DIVERGE_BLOCK = 20  # steps per block: long enough for a spread, short enough to tell within a run
DEFAULT_DIVERGE_K = 3.0


@dataclass(frozen=True)
class Alert:
    kind: str  # nonfinite | diverging | stalled | run_end
    message: str
    arm: str = ""
    step: int = -1  # 1-based as shown; -1 when none applies
    status: str = ""  # the run's status when it fired

    def as_dict(self, run_id: str = "") -> dict:
        return {"kind": self.kind, "message": self.message, "arm": self.arm, "step": self.step,
                "status": self.status, "run_id": run_id}  # fmt: skip


@dataclass
class _ArmBlocks:
    done: int = 0  # steps already cut into blocks
    best: float = math.inf  # the lowest block mean so far
    nonfinite_seen: int = 0


@dataclass
class AlertWatch:
    """Feed it the state after each fold (and the watched writer's liveness verdict); it returns the
    alerts that are new."""

    k: float | None = None  # None: the run's own --diverge-k from run_start.config
    _arms: dict[str, _ArmBlocks] = field(default_factory=dict)
    _fired: set[tuple[str, str]] = field(default_factory=set)

    def update(self, state: RunState, stalled: str = "") -> list[Alert]:
        new: list[Alert] = []
        for name, arm in state.arms.items():
            blocks = self._arms.setdefault(name, _ArmBlocks())
            if arm.nonfinite_step >= 0 and ("nonfinite", name) not in self._fired:
                self._fired.add(("nonfinite", name))
                step = arm.nonfinite_step + 1
                new.append(Alert("nonfinite", f"arm {name}: loss is not finite at step {step}", name, step))
            new += self._diverging(state, name, blocks)
        new += self._stall(stalled)
        if state.finished and ("run_end", "") not in self._fired:
            self._fired.add(("run_end", ""))
            new.append(Alert("run_end", run_end_message(state), step=state.step + 1, status=state.status))
        return [a if a.status else Alert(a.kind, a.message, a.arm, a.step, state.status) for a in new]

    def _diverging(self, state: RunState, name: str, blocks: _ArmBlocks) -> list[Alert]:
        losses, base = state.arms[name].losses, state.arms.get(state.baseline or "")
        k = self.k if self.k is not None else _num(state.settings.diverge_k, DEFAULT_DIVERGE_K)
        out = []
        while blocks.done + DIVERGE_BLOCK <= len(losses):
            lo, hi = blocks.done, blocks.done + DIVERGE_BLOCK
            blocks.done = hi
            mine = _finite(losses[lo:hi])
            if len(mine) < DIVERGE_BLOCK // 2:
                continue
            mean, spread = statistics.fmean(mine), statistics.pstdev(mine)
            theirs = _finite(base.losses[lo:hi]) if base is not None and base.name != name else []
            above_best = mean > blocks.best + k * spread
            above_base = not theirs or mean > statistics.fmean(theirs) + k * spread
            if above_best and above_base and ("diverging", name) not in self._fired:
                self._fired.add(("diverging", name))
                step = int(state.steps[hi - 1]) + 1
                vs = f", baseline {statistics.fmean(theirs):.3g}" if theirs else ""
                out.append(
                    Alert(
                        "diverging",
                        f"arm {name}: loss diverging at step {step}: mean {mean:.3g} over the last "
                        f"{DIVERGE_BLOCK} steps, its best {blocks.best:.3g}{vs} (k = {k:g} × spread {spread:.2g})",
                        name,
                        step,
                    )
                )
            blocks.best = min(blocks.best, mean)
        return out

    def _stall(self, stalled: str) -> list[Alert]:
        if not stalled:
            self._fired.discard(("stalled", ""))  # the writer is back: a later stall is news again
            return []
        if ("stalled", "") in self._fired:
            return []
        self._fired.add(("stalled", ""))
        return [Alert("stalled", stalled)]


def run_end_message(state: RunState) -> str:
    """'run 2026…-abc finished at step 366: full 3.36, targeted 4.95'."""
    name = state.settings.name or state.run_id or "the run"
    losses = ", ".join(f"{n} {a.loss_last:.3g}" for n, a in state.arms.items() if not math.isnan(a.loss_last))
    return f"run {name} {state.status} at step {state.step + 1}" + (f": loss {losses}" if losses else "")


def _finite(values) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _num(value, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
