"""DoRA arms (peft's use_dora) on tiny models, CPU: counts vs peft's own, the fresh arm computes the base
function, ΔW of the effective (magnitude-normalised) update, `run --headless` with --save loads back,
`plan` prints the arm."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from click.testing import CliRunner

from engine.log import events as ev
from engine.plans.kinds import resolve_plan
from engine.plans.roles import attention_splits
from engine.train.kinds import dora_delta, torch_kind, tracker_for_model
from engine.train.models import load_model
from tests.tiny_models import WORDS, make_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft asks transformers 5
DORA = "dora:4/8:attn.qkv[2:]"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = make_tiny_model(root, "gpt2", n_layer=4)
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(3000)))
    return model, corpus


def dora_model(loaded, spec):
    plan = resolve_plan("dora", spec, loaded.layout)
    model = torch_kind(plan).prepare(loaded.model, plan, loaded.layout, seed=0, splits=(), monitor=False).model
    return plan, model


@pytest.mark.parametrize(
    "family,spec",
    [("gpt2", "dora:4:attn.qkv[2:]"), ("gpt2", "dora:2:block[1],attn.o"), ("llama", "dora:4/8:attn.q,attn.v[1:],mlp")],
)
def test_trainable_count_and_names_equal_peft_own(tmp_path, family, spec):
    loaded = load_model(str(make_tiny_model(tmp_path, family, n_layer=3)))
    plan, model = dora_model(loaded, spec)
    trainable, total = model.get_nb_trainable_parameters()
    assert (plan.n_trainable, plan.n_total) == (trainable, total)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {f"base_model.model.{n}" for n in plan.trainable_at(0, 0)}
    assert sum("lora_magnitude_vector" in n for n in trained) == len(plan.adapted)


def test_gpt2_fused_qkv_counts_by_hand(tmp_path):
    loaded = load_model(str(make_tiny_model(tmp_path, "gpt2", n_layer=4)))
    plan = resolve_plan("dora", DORA, loaded.layout)
    assert plan.n_trainable == 2 * (4 * (32 + 96) + 96)  # A, B and one magnitude per output of c_attn


def test_fresh_arm_computes_the_base_function(tiny):
    loaded = load_model(str(tiny[0]))
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    before = loaded.model(input_ids=ids).logits
    _, model = dora_model(loaded, DORA)
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-5)


@pytest.mark.parametrize(
    "family,module", [("gpt2", "transformer.h.3.attn.c_attn"), ("llama", "model.layers.1.mlp.up_proj")]
)
def test_delta_is_the_merged_weight_minus_the_base(tmp_path, family, module):
    loaded = load_model(str(make_tiny_model(tmp_path, family, n_layer=2 if family == "llama" else 4)))
    spec = "dora:4/8:attn.qkv[2:]" if family == "gpt2" else "dora:4/8:mlp"
    _, model = dora_model(loaded, spec)
    layer = dict(model.named_modules())[f"base_model.model.{module}"]
    torch.manual_seed(1)
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
        layer.lora_magnitude_vector["default"].weight.mul_(1.5)
    w0 = layer.get_base_layer().weight.detach().clone()
    delta = dora_delta(layer)
    merged = copy.deepcopy(layer)
    merged.merge(adapter_names=["default"])
    assert torch.allclose(delta, merged.get_base_layer().weight - w0, atol=1e-5)
    assert delta.abs().max() > 1e-2  # a real update, not the LoRA part alone:
    assert not torch.allclose(delta, layer.get_delta_weight("default"), atol=1e-3)


def test_tracker_of_a_dora_model_measures_the_effective_update(tiny):
    loaded = load_model(str(tiny[0]))
    plan, model = dora_model(loaded, DORA)
    splits = attention_splits(loaded.layout)
    tracker = tracker_for_model(model, splits)  # found from the model's layers, as the Recorder does
    assert tracker.delta is dora_delta
    layer = model.base_model.model.transformer.h[3].attn.c_attn
    tracker.snapshot()
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    dw, drift, _ = tracker.as_dicts(tracker.measure().tolist())
    delta = dora_delta(layer)
    for i, m in enumerate("qkv"):
        cols = slice(i * 32, (i + 1) * 32)
        assert dw[f"h.3.attn.{m}"] == pytest.approx(delta[:, cols].norm().item(), rel=1e-4)
        assert drift[f"h.3.attn.{m}"] == pytest.approx(delta[:, cols].norm().item(), rel=1e-4)
        assert dw[f"h.1.attn.{m}"] == 0.0


def test_headless_run_with_a_dora_arm_saves_adapter_and_merged_model(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.log.runlog import read_events
    from freeze_tui.cli.main import cli

    model, corpus = tiny
    log, save = tmp_path / "run.jsonl", tmp_path / "weights"
    args = ["run", "--headless", "--model", str(model), "--data", str(corpus), "--max-steps", "3", "--epochs", "1"]
    args += ["--batch-size", "2", "--block-size", "16", "--lr", "1e-2", "--samples", "0", "--log", str(log)]
    args += ["--save", str(save), "--arm", "full", "--arm", f"dora={DORA}"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    events = list(read_events(log))
    start = next(e for e in events if e.kind == "run_start")
    arm = next(a for a in start.arms if a.name == "dora")
    assert arm.dora == ev.AdapterRecord(4, 8.0, 2) and arm.trainable == 2 * (4 * 128 + 96)
    assert len([e for e in events if e.kind == "step"]) == 3 and events[-1].status == "finished"
    assert len({a.init_checksum for a in start.arms}) == 1  # the same base weights as the full arm
    first = next(e for e in events if e.kind == "step").arms
    assert first["dora"].loss == pytest.approx(first["full"].loss, abs=1e-4)  # m = ||W||: the base function
    base = AutoModelForCausalLM.from_pretrained(model)
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    adapted = PeftModel.from_pretrained(base, save / "dora" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(save / "dora").eval()
    with torch.no_grad():
        out = adapted(input_ids=ids).logits
        assert torch.allclose(out, merged(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(out, AutoModelForCausalLM.from_pretrained(model)(input_ids=ids).logits, atol=1e-5)
    report = CliRunner().invoke(cli, ["report", str(log)], catch_exceptions=False)
    assert report.exit_code == 0 and "dora" in report.output


def test_apply_spec_injects_dora_in_place_and_the_recorder_tracks_it(tiny):
    from freeze_tui import apply_spec

    loaded = load_model(str(tiny[0]))
    applied = apply_spec(loaded.model, DORA, arm="dora")
    trainable = {n for n, p in loaded.model.named_parameters() if p.requires_grad}
    assert trainable == applied.plan.trainable_at(0, 0) and applied.record.dora.matrices == 2
    assert applied.n_trainable == sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    tracker = tracker_for_model(loaded.model, attention_splits(applied.layout), applied.plan)
    assert tracker.delta is dora_delta


def test_plan_prints_a_dora_arm(tiny):
    from freeze_tui.cli.main import cli

    args = ["plan", "--json", "--model", str(tiny[0]), "--arm", "full", "--arm", f"dora={DORA}", "--block-size", "16"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dora = json.loads(result.output)["arms"][1]
    assert dora["trainable"] == 2 * (4 * 128 + 96) and dora["memory"]["grads"] == 4 * dora["trainable"]
    assert [row[0] for row in dora["grid"]["cells"]] == ["frozen", "frozen", "lora", "lora"]
    assert 0 < dora["flop_ratio"] < 1
