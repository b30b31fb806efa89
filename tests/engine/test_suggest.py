"""`freeze-tui suggest`: a probe ranks block matrices; the spec it prints fits the budget and `plan` takes it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from engine.train.probe import Unit, choose, spec_for
from freeze_tui.cli import cli


def test_choose_takes_the_top_that_fits_and_writes_one_rule_per_role():
    ranked = [
        Unit("mlp", 3, ("m3",), 50, 0.9),
        Unit("attn.qkv", 2, ("q2",), 30, 0.8),
        Unit("attn.o", 2, ("o2",), 10, 0.7),
        Unit("attn.qkv", 0, ("q0",), 30, 0.6),
        Unit("attn.o", 1, ("o1",), 10, 0.5),
    ]
    chosen = choose(ranked, 0.5, 200)  # 100 parameters: mlp[3] (50) + qkv[2] (30) + o[2] (10) + o[1] (10)
    assert [u.label for u in chosen] == ["mlp[3]", "attn.qkv[2]", "attn.o[2]", "attn.o[1]"]
    assert spec_for(chosen) == "+attn.o[1,2],+attn.qkv[2],+mlp[3]"


def test_suggest_prints_a_spec_that_plan_accepts_within_the_budget(tiny):
    model, corpus = tiny
    args = ["--model", str(model), "--data", str(corpus), "--block-size", "16", "--batch-size", "4", "--lr", "0.01"]
    result = CliRunner().invoke(cli, ["suggest", *args, "--budget", "0.3", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("probe: 3 steps") and "*   1" in result.output
    spec = lines[-1]
    planned = CliRunner().invoke(cli, ["plan", "--model", str(model), "--arm", f"suggested={spec}", "--json"])
    assert planned.exit_code == 0, planned.output
    arm = json.loads(planned.output)["arms"][0]
    assert 0 < arm["pct"] <= 30.0 and f"({arm['pct']:.2f} %" in result.output


def test_a_budget_outside_0_1_is_refused():
    result = CliRunner().invoke(cli, ["suggest", "--budget", "1.5"])
    assert result.exit_code != 0 and "--budget must be a share" in str(result.exception or result.output)
