"""Role discovery, plans and splits on tiny random models of each family, loaded for real."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
import torch

from engine.core.errors import FreezeTuiError, SpecError
from engine.plans.describe import arm_record
from engine.plans.freeze import apply_trainable, resolve_plan
from engine.plans.plan_record import PlanChange
from engine.plans.roles import attention_splits
from engine.train.models import describe_plans, load_layout, load_model
from tests.tiny_models import make_tiny_model

# family -> (regex of q/k/v weight+bias names, regex of the output projection)
FAMILIES = {
    "gpt2": (r"attn\.c_attn\.", r"attn\.c_proj\."),
    "gpt_neo": (r"attention\.[qkv]_proj\.", r"attention\.out_proj\."),
    "gpt_neox": (r"attention\.query_key_value\.", r"attention\.dense\."),
    "opt": (r"self_attn\.[qkv]_proj\.", r"self_attn\.out_proj\."),
    "llama": (r"self_attn\.[qkv]_proj\.", r"self_attn\.o_proj\."),
    "mistral": (r"self_attn\.[qkv]_proj\.", r"self_attn\.o_proj\."),
    "qwen2": (r"self_attn\.[qkv]_proj\.", r"self_attn\.o_proj\."),
    "gptj": (r"attn\.[qkv]_proj\.", r"attn\.out_proj\."),
    "phi": (r"self_attn\.[qkv]_proj\.", r"self_attn\.dense\."),
    "falcon": (r"self_attention\.query_key_value\.", r"self_attention\.dense\."),
    "bloom": (r"self_attention\.query_key_value\.", r"self_attention\.dense\."),
}
N_BLOCKS = 4


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {family: load_model(str(make_tiny_model(root, family))) for family in FAMILIES}


def count(loaded, pattern: str, blocks=range(N_BLOCKS)) -> int:
    """Independent reference: scalar parameters whose name matches, within the given blocks."""
    total = 0
    for name, p in loaded.model.named_parameters():
        block = re.search(r"\.(\d+)\.", name)
        if re.search(pattern, name) and (block is None or int(block.group(1)) in blocks):
            total += p.numel()
    return total


def trainable(loaded, spec: str) -> int:
    return resolve_plan("arm", spec, loaded.layout).n_trainable


@pytest.mark.parametrize("family", FAMILIES)
def test_presets_train_exactly_the_expected_parameters(models, family):
    loaded, (qkv, out) = models[family], FAMILIES[family]
    total = sum(p.numel() for p in loaded.model.parameters())
    attn_top = count(loaded, f"{qkv}|{out}", blocks=range(2, 4))
    assert loaded.n_blocks == N_BLOCKS and loaded.n_params == total
    assert trainable(loaded, "full") == total
    assert trainable(loaded, "targeted") == count(loaded, qkv, blocks=range(2, 4)) > 0
    assert trainable(loaded, "reverse") == total - attn_top
    assert trainable(loaded, "attn-top:1") == count(loaded, f"{qkv}|{out}", blocks=[3])
    assert trainable(loaded, r"+re:\.1\.") == count(loaded, r"\.1\.", blocks=[1]) == trainable(loaded, "+block[1]")


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_schedule(models, family):
    loaded, (qkv, _) = models[family], FAMILIES[family]
    plan = resolve_plan("g", "+attn.qkv[-1:],+mlp[0]@step 5,-attn.qkv[-1:]@epoch 1", loaded.layout)
    top, mlp0 = plan.initial, plan.trainable_at(5, 0) - plan.initial
    assert plan.n_trainable == count(loaded, qkv, blocks=[3])
    assert mlp0 and all(".0." in n and loaded.layout.param(n).role == "mlp" for n in mlp0)
    assert plan.trainable_at(4, 0) == top and plan.trainable_at(5, 1) == frozenset(mlp0)
    assert plan.trainable_at(4, 1) == frozenset()
    assert [(c.at, c.n, c.rule) for c in plan.changes] == [
        ("step", 5, "+mlp[0]@step 5"),
        ("epoch", 1, "-attn.qkv[-1:]@epoch 1"),
    ]
    assert plan.changes[0].trainable == top | mlp0 and plan.changes[1].trainable == frozenset(mlp0)


def test_roles_of_a_gpt2(models):
    layout = models["gpt2"].layout
    roles = {p.name: (set(p.roles), p.block) for p in layout.params}
    assert roles["transformer.wte.weight"] == ({"embed", "head"}, None)
    assert roles["transformer.wpe.weight"] == ({"pos"}, None)
    assert roles["transformer.ln_f.weight"] == ({"final_norm"}, None)
    assert roles["transformer.h.2.attn.c_attn.weight"] == ({"attn.qkv"}, 2)
    assert roles["transformer.h.2.attn.c_proj.weight"] == ({"attn.o"}, 2)
    assert roles["transformer.h.2.mlp.c_proj.weight"] == ({"mlp"}, 2)
    assert roles["transformer.h.3.ln_2.bias"] == ({"norm"}, 3)
    assert "lm_head.weight" not in roles and layout.param("transformer.wte.weight").aliases == ("lm_head.weight",)


@pytest.mark.parametrize(
    "family,fused,tied",
    [
        ("gpt2", True, True),
        ("gpt_neo", False, True),
        ("gpt_neox", True, False),
        ("opt", False, True),
        ("llama", False, False),
        ("qwen2", False, False),
        ("falcon", True, True),
        ("bloom", True, True),
    ],
)
def test_fused_and_tied_detection(models, family, fused, tied):
    layout = models[family].layout
    assert layout.fused_qkv is fused
    assert any(p.tied for p in layout.params) is tied
    assert {r for p in layout.params for r in p.roles} >= {"embed", "head", "final_norm", "attn.o", "mlp", "norm"}


def test_meta_layout_matches_the_loaded_one(models, tmp_path):
    path = make_tiny_model(tmp_path, "qwen2")
    name, arch, layout = load_layout(str(path))
    assert (arch, layout.params) == ("qwen2", models["qwen2"].layout.params)


# -- attention splits ---------------------------------------------------------------------------


def split_norms(split, weight: torch.Tensor) -> dict[str, float]:
    """The trainer's batched formula."""
    rows = weight.pow(2).sum(1 - split.dim)
    sums = torch.zeros(len(split.names)).index_add_(0, torch.tensor(split.segment), rows)
    return dict(zip(split.names, sums.sqrt().tolist()))


