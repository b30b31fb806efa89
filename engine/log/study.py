"""Does a selector beat random controls of the same size? The study's verdict per method arm (pure,
no torch): read from a RunState whose run_start config names the arm roles (`--arm-roles`).

For a method arm M and random arms R_1..R_K, validation batch b of the last validation gives
d_b = L_M,b - mean_k L_Rk,b (every arm sees the same validation batches, so the difference is paired
by batch; the mean over random arms is the control of that size). With one seed, the verdict's
interval is a Student-t interval over the batches; with replicates (--seeds N) it is a t interval
over the seeds' mean differences (batches within a seed are not independent of that seed's noise).
Negative = lower validation loss than random = the method beats random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.core.errors import FreezeTuiError
from engine.core.stats import mean_ci95
from engine.log.events import ArmSummary, StudyMethod, StudyResult

ROLES = ("method", "random", "full")
BEATS, LOSES, UNDECIDED = "beats random", "worse than random", "not shown different from random"


def parse_roles(text: str) -> dict[str, str]:
    """`rgn=method,random-1=random,full=full` -> {arm: role}; one clear line for anything else."""
    roles: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, role = part.partition("=")
        if not sep or role not in ROLES or not name:
            raise FreezeTuiError(
                f"--arm-roles {part!r}: each entry is NAME=ROLE with ROLE one of {', '.join(ROLES)} "
                "(e.g. rgn=method,random-1=random,full=full)"
            )
        roles[name] = role
    return roles


def last_val_batches(state, arm: str) -> list[float] | None:
    """The validation loss per batch of the arm's last validation, or None."""
    a = state.arms.get(arm)
    if a is None or not a.epochs:
        return None
    values = list(a.epochs[-1][1].val_batch_losses)
    if not values:
        return None
    return [float(v) if isinstance(v, (int, float)) else math.nan for v in values]


def random_gap(state, method: str, randoms: list[str]) -> list[float] | None:
    """Per validation batch: the method's loss minus the mean of the random arms' losses."""
    mine = last_val_batches(state, method)
    theirs = [last_val_batches(state, r) for r in randoms]
    if mine is None or any(t is None or len(t) != len(mine) for t in theirs):
        return None
    return [m - math.fsum(t[b] for t in theirs if t is not None) / len(theirs) for b, m in enumerate(mine)]


def _mean_gap(state, method: str, other: str) -> float:
    gaps = random_gap(state, method, [other])
    return math.fsum(gaps) / len(gaps) if gaps else math.nan


def verdict(ci: tuple[float, float, float], n: int) -> str:
    mean, lo, hi = ci
    if math.isnan(mean) or n < 2:
        return UNDECIDED
    if hi < 0:
        return BEATS
    if lo > 0:
        return LOSES
    return UNDECIDED


def study_summary(state, rows: Mapping[str, ArmSummary]) -> StudyResult | None:
    """Each arm's role and each method arm's StudyMethod (vs_random, its interval, verdict, ...) from
    the state and the summary's per-arm rows ({arm: its ArmSummary}: r, val_diff), or None when the run
    is not a study (no roles, or no method or no random arm)."""
    roles = parse_roles(state.settings.arm_roles or "")
    roles = {arm: role for arm, role in roles.items() if arm in state.arms}
    methods = [a for a, r in roles.items() if r == "method"]
    randoms = [a for a, r in roles.items() if r == "random"]
    if not methods or not randoms:
        return None
    replicates = state.finished_replicates or [state]  # a seed stopped part-way is left out
    out = {}
    for arm in methods:
        if len(replicates) > 1:
            per_seed = [random_gap(rep, arm, randoms) for rep in replicates]
            means = [math.fsum(g) / len(g) for g in per_seed if g]
            ci, n, basis = mean_ci95(means), len(means), f"t interval across {len(means)} seeds"
        else:
            gaps = [g for g in (random_gap(replicates[0], arm, randoms) or []) if not math.isnan(g)]
            ci, n, basis = mean_ci95(gaps), len(gaps), f"paired by validation batch ({len(gaps)} batches)"
        row = rows.get(arm, ArmSummary(arm))
        out[arm] = StudyMethod(
            r=row.r,
            val_gap=row.val_diff,
            val_gap_ci=(row.val_diff_ci[0], row.val_diff_ci[1]),
            vs_random=ci[0],
            vs_random_ci=(ci[1], ci[2]),
            vs_random_basis=basis,
            randoms=randoms,
            # the spread between controls, which the batch-paired interval does not contain
            vs_each_random={r: _mean_gap(state, arm, r) for r in randoms},
            verdict=verdict(ci, n),
        )
    return StudyResult(roles=roles, methods=out)
