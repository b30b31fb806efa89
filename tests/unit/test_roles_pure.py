"""Role classification and fused-QKV row orders from names, shapes and config numbers alone."""

from types import SimpleNamespace as Config

import pytest

from engine.core.errors import FreezeTuiError
from engine.plans.freeze import resolve_plan
from engine.plans.roles import RawParam, arch_info, attention_splits, classify


def fused_layout(model_type: str, rows: int, **config):
    raw = [
        RawParam("model.embed_tokens.weight", (64, 32), "Embedding"),
        RawParam("model.layers.0.self_attn.qkv_proj.weight", (rows, 32), "Linear"),
        RawParam("model.layers.0.self_attn.o_proj.weight", (32, 32), "Linear"),
        RawParam("model.layers.0.mlp.experts.3.w1.weight", (64, 32), "Linear"),
        RawParam("model.layers.0.ln.weight", (32,), "RMSNorm"),
        RawParam("model.norm.weight", (32,), "RMSNorm"),
        RawParam("lm_head.weight", (64, 32), "Linear"),
    ]
    info = arch_info(Config(model_type=model_type, num_hidden_layers=1, hidden_size=32, **config))
    return classify(raw, info, frozenset({"model.embed_tokens.weight"}), frozenset({"lm_head.weight"}))


def segment(layout) -> tuple[int, ...]:
    return attention_splits(layout)[0].segment


def test_concatenated_gqa_qkv():  # Phi-3 style: all q heads, then k heads, then v heads
    layout = fused_layout("phi3", 32 + 2 * 8, num_attention_heads=8, num_key_value_heads=2)
    assert segment(layout) == (0,) * 32 + (1,) * 8 + (2,) * 8


def test_falcon_new_decoder_architecture_groups_queries_per_kv_head():
    layout = fused_layout("falcon", 48, num_attention_heads=8, num_kv_heads=2, new_decoder_architecture=True)
    group = (0,) * 16 + (1,) * 4 + (2,) * 4
    assert segment(layout) == group * 2


def test_falcon_multi_query():
    layout = fused_layout("falcon", 40, num_attention_heads=8, multi_query=True)
    assert segment(layout) == (0,) * 32 + (1,) * 4 + (2,) * 4


def test_unknown_pattern_falls_back_to_thirds():
    layout = fused_layout("mystery", 96, num_attention_heads=5)
    assert segment(layout) == (0,) * 32 + (1,) * 32 + (2,) * 32


def test_roles_ignore_nested_numbers_and_find_norms_by_type():
    layout = fused_layout("phi3", 96, num_attention_heads=4)
    roles = {p.name: (p.role, p.block) for p in layout.params}
    assert roles["model.layers.0.mlp.experts.3.w1.weight"] == ("mlp", 0)
    assert roles["model.layers.0.ln.weight"] == ("norm", 0)
    assert roles["model.norm.weight"] == ("final_norm", None)
    assert layout.n_blocks == 1 and layout.problem is None


def test_no_attention_means_unknown_architecture():
    raw = [
        RawParam("backbone.embeddings.weight", (64, 16), "Embedding"),
        RawParam("backbone.layers.0.mixer.in_proj.weight", (64, 16), "Linear"),
        RawParam("backbone.layers.1.mixer.in_proj.weight", (64, 16), "Linear"),
    ]
    layout = classify(raw, arch_info(Config(model_type="mamba", num_hidden_layers=2)))
    assert layout.problem and "backbone.embeddings.weight" in layout.problem
    with pytest.raises(FreezeTuiError, match=r"use re: rules .* e\.g\. \+re:backbone\\\.layers"):
        resolve_plan("a", "full", layout)
    assert resolve_plan("a", "+re:in_proj", layout).n_trainable == 2 * 64 * 16


def test_one_schedule_rule_for_plan_and_loop():
    """Plan.initial (what plan/run_start report) includes @step 0 / @epoch 0 rules; Plan.fired gives the
    loop exactly the rules reached between two steps, each once."""
    from engine.plans.freeze import resolve_plan
    from tests.layouts import gpt2_layout

    layout = gpt2_layout(n_layer=4)
    plan = resolve_plan("a", "+attn.qkv[2:],+mlp[2:]@step 0,+mlp[:2]@step 3,-attn.qkv[2:]@epoch 1", layout)
    assert plan.initial == plan.trainable_at(0, 0) and plan.n_trainable == layout.numel(plan.initial)
    assert any(".mlp." in n for n in plan.initial)
    points = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]
    fired = {now: [c.rule for c in plan.fired(before, now)] for before, now in zip([None, *points], points)}
    assert fired == {
        (0, 0): [],
        (1, 0): [],
        (2, 0): [],
        (3, 0): ["+mlp[:2]@step 3"],
        (4, 1): ["-attn.qkv[2:]@epoch 1"],
        (5, 1): [],
    }
    assert not any("attn.c_attn" in n for n in plan.trainable_at(4, 1))
