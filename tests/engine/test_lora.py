"""LoRA arms (peft) on tiny models, CPU: counts vs peft's own, B = 0 at start, ΔW of the effective
update, saving in peft's format and merged."""

from __future__ import annotations

import pytest
import torch

from engine.log import events as ev
from engine.plans.kinds import resolve_plan
from engine.plans.roles import attention_splits
from engine.run.config import RunConfig
from engine.train.kinds import torch_kind
from engine.train.lora import AdapterDWTracker
from engine.train.models import load_model
from tests.engine.test_run import by_kind, run_session
from tests.tiny_models import make_tiny_model

LORA = "lora:4/8:attn.qkv[2:]"


def lora_model(model, plan, layout, seed):
    """The arm's model as a run builds it (a PeftModel)."""
    return torch_kind(plan).prepare(model, plan, layout, seed=seed, splits=(), monitor=False).model


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    model, corpus = tiny
    log = tmp_path_factory.mktemp("run") / "run.jsonl"
    save = log.parent / "weights"
    cfg = RunConfig(
        model=str(model),
        data=(str(corpus),),
        epochs=1,
        max_steps=6,
        batch_size=4,
        block_size=16,
        lr=1e-2,
        samples=1,
        sample_tokens=4,
        save=str(save),
        arms=(("full", "full"), ("targeted", "targeted"), ("lora", LORA)),
    )
    _, events = run_session(cfg, log)
    return events, save


@pytest.mark.parametrize(
    "family,spec",
    [("gpt2", "lora:4:attn.qkv[2:]"), ("gpt2", "lora:2:block[1],attn.o"), ("llama", "lora:4/8:attn.q,attn.v[1:]")],
)
def test_trainable_count_equals_peft_own(tmp_path, family, spec):
    loaded = load_model(str(make_tiny_model(tmp_path, family, n_layer=3)))
    plan = resolve_plan("lora", spec, loaded.layout)
    model = lora_model(loaded.model, plan, loaded.layout, seed=0)
    trainable, total = model.get_nb_trainable_parameters()
    assert (plan.n_trainable, plan.n_total) == (trainable, total)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in model.named_parameters() if ".lora_" in n}
    assert trained == {f"base_model.model.{n}" for n in plan.trainable_at(3, 1)}  # the plan names them


def test_run_starts_equal_and_b_is_zero(finished):
    events, _ = finished
    start = by_kind(events, "run_start")[0]
    assert len({a.init_checksum for a in start.arms}) == 1
    lora = next(a for a in start.arms if a.name == "lora")
    assert lora.lora == ev.AdapterRecord(4, 8.0, 2) and lora.trainable == 2 * 4 * (32 + 96)
    first = by_kind(events, "step")[0].arms
    assert first["full"].loss == first["targeted"].loss == first["lora"].loss
    assert by_kind(events, "step")[-1].arms["lora"].loss != first["lora"].loss
    assert events[-1].status == "finished"


def test_fresh_adapter_has_b_zero_and_same_outputs(tiny):
    loaded = load_model(str(tiny[0]))
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    before = loaded.model(input_ids=ids).logits
    plan = resolve_plan("lora", LORA, loaded.layout)
    model = lora_model(loaded.model, plan, loaded.layout, seed=0)
    b = [p for n, p in model.named_parameters() if ".lora_B." in n]
    a = [p for n, p in model.named_parameters() if ".lora_A." in n]
    assert len(b) == 2 and all(torch.count_nonzero(p) == 0 for p in b) and all(p.abs().sum() > 0 for p in a)
    assert torch.equal(model(input_ids=ids).logits, before)


def test_dw_is_the_effective_update_and_zero_elsewhere(finished):
    events, _ = finished
    dws = by_kind(events, "dw")
    assert dws
    for dw in dws:
        norms = dw.norms_of("lora")
        assert all(norms[f"h.{b}.attn.{m}"] == 0.0 for b in (0, 1) for m in "qkvo")
        assert all(norms[f"h.{b}.attn.o"] == 0.0 for b in (2, 3))
        assert all(dw.arm("lora").drift[f"h.{b}.attn.o"] == 0.0 for b in range(4))
    # the first step moves B away from 0: a real, split update on every adapted q/k/v
    assert all(dws[0].norms_of("lora")[f"h.{b}.attn.{m}"] > 0 for b in (2, 3) for m in "qkv")
    assert all(dws[-1].arm("lora").drift[f"h.{b}.attn.{m}"] > 0 for b in (2, 3) for m in "qkv")


def test_tracker_matches_scale_b_a_by_hand(tiny):
    loaded = load_model(str(tiny[0]))
    plan = resolve_plan("lora", LORA, loaded.layout)
    model = lora_model(loaded.model, plan, loaded.layout, seed=0)
    tracker = AdapterDWTracker(model, attention_splits(loaded.layout))
    layer = model.base_model.model.transformer.h[3].attn.c_attn
    tracker.snapshot()
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    dw, drift, rel = tracker.as_dicts(tracker.measure().tolist())
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    delta = (2.0 * b @ a).T  # scale 8/4; GPT-2's Conv1D stores (in, out)
    w = layer.base_layer.weight + delta
    for i, m in enumerate("qkv"):
        cols = slice(i * 32, (i + 1) * 32)
        assert dw[f"h.3.attn.{m}"] == pytest.approx(delta[:, cols].norm().item(), rel=1e-5)
        assert drift[f"h.3.attn.{m}"] == pytest.approx(delta[:, cols].norm().item(), rel=1e-5)
        assert rel[f"h.3.attn.{m}"] == pytest.approx((delta[:, cols].norm() / w[:, cols].norm()).item(), rel=1e-5)
        assert dw[f"h.2.attn.{m}"] == 0.0


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft asks transformers 5
def test_saved_adapter_loads_back_with_peft(finished, tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, save = finished
    assert (save / "lora" / "adapter" / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny[0])
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    start = base(input_ids=ids).logits
    adapted = PeftModel.from_pretrained(base, save / "lora" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(save / "lora").eval()
    with torch.no_grad():
        out = adapted(input_ids=ids).logits
        assert torch.allclose(out, merged(input_ids=ids).logits, atol=1e-5)
    assert not torch.allclose(out, start, atol=1e-4)  # the adapter did learn something


def test_plan_measure_and_memory_for_a_lora_arm(tiny):
    from tests.engine.test_devices import plan_json

    args = ("--model", str(tiny[0]), "--arm", "full", "--arm", f"lora={LORA}", "--block-size", "16")
    desc = plan_json(*args, "--batch-size", "2", "--measure", "--steps", "1")
    lora = desc["arms"][1]
    assert lora["trainable"] == 2 * 4 * (32 + 96) and lora["memory"]["grads"] == 4 * lora["trainable"]
    assert lora["measured"]["t_step"] > 0 and lora["measured"]["r_flop"] == lora["r_pred"]
