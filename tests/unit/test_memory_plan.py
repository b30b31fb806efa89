"""The memory plan's arithmetic (pure): per-arm bytes, the activation estimate, sizes, the fit check."""

import pytest

from engine.core.errors import FreezeTuiError
from engine.plans.freeze import resolve_plan
from engine.plans.memory import PlanMemory, activation_bytes, arm_memory, misfit, parse_size
from engine.run.config import RunConfig, device_list
from tests.layouts import gpt2_layout


def test_fp32_adamw_bytes_follow_the_plan():
    layout = gpt2_layout()
    full = resolve_plan("full", "full", layout)
    targeted = resolve_plan("targeted", "targeted", layout)
    n = layout.n_total
    m_full = arm_memory(layout, full.ever_trainable, batch=8, block=128, dtype="fp32")
    m_tgt = arm_memory(layout, targeted.ever_trainable, batch=8, block=128, dtype="fp32")
    assert m_full.weights == m_tgt.weights == 4 * n
    assert m_full.grads == 4 * n and m_full.optimizer == 8 * n
    assert m_tgt.grads == 4 * targeted.n_trainable and m_tgt.optimizer == 8 * targeted.n_trainable
    assert m_full.total == m_full.weights + m_full.grads + m_full.optimizer + m_full.activations


def test_activations_follow_the_stated_formula():
    layout = gpt2_layout(n_layer=2, d=8, vocab=50)  # Conv1D (in, out): c_attn 8->24, c_proj 8->8, fc 8->32, proj 32->8
    b, s, h, v = 3, 5, 8, 50
    outs, ins = 24 + 8 + 32 + 8, 8 + 8 + 8 + 32  # per block: every matrix's output, trained matrices' inputs
    logits = b * s * v * (4 + 8)
    full = activation_bytes(layout, set(layout.names), batch=b, block=s, dtype="fp32")
    assert full == b * s * 4 * 2 * (outs + ins + 2 * h) + logits
    top = {n for n in layout.names if n.startswith("transformer.h.1.attn")}  # block 0 is below: nothing kept
    assert activation_bytes(layout, top, batch=b, block=s, dtype="fp32") == b * s * 4 * (outs + 8 + 8 + 2 * h) + logits
    bf16 = activation_bytes(layout, top, batch=b, block=s, dtype="bf16")
    assert bf16 == b * s * 2 * (outs + 8 + 8 + 2 * h) + b * s * v * 10
    assert activation_bytes(layout, set(), batch=b, block=s, dtype="fp32") == 0


def test_freezing_the_bottom_saves_activations_not_weights():
    layout = gpt2_layout()
    full = arm_memory(layout, set(layout.names), batch=8, block=1024, dtype="bf16")
    top = arm_memory(layout, resolve_plan("t", "targeted", layout).ever_trainable, batch=8, block=1024, dtype="bf16")
    assert top.weights == full.weights
    assert top.activations < full.activations


@pytest.mark.parametrize(
    "text, expected",
    [("24GB", 24 * 10**9), ("1MB", 10**6), ("512MiB", 512 * 2**20), ("1.5gb", 1_500_000_000), ("4096", 4096)],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1GB", "0", "3 parsecs", "1e"])
def test_bad_sizes_are_one_line(text):
    with pytest.raises(FreezeTuiError, match="--memory-limit .* is not a size"):
        parse_size(text)


def test_misfit_names_the_arm_and_device_that_overflow():
    mem = {"full": PlanMemory.of(500, 0, 0, 100), "targeted": PlanMemory.of(450, 0, 0, 50)}  # totals 600, 500
    placement = {"full": "cuda:0", "targeted": "cuda:0"}
    assert misfit(mem, placement, {"cuda:0": 1100}, limited=True) is None
    line = misfit(mem, placement, {"cuda:0": 1000}, limited=True)
    assert line is not None and "\n" not in line
    assert line.startswith("arm targeted does not fit on cuda:0") and "--memory-limit" in line
    spread = {"full": "cuda:0", "targeted": "cuda:1"}
    assert misfit(mem, spread, {"cuda:0": 1000, "cuda:1": 1000}, limited=False) is None
    assert misfit(mem, placement, {"cuda:0": None}, limited=False) is None  # unknown free memory: not checked


def test_device_lists():
    assert device_list("cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    assert device_list("cpu, cpu") == ["cpu", "cpu"]
    assert RunConfig(device="cpu,cpu").validate().device == "cpu,cpu"
    for bad in ("cuda:0,", "gpu", "cpu,auto", "cuda:x"):
        with pytest.raises(FreezeTuiError, match="--device"):
            RunConfig(device=bad).validate()
    with pytest.raises(FreezeTuiError, match="--memory-limit"):
        RunConfig(memory_limit="big").validate()
