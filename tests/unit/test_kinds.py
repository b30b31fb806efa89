"""The arm-kind seam, torch-free side: every kind's plan answers trainable_at rightly, specs are spelled
from chosen (block, role) matrices and resolve back to exactly them, no import cycle among the plans."""

import grimp
import pytest

from engine.core.errors import SpecError
from engine.plans.describe import arm_record
from engine.plans.kinds import KINDS, kind_of, resolve_plan, spec_for_matrices
from engine.plans.spec import blocks_text, parse_spec
from tests.layouts import gpt2_layout


@pytest.fixture(scope="module")
def layout():
    return gpt2_layout(n_layer=4, d=16, vocab=64)


def names_of(layout, cells):
    return {p.name for p in layout.params if any(p.block == b and r in p.roles for b, r in cells)}


def test_trainable_at_follows_the_schedule_for_a_freeze_plan(layout):
    plan = resolve_plan("a", "+attn.qkv[3],+mlp[2:]@step 5,-attn.qkv[3]@epoch 1", layout)
    qkv3, mlp = names_of(layout, [(3, "attn.qkv")]), names_of(layout, [(2, "mlp"), (3, "mlp")])
    assert plan.kind == "freeze" and plan.trainable_at(0) == plan.initial == qkv3
    assert plan.trainable_at(5) == qkv3 | mlp
    assert plan.trainable_at(5, 1) == plan.trainable_at(0, 1) | mlp == mlp
    assert plan.n_trainable == layout.numel(qkv3)


@pytest.mark.parametrize("spec", ["lora:2:attn.qkv[2:]", "lora:2/4:mlp[0],attn.o"])
def test_trainable_at_is_the_adapters_at_every_step_for_an_adapter_plan(layout, spec):
    plan = resolve_plan("a", spec, layout)
    assert plan.kind == "lora" and plan.changes == ()
    assert plan.trainable_at(0) == plan.trainable_at(999, 9) == plan.ever_trainable
    assert all(".lora_" in n for n in plan.initial) and not plan.initial & set(layout.names)
    assert len(plan.initial) == 2 * len(plan.adapted)  # A and B per adapted matrix


def test_every_spec_has_exactly_one_kind():
    assert set(KINDS) >= {"freeze", "lora"}
    for text, kind in [("targeted", "freeze"), ("+attn[1:]", "freeze"), ("lora:4:attn", "lora")]:
        spec = parse_spec(text)
        assert [k.name for k in KINDS.values() if k.claims(spec)] == [kind] == [kind_of(spec).name]


def test_blocks_text_is_the_shortest_exact_list():
    assert blocks_text([3, 1, 2]) == "1:4" and blocks_text([0, 2, 3]) == "0,2,3" and blocks_text([5, 6]) == "5,6"
    assert blocks_text([4]) == "4"


@pytest.mark.parametrize("kind", ["freeze", "lora"])
def test_spec_for_matrices_resolves_to_exactly_the_chosen_matrices(layout, kind):
    cells = [(1, "attn.qkv"), (3, "attn.qkv"), (2, "attn.o"), (3, "attn.o"), (0, "mlp"), (1, "mlp"), (2, "mlp")]
    text = spec_for_matrices(kind, cells, layout, rank=4)
    plan = resolve_plan("s", text, layout)
    if kind == "freeze":
        assert text == "+attn.qkv[1,3],+attn.o[2,3],+mlp[0:3]"
        assert plan.initial == names_of(layout, cells)
    else:
        assert text == "lora:4:attn.qkv[1,3],attn.o[2,3],mlp[0:3]"
        assert set(plan.adapted) == {n for n in names_of(layout, cells) if n.endswith(".weight")}
        assert arm_record(plan, layout, seq_len=8).lora.r == 4


def test_spec_for_matrices_writes_whole_roles_outer_parts_and_alpha(layout):
    every = [(b, "attn.o") for b in range(4)]
    assert spec_for_matrices("freeze", every + [(None, "final_norm")], layout) == "+attn.o,+final_norm"
    assert spec_for_matrices("lora", every, layout, rank=8, alpha=16) == "lora:8/16:attn.o"


@pytest.mark.parametrize(
    "kind,cells,message",
    [
        ("freeze", [(0, "attn.q")], "one fused tensor"),  # GPT-2 fuses q, k and v
        ("freeze", [], "no matrices chosen"),
        ("adamw", [(0, "mlp")], "unknown arm kind 'adamw'"),
        ("lora", [(None, "final_norm")], "matches no weight matrix"),
    ],
)
def test_spec_for_matrices_refuses_what_the_model_cannot_take(layout, kind, cells, message):
    with pytest.raises(SpecError, match=message):
        spec_for_matrices(kind, cells, layout)


def test_no_import_cycle_among_the_plans():
    graph = grimp.build_graph("engine")
    plans = sorted(m for m in graph.modules if m.startswith("engine.plans."))
    cycles = [(a, b) for a in plans for b in plans if a < b and graph.chain_exists(a, b) and graph.chain_exists(b, a)]
    assert cycles == []
