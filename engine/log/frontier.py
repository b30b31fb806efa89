"""Where each arm stands: time saved, target loss, what it forgot, and which arms no other beats. Pure, no torch.

Read from a RunState (the one reducer) by the Frontier view, `report`, `export` and the run_end summary.

* val gap = L_val(arm) - L_val(full), paired by validation batch (lower is better);
* target gain = L_val at step 0 - L_val now, paired by validation batch (higher is better);
* forgetting = retain loss now - retain loss at step 0, paired by retain batch (lower is better);
  `forgetting_vs_full` = the arm's forgetting - full's, paired by retain batch (both start equal);
* expected share of S before (step 0) and now, beside the base rate (the share of S in the validation text);
* Pareto fronts: (r up, val gap down) and (target gain up, forgetting down); an arm is on a front when
  no other arm is at least as good on both axes and better on one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from engine.core.stats import paired_ci95
from engine.log import events as ev
from engine.log.comparisons import baseline_of, r_estimate, unpaired, val_comparison
from engine.log.state import ArmState, RunState

NAN3 = (math.nan, math.nan, math.nan)
RANDOM_PREFIX = "random-"  # the random controls of `freeze-tui study`: drawn as a cloud


@dataclass(frozen=True)
class FrontierPoint:
    """One arm's coordinates, each (value, low, high) of a 95 % interval (nan where not measured yet)."""

    arm: str
    r: tuple[float, float, float] = NAN3
    val_gap: tuple[float, float, float] = NAN3
    target_gain: tuple[float, float, float] = NAN3
    forgetting: tuple[float, float, float] = NAN3
    forgetting_vs_full: tuple[float, float, float] = NAN3
    expected_s_pre: float = math.nan
    expected_s: float = math.nan
    retain_loss_pre: float = math.nan
    retain_loss: float = math.nan
    is_baseline: bool = False
    is_random: bool = False
    front_time: bool = False  # on the (r, val gap) front
    front_forget: bool = False  # on the (target gain, forgetting) front


def frontier_points(state: RunState) -> list[FrontierPoint]:
    """Every arm's point, in arm order, with its Pareto flags. Each arm is compared with its own run's
    baseline, as the report does (r without the warm-up, the val gap weighted by tokens)."""
    points = [_point(state, arm, baseline_of(state, arm.name)) for arm in state.arms.values()]
    time_front = pareto([(p.r[0], -p.val_gap[0]) for p in points])
    forget_front = pareto([(p.target_gain[0], -p.forgetting[0]) for p in points])
    return [_flag(p, t, f) for p, t, f in zip(points, time_front, forget_front)]


def _flag(p: FrontierPoint, time_front: bool, forget_front: bool) -> FrontierPoint:
    return FrontierPoint(**{**p.__dict__, "front_time": time_front, "front_forget": forget_front})


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For each (a, b) where larger is better on both: True when no other point dominates it. A point
    with a nan coordinate is on no front and dominates nothing."""
    ok = [not (math.isnan(a) or math.isnan(b)) for a, b in points]
    out = []
    for i, (a, b) in enumerate(points):
        dominated = any(ok[j] and j != i and c >= a and d >= b and (c > a or d > b) for j, (c, d) in enumerate(points))
        out.append(ok[i] and not dominated)
    return out


def _point(state: RunState, arm: ArmState, base: str | None) -> FrontierPoint:
    last = arm.epochs[-1][1] if arm.epochs else None
    zero = arm.step_zero
    ref = state.arms.get(base) if base else None
    ref_last = ref.epochs[-1][1] if ref is not None and ref.epochs else None
    m = ev.measured
    return FrontierPoint(
        arm=arm.name,
        r=_saving(state, base, arm.name),
        val_gap=_val_gap(state, base, arm.name, validated=last is not None),
        target_gain=_paired(m(last, "val_batches"), m(zero, "val_batches")),
        forgetting=_paired(m(zero, "retain_batches"), m(last, "retain_batches")),
        forgetting_vs_full=_paired(m(ref_last, "retain_batches"), m(last, "retain_batches")),
        expected_s_pre=_num(m(zero, "expected_s")),
        expected_s=_num(m(last, "expected_s")),
        retain_loss_pre=_num(m(zero, "retain_loss")),
        retain_loss=_num(m(last, "retain_loss")),
        is_baseline=arm.name == base,
        is_random=arm.name.startswith(RANDOM_PREFIX),
    )


ZERO3 = (0.0, 0.0, 0.0)


def _val_gap(state: RunState, base: str | None, name: str, *, validated: bool) -> tuple[float, float, float]:
    """L_arm - L_baseline on the same validation batches, token-weighted; 0 for the baseline once validated."""
    if name == base:
        return ZERO3 if validated else NAN3
    return val_comparison(state, base, name) if base else NAN3


def _saving(state: RunState, base: str | None, name: str) -> tuple[float, float, float]:
    """r against the arm's own run's baseline with its interval; 0 for the baseline itself."""
    if name == base:
        return ZERO3
    if base is None or unpaired(state, name):
        return NAN3
    est = r_estimate(state, base, name)
    return est.r, est.lo, est.hi


def _paired(before, after) -> tuple[float, float, float]:
    """Mean of after_b - before_b over batches b with its t interval; nan unless both lists pair."""
    if not isinstance(before, (list, tuple)) or not isinstance(after, (list, tuple)):
        return NAN3
    if not before or len(before) != len(after):
        return NAN3
    return paired_ci95([_num(v) for v in before], [_num(v) for v in after])


class FrontierFields(msgspec.Struct, frozen=True):
    """One arm's place on the frontier as its summary row holds it: the ArmSummary fields of the same
    names (engine.log.events), which the row takes over as they are."""

    target_gain: float
    target_gain_ci: list[float]
    retain_loss_pre: float
    retain_loss: float
    forgetting: float
    forgetting_ci: list[float]
    forgetting_vs_full: float
    forgetting_vs_full_ci: list[float]
    expected_s_pre: float
    expected_s: float
    pareto_time: bool
    pareto_forget: bool


def arm_frontier_fields(state: RunState, name: str) -> FrontierFields | None:
    """The report/export/run_end fields of one arm; None for a log from before they were measured."""
    point = next((p for p in frontier_points(state) if p.arm == name), None)
    if point is None or state.arms[name].step_zero is None:
        return None
    return FrontierFields(
        target_gain=point.target_gain[0],
        target_gain_ci=list(point.target_gain[1:]),
        retain_loss_pre=point.retain_loss_pre,
        retain_loss=point.retain_loss,
        forgetting=point.forgetting[0],
        forgetting_ci=list(point.forgetting[1:]),
        forgetting_vs_full=point.forgetting_vs_full[0],
        forgetting_vs_full_ci=list(point.forgetting_vs_full[1:]),
        expected_s_pre=point.expected_s_pre,
        expected_s=point.expected_s,
        pareto_time=point.front_time,
        pareto_forget=point.front_forget,
    )


def _num(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