def check_split(split, weight, slices: dict[str, torch.Tensor]) -> None:
    assert split_norms(split, weight) == pytest.approx({k: v.norm().item() for k, v in slices.items()}, rel=1e-5)


def splits_of(loaded) -> dict:
    return {s.param: s for s in attention_splits(loaded.layout)}


def test_gpt2_split_is_conv1d_columns(models):
    loaded, d = models["gpt2"], 32
    w = loaded.model.transformer.h[1].attn.c_attn.weight.detach()
    split = splits_of(loaded)["transformer.h.1.attn.c_attn.weight"]
    assert split.dim == 1 and split.names == ("h.1.attn.q", "h.1.attn.k", "h.1.attn.v")
    check_split(split, w, {"h.1.attn.q": w[:, :d], "h.1.attn.k": w[:, d : 2 * d], "h.1.attn.v": w[:, 2 * d :]})


def test_neox_split_is_interleaved_per_head(models):
    loaded, heads, hd = models["gpt_neox"], 4, 8
    w = loaded.model.gpt_neox.layers[2].attention.query_key_value.weight.detach()
    per_head = w.view(heads, 3, hd, -1)
    split = splits_of(loaded)["gpt_neox.layers.2.attention.query_key_value.weight"]
    assert split.dim == 0
    check_split(split, w, {f"h.2.attn.{x}": per_head[:, i] for i, x in enumerate("qkv")})


