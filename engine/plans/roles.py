"""Which role (embed, attn.q, mlp, ...) and block each parameter of a causal LM plays.

Roles are found from parameter names, shapes and module types plus a few config
numbers, not from a per-model table, so new architectures that follow the usual
Hugging Face shapes work unchanged:

* blocks: the ``prefix.<i>.`` ModuleList with the most indices (``transformer.h``,
  ``model.layers``, ``gpt_neox.layers`` ...);
* in a block: norm-type modules are ``norm``; modules under an ``*attn*``/``*attention*``
  container are q/k/v/o/fused qkv by their leaf name; everything else is ``mlp``;
* outside blocks: the input/output embedding modules (``get_input_embeddings()`` etc.)
  are ``embed``/``head``; other Embedding modules with "pos" in their name ``pos``;
  norms ``final_norm``; the rest ``other``.

A tied parameter (GPT-2's ``wte`` = ``lm_head``) is one entry with roles {embed, head}.
The only per-architecture knowledge is how a fused QKV tensor orders its rows
(``_fused_pattern``), which names and shapes cannot reveal. ``classify`` is pure;
``build_layout`` reads a real module (torch imported lazily, no torch at import).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "RawParam",
    "ArchInfo",
    "ParamInfo",
    "ModelLayout",
    "ParamSplit",
    "classify",
    "arch_info",
    "build_layout",
    "attention_splits",
    "raw_params",
]

ATTN_ROLES = ("attn.q", "attn.k", "attn.v", "attn.o", "attn.qkv")
_LEAF_ROLE = {
    **dict.fromkeys(("c_attn", "query_key_value", "qkv_proj", "wqkv", "qkv", "w_pack", "in_proj"), "attn.qkv"),
    **dict.fromkeys(("q_proj", "query", "q", "wq", "q_lin"), "attn.q"),
    **dict.fromkeys(("k_proj", "key", "k", "wk", "k_lin"), "attn.k"),
    **dict.fromkeys(("v_proj", "value", "v", "wv", "v_lin"), "attn.v"),
    **dict.fromkeys(("o_proj", "out_proj", "dense", "c_proj", "wo", "out", "o", "proj", "out_lin"), "attn.o"),
}
_NORM_NAME = re.compile(r"(^|_)(ln|norm|layernorm|layer_norm|rmsnorm)(_|\d|$)")
_BLOCK = re.compile(r"^(.*?)\.(\d+)\.(.+)$")
_INTERLEAVED = {"gpt_neox", "bloom", "persimmon", "gpt_neox_japanese"}


@dataclass(frozen=True)
class RawParam:
    """What classification needs to know about one (deduplicated) parameter."""

    name: str
    shape: tuple[int, ...]
    module_type: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchInfo:
    """Config numbers: block count and attention head geometry (None where unknown)."""

    model_type: str
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    qkv_groups: int = 1
    qkv_pattern: tuple[int, ...] = ()  # per group, one label (0=q 1=k 2=v) per head_dim rows


@dataclass(frozen=True)
class ParamInfo:
    """One parameter: its roles (two for a tied embed/head), block, shape, module type."""

    name: str
    shape: tuple[int, ...]
    roles: frozenset[str]
    block: int | None
    module_type: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def role(self) -> str:
        """The one role; "embed" for a tied embed/head."""
        return "embed" if "embed" in self.roles else next(iter(self.roles))

    @property
    def tied(self) -> bool:
        return len(self.roles) > 1

    @property
    def out_dim(self) -> int:
        """The output-feature axis: 1 for GPT-2's Conv1D (in, out) weights, else 0."""
        return 1 if self.module_type == "Conv1D" and len(self.shape) == 2 else 0


