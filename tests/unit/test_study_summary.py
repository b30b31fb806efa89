"""engine/log/study.py: does a method arm beat the random controls? Paired by validation batch (one seed)
or across seeds (replicates); roles come from run_start's config."""

from __future__ import annotations

import math
from types import SimpleNamespace

import msgspec
import pytest

from engine.core.errors import FreezeTuiError
from engine.core.stats import mean_ci95
from engine.log import events as ev
from engine.log.study import BEATS, LOSES, UNDECIDED, parse_roles, study_summary
from engine.run.config import RunConfig
from freeze_tui.draw import fmt
from freeze_tui.draw.frontier_report import study_lines

ROLES = "full=full,m=method,w=method,n=method,random-1=random,random-2=random"


def _state(val: dict[str, list[float]], roles: str = ROLES, past=()):
    arms = {name: SimpleNamespace(epochs=[(0, ev.ArmEpoch(val_batches=v))]) for name, v in val.items()}
    state = SimpleNamespace(settings=ev.RunSettings(arm_roles=roles), arms=arms, past=list(past))
    state.finished_replicates = [*state.past, state]  # every seed ran to its end
    return state


def _rows(names):
    return {n: ev.ArmSummary(n, r=0.25, val_diff=0.5, val_diff_ci=[0.4, 0.6]) for n in names}


VAL = {
    "full": [3.0, 3.1, 2.9, 3.2],
    "random-1": [4.0, 4.2, 3.9, 4.1],
    "random-2": [4.2, 4.0, 4.1, 4.3],
    "m": [3.5, 3.6, 3.4, 3.7],  # about 0.6 below the randoms' mean on every batch
    "w": [4.6, 4.7, 4.5, 4.9],  # above
    "n": [4.1, 4.1, 4.0, 4.3],  # noise around them
}


def test_each_method_gets_the_batch_paired_difference_to_the_mean_of_the_randoms():
    out = study_summary(_state(VAL), _rows(VAL))
    assert out is not None and out.roles["random-2"] == "random"
    diffs = [m - (a + b) / 2 for m, a, b in zip(VAL["m"], VAL["random-1"], VAL["random-2"], strict=True)]
    mean, lo, hi = mean_ci95(diffs)
    m = out.methods["m"]
    assert m.vs_random == pytest.approx(mean) and m.vs_random_ci == pytest.approx((lo, hi))
    assert m.verdict == BEATS and m.r == 0.25 and m.val_gap_ci == (0.4, 0.6)
    assert m.vs_each_random["random-1"] == pytest.approx(sum(a - b for a, b in zip(VAL["m"], VAL["random-1"])) / 4)
    assert out.methods["w"].verdict == LOSES
    assert out.methods["n"].verdict == UNDECIDED
    assert "4 batches" in m.vs_random_basis


def test_with_replicates_the_interval_runs_across_seeds():
    shifted = {k: [x + 0.01 for x in v] for k, v in VAL.items()}
    shifted["m"] = [x + 0.5 for x in VAL["m"]]  # the second seed: m only slightly better
    out = study_summary(_state(VAL, past=[_state(shifted)]), _rows(VAL))
    assert out is not None
    m = out.methods["m"]
    assert m.vs_random_basis == "t interval across 2 seeds"
    per_seed = []
    for val in (shifted, VAL):
        d = [a - (b + c) / 2 for a, b, c in zip(val["m"], val["random-1"], val["random-2"], strict=True)]
        per_seed.append(sum(d) / len(d))
    assert m.vs_random == pytest.approx(sum(per_seed) / 2)
    assert m.vs_random_ci == pytest.approx(mean_ci95(per_seed)[1:])


def test_not_a_study_without_roles_or_without_randoms():
    assert study_summary(_state(VAL, roles=""), _rows(VAL)) is None
    assert study_summary(_state(VAL, roles="m=method,full=full"), _rows(VAL)) is None
    broken = {**VAL, "m": [3.5, 3.6]}  # a validation of another length: no paired difference
    out = study_summary(_state(broken), _rows(VAL))
    assert out is not None and math.isnan(out.methods["m"].vs_random)
    assert out.methods["m"].verdict == UNDECIDED


def test_roles_are_parsed_and_checked_against_the_arms():
    assert parse_roles("a=method, b=random") == {"a": "method", "b": "random"}
    with pytest.raises(FreezeTuiError, match="ROLE one of method, random, full"):
        parse_roles("a=control")
    with pytest.raises(FreezeTuiError, match="--arm-roles names zz, which is not an arm"):
        RunConfig(arms=(("full", "full"), ("a", "targeted")), arm_roles="a=method,zz=random").validate()
    assert RunConfig(arms=(("full", "full"), ("a", "targeted")), arm_roles="a=method,full=full").validate()


def test_the_logged_study_keeps_its_key_order_and_reads_back_as_the_same_result():
    out = study_summary(_state(VAL), _rows(VAL))
    logged = msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(out)))
    assert list(logged) == ["roles", "methods"]
    assert list(logged["methods"]["m"]) == [
        *("r", "val_gap", "val_gap_ci", "vs_random", "vs_random_ci", "vs_random_basis"),
        *("randoms", "vs_each_random", "verdict"),
    ]
    assert msgspec.convert(logged, ev.StudyResult) == out
    logged["methods"]["m"]["vs_random"] = None  # NaN is written as null: read back, it prints as a dash
    assert f"  m: {fmt.DASH} [" in study_lines(msgspec.convert(logged, ev.StudyResult))[1]