def test_bloom_and_falcon_splits(models):
    bloom = models["bloom"]
    w = bloom.model.transformer.h[0].self_attention.query_key_value.weight.detach()
    check_split(
        splits_of(bloom)["transformer.h.0.self_attention.query_key_value.weight"],
        w,
        {f"h.0.attn.{x}": w.view(4, 3, 8, -1)[:, i] for i, x in enumerate("qkv")},
    )
    falcon = models["falcon"]  # multi-query: 4 query heads, then one k head, one v head
    w = falcon.model.transformer.h[0].self_attention.query_key_value.weight.detach()
    check_split(
        splits_of(falcon)["transformer.h.0.self_attention.query_key_value.weight"],
        w,
        {"h.0.attn.q": w[:32], "h.0.attn.k": w[32:40], "h.0.attn.v": w[40:]},
    )


def test_qwen2_gqa_splits_are_one_matrix_each(models):
    loaded = models["qwen2"]
    splits = splits_of(loaded)
    attn = loaded.model.model.layers[3].self_attn
    for letter, module in zip("qkvo", (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)):
        name = next(p for p in splits if f"layers.3.self_attn.{letter}_proj.weight" in p)
        w = module.weight.detach()
        assert splits[name].names == (f"h.3.attn.{letter}",)
        check_split(splits[name], w, {f"h.3.attn.{letter}": w})
    assert attn.k_proj.weight.shape[0] == 16  # 2 key/value heads of 8
    assert len(splits) == 4 * N_BLOCKS and not any(p.endswith("bias") for p in splits)


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,spec,message",
    [
        ("gpt2", "+attn.q[2:]", "q, k and v are one fused tensor (transformer.h.0.attn.c_attn.weight)"),
        ("gpt_neox", "+attn.qkv,-attn.v", "use attn.qkv"),
        ("gpt2", "+embed", "leaves embed trainable and head frozen, but in this model they are one tied tensor"),
        ("gpt2", "-head", "(transformer.wte.weight = lm_head.weight)"),
        ("opt", "+attn,+head", "one tied tensor"),
        ("gpt2", "+attn[4]", "block index out of range: the model has 4 blocks: 0..3"),
        ("llama", "attn-top:5", "rule '+attn[-5:]' at 0 (from preset 'attn-top:5'): block index out of range"),
        ("llama", "+mlp,+pos", "rule '+pos' at 5: matches no parameter: this model has no pos parameters"),
        ("llama", "+attn,+embed[1:]", "embed is not inside the blocks"),
        ("gpt2", "+re:nothing_here", "the regex matches no parameter name"),
        ("gpt2", "-all", "it trains nothing, now or later"),
        ("gpt2", "+mlp,-mlp", "it trains nothing"),
    ],
)
def test_plan_errors_name_the_rule(models, family, spec, message):
    with pytest.raises(SpecError) as err:
        resolve_plan("arm1", spec, models[family].layout)
    text = str(err.value)
    assert message in text and f"bad spec {spec!r} for arm 'arm1'" in text and "\n" not in text


def test_tied_weights_train_when_both_sides_agree(models):
    layout = models["gpt2"].layout
    assert "transformer.wte.weight" in resolve_plan("a", "+embed,+head", layout).initial
    assert "transformer.wte.weight" not in resolve_plan("a", "-embed,-head", layout).initial
    assert "model.embed_tokens.weight" in resolve_plan("a", "+embed", models["llama"].layout).initial


def test_unknown_architecture_allows_only_regex_rules():
    from transformers import AutoModelForCausalLM, MambaConfig

    from engine.plans.roles import build_layout

    config = MambaConfig(num_hidden_layers=2, hidden_size=16, vocab_size=64, state_size=4)
    with torch.device("meta"):
        layout = build_layout(AutoModelForCausalLM.from_config(config))
    with pytest.raises(
        FreezeTuiError, match=r"cannot find the transformer blocks .* backbone\.embeddings\.weight.*use re: rules"
    ):
        resolve_plan("a", "targeted", layout)
    assert resolve_plan("a", r"+re:layers\.1\.", layout).initial
    assert attention_splits(layout) == []


