"""`freeze-tui suggest --method rgn|snr|fisher|random`: every method ranks block matrices, fills the
budget greedily (saying what it skipped), prints a spec `plan` accepts, and its peft/names forms
apply to a real model."""

from __future__ import annotations

import json
import random
import re

import pytest
from click.testing import CliRunner

from engine.plans.select import Budget, candidate_units, fill_budget, jaccard_stability, peft_regex
from freeze_tui.cli.main import cli
from tests.tiny_models import FAMILIES, WORDS, make_tiny_model

FAST = ["--block-size", "16", "--batch-size", "4", "--lr", "0.01", "--probe-seeds", "2"]
METHOD_ARGS = {
    "rgn": ["--method", "rgn", "--max-steps", "2"],
    "fisher": ["--method", "fisher", "--probe-batches", "2"],
    "snr": ["--method", "snr"],
    "random": ["--method", "random"],
}


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture(scope="module")
def demo_layout():
    from engine.train.models import load_layout

    return load_layout(None)[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(3000)))
    return path


# -- the shared pure parts -----------------------------------------------------------------------------
def test_the_parameter_budget_fill_takes_the_ranking_in_order_and_says_why_it_skipped(demo_layout):
    units = candidate_units(demo_layout)
    ranked = sorted(units, key=lambda u: (-u.numel, u.block))  # mlp first: they do not all fit
    fill = fill_budget(ranked, demo_layout, Budget(params=0.1, seq_len=16))
    n_total = demo_layout.n_total
    assert 0 < fill.trainable <= 0.1 * n_total
    used = 0
    chosen = {u.label for u in fill.chosen}
    reasons = {u.label: why for u, why in fill.skipped}
    assert chosen.isdisjoint(reasons) and len(chosen) + len(reasons) == len(units)
    for u in ranked:  # replay: each unit joined exactly when it still fit
        if u.label in chosen:
            used += u.numel
            assert used <= 0.1 * n_total
        else:
            assert used + u.numel > 0.1 * n_total
            assert reasons[u.label].startswith(f"params: {100 * (used + u.numel) / n_total:.1f} % > 10 %")


def test_the_time_budget_fill_keeps_the_flop_model_under_the_share(demo_layout):
    from engine.plans.flops import flop_ratio

    units = candidate_units(demo_layout)
    fill = fill_budget(sorted(units, key=lambda u: u.block), demo_layout, Budget(time=0.6, seq_len=16))
    names = {n for u in fill.chosen for n in u.params}
    assert fill.chosen and fill.cost == pytest.approx(flop_ratio(demo_layout, names, seq_len=16)) and fill.cost <= 0.6
    # block 0 comes first in this ranking but forces backward through everything: skipped for time
    assert all(why.startswith("time: ") for _, why in fill.skipped)
    assert min(u.block for u in fill.chosen) > 0


def test_jaccard_stability_and_the_spec_and_regex_forms():
    a, b, c = frozenset("xy"), frozenset("xz"), frozenset("xy")
    assert jaccard_stability([a, b, c]) == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert jaccard_stability([a]) is None
    assert jaccard_stability([frozenset(), frozenset()]) == 1.0
    regex = peft_regex(["transformer.h.1.attn.c_attn", "transformer.h.10.mlp.c_fc"])
    assert re.fullmatch(regex, "transformer.h.1.attn.c_attn")
    assert not re.fullmatch(regex, "transformer.h.11.attn.c_attn") and not re.fullmatch(regex, "transformer.h.1.attn")


# -- every method through the CLI ----------------------------------------------------------------------
@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_each_method_on_a_tiny_gpt2_prints_a_spec_plan_accepts_and_json(tiny, method):
    model, corpus = tiny
    args = ["--model", str(model), "--data", str(corpus), *FAST, *METHOD_ARGS[method], "--budget", "0.3"]
    result = CliRunner().invoke(cli, ["suggest", *args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"method {method}: ") and "*    1" in result.output
    assert lines[-3].startswith("* = trained: ") and lines[-4].startswith("stability: ")
    spec = lines[-1]
    planned = CliRunner().invoke(cli, ["plan", "--model", str(model), "--arm", f"s={spec}", "--json"])
    assert planned.exit_code == 0, planned.output
    arm = json.loads(planned.output)["arms"][0]
    assert 0 < arm["pct"] <= 30.0 and f"({arm['pct']:.2f} %)" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["suggest", *args, "--format", "json"]).output)
    assert as_json["method"] == method and as_json["spec"] == spec and as_json["budget"]["params"] == 0.3
    assert len(as_json["ranking"]) == 12 and {"score", "params", "backward_to_block"} <= set(as_json["ranking"][0])
    jac = as_json["stability"]["jaccard"]
    assert (jac is None) if method == "snr" else (0 <= jac <= 1 and len(as_json["stability"]["sets"]) == 2)


