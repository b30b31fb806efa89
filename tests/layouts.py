"""Layouts of real model shapes built from names and shapes alone (pure, no torch)."""

from types import SimpleNamespace

from engine.plans.roles import RawParam, arch_info, classify

L, D, V, P = 12, 768, 50257, 1024


def gpt2_layout(n_layer=L, d=D, vocab=V, tied=True, n_head=12):
    """The parameter list of GPT2LMHeadModel (Conv1D weights are (in, out))."""
    head = [] if tied else [RawParam("lm_head.weight", (vocab, d), "Linear")]
    raw = [
        RawParam("transformer.wte.weight", (vocab, d), "Embedding", ("lm_head.weight",) if tied else ()),
        RawParam("transformer.wpe.weight", (P, d), "Embedding"),
    ]
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        for name, shape, kind in [
            ("ln_1", (d,), "LayerNorm"),
            ("attn.c_attn", (d, 3 * d), "Conv1D"),
            ("attn.c_proj", (d, d), "Conv1D"),
            ("ln_2", (d,), "LayerNorm"),
            ("mlp.c_fc", (d, 4 * d), "Conv1D"),
            ("mlp.c_proj", (4 * d, d), "Conv1D"),
        ]:
            raw += [RawParam(h + name + ".weight", shape, kind), RawParam(h + name + ".bias", (shape[-1],), kind)]
    raw += [
        RawParam("transformer.ln_f.weight", (d,), "LayerNorm"),
        RawParam("transformer.ln_f.bias", (d,), "LayerNorm"),
    ]
    raw += head
    config = SimpleNamespace(model_type="gpt2", n_layer=n_layer, n_head=n_head, n_embd=d)
    return classify(raw, arch_info(config), frozenset({"transformer.wte.weight"}), frozenset({"lm_head.weight"}))