def test_apply_trainable(models):
    loaded = models["gpt_neo"]
    names = resolve_plan("a", "targeted", loaded.layout).initial
    apply_trainable(loaded.model, names)
    assert {n for n, p in loaded.model.named_parameters() if p.requires_grad} == names
    apply_trainable(loaded.model, {n for n, _ in loaded.model.named_parameters()})
    with pytest.raises(ValueError):
        apply_trainable(loaded.model, {"no.such.param"})


# -- loading ------------------------------------------------------------------------------------


def test_loaded_model_has_a_pad_token(models):
    for loaded in models.values():
        assert loaded.tokenizer.pad_token is not None
        assert loaded.tokenizer.pad_token_id < loaded.model.get_input_embeddings().num_embeddings
    assert models["gpt2"].tokenizer.pad_token == models["gpt2"].tokenizer.eos_token


def test_model_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    no_tok = make_tiny_model(tmp_path / "nt", "gpt2", with_tokenizer=False)
    from transformers import T5Config

    T5Config(num_layers=1, d_model=16, d_ff=16, num_heads=2, d_kv=8, vocab_size=32).save_pretrained(tmp_path / "t5")
    cases = {
        "nonexistent-org/no-such-model": "could not be found locally",
        str(tmp_path / "missing"): "is not a directory",
        str(tmp_path / "empty"): "has no config.json",
        str(tmp_path / "t5"): "(t5) is not a causal language model",
        str(no_tok): "has no usable tokenizer",
    }
    for name, message in cases.items():
        with pytest.raises(FreezeTuiError, match=re.escape(message)) as err:
            load_model(name)
        assert "\n" not in str(err.value)
    with pytest.raises(FreezeTuiError, match="unknown dtype"):
        load_model(str(no_tok), dtype="float8")


# -- plan description ---------------------------------------------------------------------------


def test_describe_plans_is_json_and_has_a_grid(models):
    path = models["gpt2"].path
    desc = describe_plans(
        path,
        [("full", "full"), ("targeted", "targeted"), ("slow", r"+re:h\.0\.attn\.c_attn\.weight,+mlp[1]@epoch 1")],
        block_size=16,
    )
    json.dumps(msgspec.to_builtins(desc))
    assert msgspec.to_builtins(desc.model) == {
        "name": path,
        "arch": "gpt2",
        "n_params": models["gpt2"].n_params,
        "n_blocks": 4,
        "fused_qkv": True,
        "tied": True,
        "block_size": 16,
    }
    full, targeted, slow = desc.arms
    assert full.pct == 100.0 and full.flop_ratio == 1.0 and full.r_pred == 0.0
    grid = targeted.grid
    assert grid.roles == ["attn.qkv", "attn.o", "mlp", "norm"] and grid.blocks == 4
    assert [row[0] for row in grid.cells] == ["frozen", "frozen", "train", "train"]
    assert grid.other == {"embed": "frozen", "pos": "frozen", "head": "frozen", "final_norm": "frozen"}
    assert grid.tied == ["embed", "head"]
    assert slow.grid.cells[0][0] == "partial" and slow.grid.cells[1][2] == "later"
    assert slow.schedule == [PlanChange("epoch", 1, "+mlp[1]@epoch 1", 32 * 96 + (32 * 128 + 128) + (128 * 32 + 32))]
    assert slow.trainable == 32 * 96


def test_arm_record_for_run_start(models):
    layout = models["llama"].layout
    record = arm_record(resolve_plan("targeted", "targeted", layout), layout, seq_len=16)
    assert set(msgspec.to_builtins(record)) == {"name", "spec", "trainable", "total", "flop_ratio", "r_pred", "grid"}
    assert record.grid["roles"] == ["attn.q", "attn.k", "attn.v", "attn.o", "mlp", "norm"]
    assert record.grid["other"]["pos"] == "absent" and record.grid["tied"] == []
    assert 0 < record.r_pred < 1 and record.flop_ratio + record.r_pred == pytest.approx(1)
