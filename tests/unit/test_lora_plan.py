"""LoRA specs: parsing, resolution against layouts, exact adapter counts, the FLOP model (no torch)."""

import msgspec
import pytest

from engine.core.errors import SpecError
from engine.log import events as ev
from engine.plans.describe import arm_record
from engine.plans.flops import flop_ratio, lora_step_flops, step_flops
from engine.plans.kinds import resolve_plan
from engine.plans.lora import AdapterPlan
from engine.plans.plan_record import PlanGrid
from engine.plans.spec import parse_spec
from freeze_tui.draw.plan_grid import render_grid
from tests.layouts import D, L


def test_lora_spec_parses_rank_alpha_and_targets():
    spec = parse_spec("lora:16/32:attn.q,attn.v[2:]")
    assert (spec.adapter.kind, spec.adapter.rank, spec.adapter.alpha, spec.adapter.scale) == ("lora", 16, 32.0, 2.0)
    assert [(t.role, t.blocks.text if t.blocks else None) for t in spec.adapter.targets] == [
        ("attn.q", None),
        ("attn.v", "2:"),
    ]
    assert parse_spec("lora:8:attn.qkv[6:]").adapter.alpha == 8.0  # alpha defaults to r: scale 1


@pytest.mark.parametrize(
    "text,pos,message",
    [
        ("lora:0:attn", 5, "rank '0' must be a whole number >= 1"),
        ("lora:x:attn", 5, "rank 'x'"),
        ("lora:8/-1:attn", 7, "alpha '-1' must be a number > 0"),
        ("lora:8:", 7, "empty LoRA target"),
        ("lora:8:attn,,mlp", 12, "empty LoRA target"),
        ("lora:8:+attn", 7, "without sign or schedule"),
        ("lora:8:attn@epoch 1", 7, "without sign or schedule"),
        ("lora:8:atn", 7, "unknown role 'atn'"),
        ("lora8:attn", 0, "cannot read this LoRA spec"),
    ],
)
def test_bad_lora_specs_say_where(text, pos, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert f"at {pos}:" in str(err.value) and message in str(err.value)


def test_lora_on_upper_qkv_counts_r_times_in_plus_out(layout):
    plan = resolve_plan("lora", "lora:8:attn.qkv[6:]", layout)
    assert isinstance(plan, AdapterPlan) and plan.kind == "lora"
    # what trains is the adapters, as peft names them, at every step (no base parameter ever)
    modules = [f"transformer.h.{i}.attn.c_attn" for i in range(6, L)]
    adapters = {f"{m}.lora_{ab}.default.weight" for m in modules for ab in "AB"}
    assert plan.initial == plan.trainable_at(0, 0) == plan.trainable_at(10**6, 9) == plan.ever_trainable == adapters
    assert plan.fired(None, (0, 0)) == plan.fired((0, 0), (5, 1)) == [] and plan.changes == ()
    assert plan.adapted == tuple(f"transformer.h.{i}.attn.c_attn.weight" for i in range(6, L))
    assert plan.modules[0] == "transformer.h.6.attn.c_attn"
    assert plan.n_trainable == 6 * 8 * (D + 3 * D)
    assert plan.n_total == layout.n_total + plan.n_trainable


def test_lora_adapts_matrices_only_and_skips_biases_and_norms(layout):
    plan = resolve_plan("lora", "lora:4:block[0]", layout)
    adapted = [n.split(".", 3)[3] for n in plan.adapted]
    assert adapted == ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]
    assert plan.n_trainable == 4 * ((D + 3 * D) + 2 * D + (D + 4 * D) + (4 * D + D))


@pytest.mark.parametrize(
    "spec,message",
    [
        ("lora:8:attn.q", "q, k and v are one fused tensor"),  # the freeze spec's own error
        ("lora:8:norm", "matches no weight matrix of a Linear or Conv1D layer"),
        ("lora:8:attn[20:]", "block index out of range"),
    ],
)
def test_lora_targets_refused_like_freeze_rules(layout, spec, message):
    with pytest.raises(SpecError, match=message):
        resolve_plan("lora", spec, layout)


def test_lora_flops_run_backward_down_to_the_lowest_adapter(layout):
    plan = resolve_plan("lora", "lora:8:attn.qkv[6:]", layout)
    targeted = step_flops(layout, resolve_plan("t", "targeted", layout).initial, seq_len=0)
    lora = lora_step_flops(layout, plan.adapted, plan.rank, seq_len=0)
    adapters = 2 * plan.n_trainable
    assert lora.forward == targeted.forward + adapters
    assert lora.backward_weight == adapters  # no base weight gradient at all
    # input gradients: the same base matmuls as targeted, plus B's inputs everywhere, A's above block 6
    b_inputs, a_inputs = 2 * 8 * 3 * D * 6, 2 * 8 * D * 5
    assert lora.backward_input == targeted.backward_input + b_inputs + a_inputs
    record = arm_record(plan, layout, seq_len=0)
    full = step_flops(layout, set(layout.names), seq_len=0).total
    assert record.flop_ratio == pytest.approx(lora.total / full, abs=1e-4)
    assert record.r_pred > 1 - flop_ratio(layout, resolve_plan("t", "targeted", layout).initial, seq_len=0)
    assert record.lora == ev.AdapterRecord(8, 8.0, 6)


def test_lora_grid_marks_adapted_cells(layout):
    grid = arm_record(resolve_plan("lora", "lora:8:attn.qkv[6:]", layout), layout, seq_len=128).grid
    assert [row[0] for row in grid["cells"]] == ["frozen"] * 6 + ["lora"] * 6
    assert all(cell == "frozen" for row in grid["cells"] for cell in row[1:])
    text = render_grid(msgspec.convert(grid, PlanGrid)).plain
    assert "▲" * 6 in text and "▲ lora" in text


def test_lora_memory_counts_adapters_and_backward_to_the_lowest_adapter(layout):
    from engine.plans.memory import activation_bytes, plan_memory

    plan = resolve_plan("lora", "lora:8:attn.qkv[6:]", layout)
    mem = plan_memory(layout, plan, batch=4, block=128, dtype="fp32")
    n = plan.n_trainable
    assert (mem.weights, mem.grads, mem.optimizer) == (4 * (layout.n_total + n), 4 * n, 8 * n)
    assert mem.activations == activation_bytes(layout, set(plan.adapted), batch=4, block=128, dtype="fp32")
    targeted = plan_memory(layout, resolve_plan("t", "targeted", layout), batch=4, block=128, dtype="fp32")
    assert mem.activations == targeted.activations  # same lowest block, same kept inputs
    assert mem.grads + mem.optimizer < (targeted.grads + targeted.optimizer) / 10
