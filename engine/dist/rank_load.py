"""A rank of a distributed run materialises only the weights it trains (issue 22, host memory that scales).

Every rank builds the model with its parameters on the meta device (no bytes; buffers such as rotary
tables are built for real, as accelerate's `init_empty_weights(include_buffers=False)` does), and then:

* an arm sharded over K ranks (a freeze plan): FSDP2's `fully_shard` on the meta model, `to_empty`, and
  each parameter's own rows (FSDP2 shards dim 0 in torch.chunk pieces) read from the safetensors files
  with `safe_open(...).get_slice`: the rest of the file is never read into this process;
* an arm on one rank (or a kind that reads its layers before sharding, LoRA): the whole model, once,
  straight from the files into the arm's own weights (no shared host copy that every arm copies from).

Why not rank-0 load + broadcast: the group's first rank would still hold the whole model (8 ranks of 2
arms on one node: 2 whole copies instead of none) and every tensor would travel; reading one's own rows
from a file every rank can see costs neither. One file read per tensor, opened and closed around it, so
the memory map's pages never pile up in the process's resident set.

The plain checkpoints this covers: safetensors files (one, or sharded with an index) in the model's
folder or the Hugging Face cache whose tensors name every parameter of the model (or the same names
without the base model's prefix, as the hub's gpt2 has them) with its shape. Anything else -- .bin
weights, renamed keys, a missing tensor -- and FREEZE_TUI_WHOLE_LOAD=1 (the previous path, which the
bench compares against) load the whole model through from_pretrained on every rank as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.train.models import LoadedModel

WHOLE_LOAD_ENV = "FREEZE_TUI_WHOLE_LOAD"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@contextlib.contextmanager
def params_on_meta():
    """Parameters registered inside are moved to the meta device (their torch.empty is never touched, so
    it costs no resident memory); buffers stay real."""
    register = torch.nn.Module.register_parameter

    def on_meta(module: torch.nn.Module, name: str, param) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:  # a meta one is already here: tied weights stay one
            kept = module._parameters[name]
            assert kept is not None
            module._parameters[name] = type(kept)(kept.to("meta"), requires_grad=kept.requires_grad)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def on_meta(model: torch.nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


@dataclass(frozen=True)
class RankLoad:
    """The model built on the meta device and where each of its parameters is in the checkpoint."""

    loaded: LoadedModel  # the model with its parameters on meta, its tokenizer and layout
    files: dict[str, tuple[str, str]]  # {parameter name: (safetensors file, key)}
    sharded: bool  # this rank's arm is sharded and built from the meta device (freeze kinds)

    def skeleton(self, name_or_path: str | None, *, trust_remote_code: bool = False) -> LoadedModel:
        """prepare()'s loader: the model already built, without weights."""
        return self.loaded

    def place(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """A sharded arm stays on meta until fully_shard; any other arm gets its whole weights on `device`."""
        if self.sharded or not on_meta(model):
            return model
        to_empty_keeping_buffers(model, device)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(self._read(name, param.dtype))
        return model

    @torch.no_grad()
    def fill_shards(self, model: Any, device: torch.device, shard: int, shards: int) -> None:
        """After fully_shard on the meta model: this rank's rows of every parameter, from the files."""
        from torch.distributed.tensor import Replicate, Shard

        to_empty_keeping_buffers(model, device)
        param: Any
        for name, param in model.named_parameters():
            local = param.to_local() if hasattr(param, "to_local") else param
            placements = tuple(getattr(param, "placements", (Shard(0),)))
            if placements[-1] != Shard(0) or any(p != Replicate() for p in placements[:-1]):  # HSDP: (R, S(0))
                raise RuntimeError(f"{name}: expected FSDP2's dim-0 shards, got {placements}")
            rows = param.shape[0]
            chunk = -(-rows // shards)  # torch.chunk's pieces, as FSDP2 cuts them
            start = min(rows, shard * chunk)
            stop = min(rows, start + chunk)
            if local.shape[0] != stop - start:
                raise RuntimeError(f"{name}: this rank holds {local.shape[0]} rows, expected {stop - start}")
            if stop > start:
                local.copy_(self._read(name, param.dtype, (start, stop)))

    def checksum(self, model: torch.nn.Module) -> str:
        """engine.train.experiment.weights_checksum of the weights as loaded, read one tensor at a time."""
        h = hashlib.blake2b(digest_size=12)
        for name, param in sorted(model.named_parameters()):
            h.update(name.encode())
            h.update(self._read(name, param.dtype).contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def _read(self, name: str, dtype: torch.dtype, rows: tuple[int, int] | None = None) -> torch.Tensor:
        from safetensors import safe_open

        path, key = self.files[name]
        with safe_open(path, framework="pt") as f:  # closed at once: its mapped pages leave this process
            tensor = f.get_tensor(key) if rows is None else f.get_slice(key)[rows[0] : rows[1]]
        return tensor.to(dtype)


def to_empty_keeping_buffers(model: torch.nn.Module, device: torch.device) -> None:
    """Module.to_empty, which also empties the buffers (their values, built for real, go back) and gives
    each module its own new parameter (tied weights, one parameter under several names, are tied again)."""
    kept = {name: b.detach().clone() for name, b in model.named_buffers()}
    aliases: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(param), []).append(name)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, value in kept.items():
            model.get_buffer(name).copy_(value)
    for first, *others in aliases.values():
        for name in others:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, model.get_parameter(first))


def plan_rank_load(cfg, sharded: bool) -> RankLoad | None:
    """The rank's loading plan, or None when the checkpoint is not a plain one (see the module docstring)."""
    if os.environ.get(WHOLE_LOAD_ENV, "").strip() not in ("", "0"):
        return None
    from engine.train.models import load_skeleton

    loaded = load_skeleton(cfg.model, params_on_meta, trust_remote_code=cfg.trust_remote_code)
    files = _safetensors_keys(loaded.path, local=Path(loaded.path).is_dir())
    if files is None:
        return None
    renamed = _renamed(loaded.model, files)
    if renamed is None:
        return None
    where: dict[str, tuple[str, str]] = {}
    for name, param in loaded.model.named_parameters():
        key = renamed.get(name)
        if key is None or files[key][1] != tuple(param.shape):
            return None
        where[name] = (files[key][0], key)
    return RankLoad(loaded, where, sharded)


def _renamed(model: Any, files: dict) -> dict[str, str] | None:
    """{parameter name: checkpoint key} by transformers' own renaming of checkpoint keys (GPT-NeoX's
    embed_out is lm_head, a missing or extra base-model prefix); None when a key would need more than a
    rename (a converter fuses or splits tensors): such checkpoints load the whole way."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:  # another transformers: names as they are
        return {key: key for key in files}
    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters: list[Any] = [t for t in transforms if not isinstance(t, WeightRenaming)]
    meta_state = model.state_dict()
    out: dict[str, str] = {}
    for key in files:
        name, converted = rename_source_key(key, renamings, converters, model.base_model_prefix, meta_state)
        if converted is not None:
            return None
        out.setdefault(name, key)
    return out


def _safetensors_keys(path: str, *, local: bool) -> dict[str, tuple[str, tuple]] | None:
    """{key: (file, shape)} of the model's safetensors files (headers only), or None if it has none."""
    from safetensors import safe_open

    found = _checkpoint_files(path, local=local)
    if not found:
        return None
    keys: dict[str, tuple[str, tuple]] = {}
    for file in found:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                keys[key] = (file, tuple(f.get_slice(key).get_shape()))
    return keys


def _checkpoint_files(path: str, *, local: bool) -> list[str]:
    if local:
        folder = Path(path)
        single, index = folder / SINGLE_FILE, folder / INDEX_FILE
        single_s = str(single) if single.is_file() else None
        index_s = str(index) if index.is_file() else None
    else:  # the Hugging Face cache, never the network
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(path, SINGLE_FILE)
        single_s = hit if isinstance(hit, str) else None
        hit = try_to_load_from_cache(path, INDEX_FILE)
        index_s = hit if isinstance(hit, str) else None
    if single_s:
        return [single_s]
    if index_s:
        weight_map = json.loads(Path(index_s).read_text()).get("weight_map", {})
        files = [str(Path(index_s).parent / name) for name in dict.fromkeys(weight_map.values())]
        return files if all(Path(f).is_file() for f in files) else []
    return []


def rank_loading(cfg, planned, arm: str, shards: int) -> RankLoad | None:
    """How this rank loads `arm`'s weights: a freeze arm over several ranks from the meta device, shard
    by shard; any other kind whole, since it reads its layers before sharding (LoRA's tracker)."""
    plan = dict(planned.plans)[arm]
    return plan_rank_load(cfg, sharded=shards > 1 and plan.kind == "freeze")


def weights_source(loading: RankLoad | None) -> str:
    """How a rank got its arm's weights (run_start.config["rank_weights"] per arm)."""
    if loading is None:
        return "whole model (from_pretrained)"
    return "own shards (safetensors slices)" if loading.sharded else "whole arm (safetensors)"
