"""The FLOP model on a GPT-2-small-shaped layout built from names and shapes (no torch)."""

import pytest

from engine.plans.flops import flop_ratio, predicted_saving, step_flops
from engine.plans.freeze import resolve_plan
from tests.layouts import D, L, V, gpt2_layout


def saving(layout, spec: str, seq_len: int = 0) -> float:
    return predicted_saving(layout, resolve_plan("arm", spec, layout).initial, seq_len=seq_len)


def by_hand(above_blocks: float, trained_per_block: int, n_trained_blocks: int) -> float:
    """The docstring's formula for plans that train only attention of the top blocks."""
    block, head = 12 * D * D, V * D
    n = L * block + head
    above = above_blocks * block + head
    cost = 2 * n + 2 * above + 2 * trained_per_block * n_trained_blocks
    return 1 - cost / (6 * n)


def test_full_costs_six_n_and_saves_nothing(layout):
    flops = step_flops(layout, set(layout.names), seq_len=0)
    n = L * 12 * D * D + V * D
    assert flops.forward == 2 * n and flops.backward_input == 2 * n and flops.backward_weight == 2 * n
    assert flop_ratio(layout, set(layout.names), seq_len=0) == 1.0
    assert saving(layout, "full") == 0.0


def test_targeted_matches_the_formula(layout):
    # lowest trainable: block 6's c_attn; above it: block 6's c_proj + MLP (9 d^2), blocks 7-11, head
    expected = by_hand(above_blocks=5 + 9 / 12, trained_per_block=3 * D * D, n_trained_blocks=6)
    assert saving(layout, "targeted") == pytest.approx(expected, rel=1e-12)
    assert 0.40 < expected < 0.45  # the LM head (31% of the matmul weights) always needs its input grads


def test_attn_top_2_matches_the_formula(layout):
    expected = by_hand(above_blocks=1 + 9 / 12, trained_per_block=4 * D * D, n_trained_blocks=2)
    assert saving(layout, "attn-top:2") == pytest.approx(expected, rel=1e-12)
    assert saving(layout, "attn-top:2") == pytest.approx(0.516, abs=0.001)


def test_reverse_saves_little(layout):
    assert 0.02 < saving(layout, "reverse") < 0.06


def test_training_lower_costs_more(layout):
    savings = [saving(layout, f"+attn[{b}]") for b in range(L)]
    assert savings == sorted(savings)


def test_head_only_needs_no_input_gradients():
    untied = gpt2_layout(tied=False)
    flops = step_flops(untied, {"lm_head.weight"}, seq_len=0)
    assert flops.backward_input == 0 and flops.backward_weight == 2 * V * D


def test_tied_head_counts_in_the_forward_like_an_untied_one():
    tied, untied = gpt2_layout(tied=True), gpt2_layout(tied=False)
    assert step_flops(tied, set(), seq_len=0).forward == step_flops(untied, set(), seq_len=0).forward


def test_training_the_tied_embedding_needs_gradients_everywhere(layout):
    flops = step_flops(layout, {"transformer.wte.weight"}, seq_len=0)
    full = step_flops(layout, set(layout.names), seq_len=0)
    assert flops.backward_input == full.backward_input
    assert flops.backward_weight == 2 * V * D


def test_nothing_trainable_is_a_third(layout):
    assert flop_ratio(layout, set(), seq_len=0) == pytest.approx(1 / 3)


def test_attention_scores_add_cost_in_proportion_to_block_size(layout):
    base = step_flops(layout, set(layout.names), seq_len=0).attention
    assert base == 0
    full = step_flops(layout, set(layout.names), seq_len=1024)
    assert full.attention == pytest.approx(3 * 2 * 1024 * D * L)
    assert step_flops(layout, set(layout.names), seq_len=2048).attention == 2 * full.attention
    assert flop_ratio(layout, set(layout.names), seq_len=1024) == 1.0
    assert 0.35 < saving(layout, "targeted", seq_len=1024) < saving(layout, "targeted")


def test_biases_and_norms_cost_nothing_but_move_the_lowest_point(layout):
    only_bias = step_flops(layout, {"transformer.h.0.ln_1.bias"}, seq_len=0)
    assert only_bias.backward_weight == 0
    assert only_bias.backward_input == step_flops(layout, set(layout.names), seq_len=0).backward_input


def test_the_readme_table_is_what_plan_prints_at_block_128():
    """The README's GPT-2-small table comes from the one FLOP model (attention scores at block 128)."""
    import re
    from pathlib import Path

    from engine.plans.describe import describe_layout

    text = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| [\d.]+ % \| ([\d.]+) \| ([\d.]+) % \|$", text, re.M)
    assert len(rows) >= 5
    desc = describe_layout(
        "gpt2", "gpt2", gpt2_layout(), [(f"a{i}", s) for i, (s, _, _) in enumerate(rows)], block_size=128
    )
    for (spec, ratio, saving_pct), arm in zip(rows, desc.arms):
        assert round(arm.flop_ratio, 3) == float(ratio), spec
        assert round(100 * arm.r_pred, 1) == float(saving_pct), spec