@dataclass(frozen=True)
class ModelLayout:
    """All parameters with roles, in model order, plus the attention geometry.

    ``problem`` is set (and no roles found) when blocks/attention could not be
    recognised; role rules then fail with that message while ``re:`` rules still work.
    """

    arch: ArchInfo
    params: tuple[ParamInfo, ...]
    n_blocks: int
    problem: str | None = None

    @cached_property
    def _index(self) -> dict[str, ParamInfo]:
        return {p.name: p for p in self.params}

    def param(self, name: str) -> ParamInfo:
        return self._index[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def n_total(self) -> int:
        return sum(p.numel for p in self.params)

    @property
    def fused_qkv(self) -> bool:
        return any("attn.qkv" in p.roles for p in self.params)

    def numel(self, names) -> int:
        return sum(self._index[n].numel for n in names)


@dataclass(frozen=True)
class ParamSplit:
    """How one attention weight splits into named matrices along ``dim``.

    ``segment[i]`` is the index into ``names`` of row/column i along ``dim``; the
    per-matrix Frobenius norms of dW are sqrt(index_add(segment, (dW**2).sum(other dim))).
    """

    param: str
    dim: int
    names: tuple[str, ...]
    segment: tuple[int, ...]


def classify(raw: list[RawParam], arch: ArchInfo, embed_names=frozenset(), head_names=frozenset()) -> ModelLayout:
    """Pure role discovery. embed_names/head_names: names (or aliases) of the params of
    the model's input/output embedding modules, when the caller knows them."""
    prefix, n_blocks = _find_blocks(raw, arch.n_layers)
    params = tuple(_classify_one(p, prefix, embed_names, head_names) for p in raw)
    if prefix is None or not any(r in ATTN_ROLES for p in params for r in p.roles):
        params = tuple(ParamInfo(p.name, p.shape, frozenset({"other"}), None, p.module_type, p.aliases) for p in raw)
        return ModelLayout(arch, params, 0, _unknown_message(arch, raw))
    return ModelLayout(arch, params, n_blocks)


def _find_blocks(raw: list[RawParam], n_layers: int | None) -> tuple[str | None, int]:
    """The ``prefix`` of ``prefix.<i>.rest`` names with the most distinct indices."""
    indices: dict[str, set[int]] = {}
    for p in raw:
        m = _BLOCK.match(p.name)
        if m:
            indices.setdefault(m.group(1), set()).add(int(m.group(2)))
    if not indices:
        return None, 0
    exact = [k for k, v in indices.items() if len(v) == n_layers]
    prefix = exact[0] if exact else max(indices, key=lambda k: len(indices[k]))
    return prefix, max(indices[prefix]) + 1


def _classify_one(p: RawParam, prefix: str | None, embed_names, head_names) -> ParamInfo:
    m = _BLOCK.match(p.name)
    if prefix is not None and m and m.group(1) == prefix:
        return ParamInfo(
            p.name,
            p.shape,
            frozenset({_block_role(m.group(3), p.module_type)}),
            int(m.group(2)),
            p.module_type,
            p.aliases,
        )
    names = {p.name, *p.aliases}
    roles = {"embed"} if names & embed_names else set()
    roles |= {"head"} if names & head_names else set()
    return ParamInfo(p.name, p.shape, frozenset(roles or {_outer_role(p)}), None, p.module_type, p.aliases)


def _block_role(rest: str, module_type: str) -> str:
    """Role of a parameter inside a block, from its path below the block."""
    modules = rest.split(".")[:-1]
    if _is_norm(modules[-1] if modules else "", module_type):
        return "norm"
    if any("attn" in m.lower() or "attention" in m.lower() for m in modules):
        return _LEAF_ROLE.get(modules[-1].lower(), "attn")
    return "mlp"


def _outer_role(p: RawParam) -> str:
    """Role of a parameter outside the blocks when the embedding hints did not say."""
    modules = p.name.lower().split(".")[:-1]
    leaf = modules[-1] if modules else ""
    if "embedding" in p.module_type.lower() or leaf in ("wte", "wpe"):
        return "pos" if "pos" in leaf or leaf == "wpe" else "embed"
    if _is_norm(leaf, p.module_type):
        return "other" if "emb" in leaf else "final_norm"
    return "head" if leaf in ("lm_head", "embed_out", "output") else "other"


def _is_norm(leaf: str, module_type: str) -> bool:
    return "norm" in module_type.lower() or bool(_NORM_NAME.search(leaf.lower()))


def _unknown_message(arch: ArchInfo, raw: list[RawParam]) -> str:
    shown = ", ".join(p.name for p in raw[:6]) + (", ..." if len(raw) > 6 else "")
    example = raw[len(raw) // 2].name.rsplit(".", 1)[0] if raw else "layers"
    return (
        f"cannot find the transformer blocks and attention of this {arch.model_type or 'unknown'} model "
        f"(parameters: {shown}); use re: rules on parameter names instead, e.g. +re:{re.escape(example)}"
    )


def arch_info(config) -> ArchInfo:
    """Read block count and head geometry from a transformers config (any object with attributes)."""
    n_layers = _first_int(config, "num_hidden_layers", "n_layer", "num_layers")
    n_heads = _first_int(config, "num_attention_heads", "n_head", "num_heads")
    n_kv = _kv_heads(config, n_heads)
    hidden = _first_int(config, "hidden_size", "n_embd", "d_model")
    head_dim = _first_int(config, "head_dim") or (hidden // n_heads if hidden and n_heads else None)
    model_type = str(getattr(config, "model_type", "") or "")
    groups, pattern = _fused_pattern(config, model_type, n_heads, n_kv)
    return ArchInfo(model_type, n_layers, n_heads, n_kv, head_dim, groups, pattern)


def _first_int(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _kv_heads(config, n_heads: int | None) -> int | None:
    if getattr(config, "model_type", "") == "falcon" and not getattr(config, "new_decoder_architecture", False):
        return 1 if getattr(config, "multi_query", False) else n_heads
    return _first_int(config, "num_key_value_heads", "num_kv_heads") or n_heads


def _fused_pattern(config, model_type: str, n_heads, n_kv) -> tuple[int, tuple[int, ...]]:
    """Row order of a fused QKV weight, as (groups, per-group labels in head_dim units)."""
    if not n_heads or not n_kv:
        return 1, ()
    if model_type in _INTERLEAVED or (
        model_type == "falcon" and n_kv == n_heads and not getattr(config, "new_decoder_architecture", False)
    ):
        return n_heads, (0, 1, 2)
    if model_type == "falcon" and getattr(config, "new_decoder_architecture", False):
        return n_kv, (0,) * (n_heads // n_kv) + (1, 2)
    return 1, (0,) * n_heads + (1,) * n_kv + (2,) * n_kv


def attention_splits(layout: ModelLayout) -> list[ParamSplit]:
    """One ParamSplit per attention weight matrix parameter (biases do not count)."""
    splits = []
    for p in layout.params:
        role = next(iter(p.roles))
        if len(p.shape) != 2 or p.block is None or role not in ATTN_ROLES:
            continue
        split = _fused_split(p, layout.arch) if role == "attn.qkv" else _single_split(p, role[5:])
        if split is not None:
            splits.append(split)
    return splits


def _single_split(p: ParamInfo, letter: str) -> ParamSplit:
    return ParamSplit(p.name, p.out_dim, (f"h.{p.block}.attn.{letter}",), (0,) * p.shape[p.out_dim])


def _fused_split(p: ParamInfo, arch: ArchInfo) -> ParamSplit | None:
    size = p.shape[p.out_dim]
    labels = _fused_labels(arch, size)
    if labels is None:
        return None
    names = tuple(f"h.{p.block}.attn.{x}" for x in "qkv")
    return ParamSplit(p.name, p.out_dim, names, labels)


def _fused_labels(arch: ArchInfo, size: int) -> tuple[int, ...] | None:
    """Per-row labels from the arch pattern; equal thirds if the pattern does not fit."""
    if arch.head_dim and arch.qkv_pattern:
        labels = tuple(x for _ in range(arch.qkv_groups) for x in arch.qkv_pattern for _ in range(arch.head_dim))
        if len(labels) == size:
            return labels
    if size % 3:
        return None
    return tuple(i * 3 // size for i in range(size))


def raw_params(model) -> tuple[list[RawParam], frozenset[str], frozenset[str]]:
    """Deduplicated parameters of a module (with tie aliases) and the embed/head names."""
    groups: dict[int, list[str]] = {}
    tensors = {}
    for name, t in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(t), []).append(name)
        tensors[id(t)] = t
    raw = [
        RawParam(names[0], tuple(tensors[k].shape), _module_type(model, names[0]), tuple(names[1:]))
        for k, names in groups.items()
    ]
    return raw, _module_param_names(model, "get_input_embeddings"), _module_param_names(model, "get_output_embeddings")


def _module_type(model, name: str) -> str:
    path = name.rsplit(".", 1)[0] if "." in name else ""
    return type(model.get_submodule(path)).__name__


def _module_param_names(model, getter: str) -> frozenset[str]:
    try:
        module = getattr(model, getter)()
    except (AttributeError, NotImplementedError):
        return frozenset()
    if module is None:
        return frozenset()
    ids = {id(t) for t in module.parameters()}
    return frozenset(n for n, t in model.named_parameters(remove_duplicate=False) if id(t) in ids)


def build_layout(model) -> ModelLayout:
    """The layout of a real ``PreTrainedModel`` (works on the meta device too)."""
    raw, embed, head = raw_params(model)
    return classify(raw, arch_info(model.config), embed, head)