def test_the_peft_and_names_forms_apply_to_the_real_model(tiny):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model_dir, _ = tiny
    args = ["suggest", "--model", str(model_dir), "--method", "snr", "--budget", "0.3"]
    text = CliRunner().invoke(cli, args)
    spec = text.output.strip().splitlines()[-1]
    peft_out = CliRunner().invoke(cli, [*args, "--format", "peft"])
    assert peft_out.exit_code == 0, peft_out.output
    target = json.loads(peft_out.output.strip().splitlines()[-1])["target_modules"]
    names = CliRunner().invoke(cli, [*args, "--format", "names"]).output.split()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    expected = {n.rsplit(".", 1)[0] for n in names if model.get_parameter(n).dim() == 2}
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=target, fan_in_fan_out=True))
    adapted = {
        n.split("base_model.model.", 1)[1].rsplit(".lora_A", 1)[0]
        for n, _ in peft_model.named_parameters()
        if ".lora_A." in n
    }
    assert adapted == expected and expected
    # names: exactly what the spec trains, per `plan`
    from engine.plans.freeze import resolve_plan
    from engine.plans.roles import build_layout

    fresh = AutoModelForCausalLM.from_pretrained(model_dir)
    plan = resolve_plan("s", spec, build_layout(fresh))
    assert set(names) == set(plan.initial)
    assert all(isinstance(fresh.get_parameter(n), torch.nn.Parameter) for n in names)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_method_on_a_tiny_model_of_each_family(family, tmp_path, corpus):
    model = make_tiny_model(tmp_path, family)
    for method, margs in METHOD_ARGS.items():
        args = ["suggest", "--model", str(model), "--data", str(corpus), *FAST, *margs, "--budget", "0.3"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, f"{method}: {result.output}"
        spec = result.output.strip().splitlines()[-1]
        assert spec.startswith("+"), f"{method}: {result.output}"


def test_snr_needs_only_config_and_weights(tmp_path):
    model = make_tiny_model(tmp_path, "llama", with_tokenizer=False)
    assert not list(model.glob("tokenizer*"))
    result = CliRunner().invoke(cli, ["suggest", "--model", str(model), "--method", "snr", "--budget", "0.2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("+")


def test_random_with_two_seeds_gives_two_different_sets_that_fill_the_same_budget(tiny):
    model, _ = tiny
    chosen = []
    for seed in ("0", "1"):
        args = ["suggest", "--model", str(model), "--method", "random", "--budget", "0.3", "--seed", seed]
        out = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).output)
        chosen.append(out)
    sets = [frozenset(r["matrix"] for r in o["ranking"] if r["chosen"]) for o in chosen]
    assert sets[0] != sets[1]
    smallest = min(r["params"] for r in chosen[0]["ranking"])
    for out in chosen:  # each fill is maximal: no unchosen unit still fits under the same budget
        assert out["trainable"] <= 0.3 * out["total"]
        assert all(out["trainable"] + r["params"] > 0.3 * out["total"] for r in out["ranking"] if not r["chosen"])
    assert abs(chosen[0]["trainable"] - chosen[1]["trainable"]) < max(smallest, 0.3 * chosen[0]["total"])


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--budget", "1.5"], "--budget must be a share in (0, 1]"),
        ([], "suggest needs --budget F"),
        (["--budget", "0.1", "--probe-seeds", "0"], "--probe-seeds must be at least 1"),
        (["--time-budget", "0.05"], "no block matrix fits in 5 % of full training's FLOPs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra, needle, capsys, tiny):
    model, _ = tiny
    code, out, err = run_main(["suggest", "--model", str(model), "--method", "random", *extra], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_snr_without_safetensors_is_one_line(tmp_path, capsys):
    import torch

    out_dir = make_tiny_model(tmp_path, "gpt2", with_tokenizer=False)
    weights = out_dir / "model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), out_dir / "pytorch_model.bin")  # an old-style checkpoint
    weights.unlink()
    capsys.readouterr()  # the model's save chatter is not the command's
    code, out, err = run_main(["suggest", "--model", str(out_dir), "--method", "snr", "--budget", "0.2"], capsys)
    assert code == 2 and "snr reads the weights tensor by tensor" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_each_method_on_the_demo(method, capsys):
    fast = ["--block-size", "32", "--probe-seeds", "2", "--max-steps", "1", "--probe-batches", "1"]
    code, out, err = run_main(["suggest", "--method", method, *fast, "--budget", "0.1"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"method {method}: ")
    assert sum(bool(re.match(r"[* ] +\d+  [a-z.]+\[\d\]", line)) for line in lines) == 18  # the demo's matrices
    assert re.fullmatch(r"(\+[a-z.]+(\[[0-9,:]+\])?,?)+", lines[-1])  # no brackets: every block
