"""Selectors for `freeze-tui suggest --method`: each scores the candidate block matrices by one signal
(torch). The ranking, budget fill, stability and printing are shared (engine.plans.select).

* rgn    relative update ||W_n - W_0|| / ||W_0|| after a short full-training probe (engine.train.probe)
* fisher empirical Fisher diagonal: squared gradients of the loss, summed over N batches, per parameter
* snr    data-free, after Spectrum (arXiv 2406.06623): singular values against the Marchenko-Pastur edge
* random a seeded uniform score: the control a selector must beat

A selector's `scores(probe)` returns {unit label: score}; probe k uses seed cfg.seed + k, so K probes
give K rankings whose chosen sets measure the ranking's stability.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from engine.core.errors import FreezeTuiError
from engine.plans.roles import ModelLayout
from engine.plans.select import Unit

if TYPE_CHECKING:
    from engine.train.setup import Setup

METHODS = ("rgn", "snr", "fisher", "random")


class Selector(Protocol):
    name: str
    basis: str  # one line: what the score measures
    averaged: bool  # True: rank by the mean over probes; False: rank by probe 0 (random's --seed)
    deterministic: bool  # True: one probe is all there is (snr)

    def scores(self, probe: int) -> dict[str, float]: ...


@dataclass
class RandomSelector:
    units: list[Unit]
    seed: int
    name: str = "random"
    basis: str = "a seeded uniform score per matrix (the control); --seed picks which"
    averaged: bool = False
    deterministic: bool = False

    def scores(self, probe: int) -> dict[str, float]:
        rng = random.Random(f"freeze-tui random selector {self.seed + probe}")
        return {u.label: rng.random() for u in self.units}


@dataclass
class RgnSelector:
    setup: Setup
    steps: int
    units: list[Unit]
    name: str = "rgn"
    basis: str = ""
    averaged: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.basis = f"relative update ||W_n - W_0|| / ||W_0|| after {self.steps} steps of full training (AdamW)"

    def scores(self, probe: int) -> dict[str, float]:
        return relative_updates(self.setup, self.steps, self.units, seed=self.setup.cfg.seed + probe)


@dataclass
class FisherSelector:
    setup: Setup
    batches: int
    units: list[Unit]
    name: str = "fisher"
    basis: str = ""
    averaged: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.basis = f"empirical Fisher: squared gradients summed over {self.batches} batches, per parameter"

    def scores(self, probe: int) -> dict[str, float]:
        return fisher_scores(self.setup, self.batches, self.units, seed=self.setup.cfg.seed + probe)


def relative_updates(setup, steps: int, units: list[Unit], *, seed: int) -> dict[str, float]:
    """Train a copy of the model fully for `steps` steps (batch order and dropout from `seed`);
    {unit label: relative update of its matrices}."""
    from engine.plans.freeze import resolve_plan
    from engine.train.arm import train_step
    from engine.train.data import batch_order
    from engine.train.measure import build_arm

    cfg = setup.cfg
    arm = build_arm(setup.model, "probe", resolve_plan("probe", "full", setup.layout), setup.device, cfg, setup.lr)
    model = arm.model
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    order = batch_order(len(setup.data.train), cfg.batch_size, seed, 0)
    if not order:
        raise FreezeTuiError("the probe needs at least one training batch; pass more --data or a smaller --batch-size")
    for step in range(steps):
        batch = setup.data.train[order[step % len(order)]].to(arm.device)
        train_step(
            arm,
            batch,
            lr=setup.lr,
            rng_seed=seed * 1_000_003 + step + 1,
            grad_clip=cfg.grad_clip,
            autocast_dtype=None,
            measure=False,
        )
    now = dict(model.named_parameters())
    return {u.label: _relative(u, start, now) for u in units}


def _relative(unit: Unit, start: dict, now: dict) -> float:
    mats = [n for n in unit.params if start[n].dim() == 2]
    moved = sum(float((now[n].detach() - start[n]).float().pow(2).sum()) for n in mats)
    size = sum(float(start[n].float().pow(2).sum()) for n in mats)
    return math.sqrt(moved / size) if size > 0 else 0.0


def fisher_scores(setup, batches: int, units: list[Unit], *, seed: int) -> dict[str, float]:
    """Per unit: sum over `batches` batches of the squared gradient of each batch's mean loss, over the
    unit's matrices (2-D weights), divided by their parameter count. The model is not changed: the
    gradients come from autograd.grad in eval mode (the Fisher of the weights as they are)."""
    from engine.train.data import batch_order

    model = setup.model.to(setup.device)
    was_training = model.training
    model.eval()
    params = dict(model.named_parameters())
    names = [n for u in units for n in u.params if params[n].dim() == 2]
    tensors = [params[n] for n in names]
    flags = [t.requires_grad for t in tensors]
    for t in tensors:
        t.requires_grad_(True)
    sums = dict.fromkeys(names, 0.0)
    order = batch_order(len(setup.data.train), setup.cfg.batch_size, seed, 0)
    if not order:
        raise FreezeTuiError("fisher needs at least one training batch; pass more --data or a smaller --batch-size")
    try:
        for i in range(batches):
            batch = setup.data.train[order[i % len(order)]].to(setup.device)
            loss = model(input_ids=batch, labels=batch).loss
            grads = torch.autograd.grad(loss, tensors)
            for n, g in zip(names, grads, strict=True):
                sums[n] += float(g.float().pow(2).sum())
    finally:
        for t, flag in zip(tensors, flags, strict=True):
            t.requires_grad_(flag)
        model.train(was_training)
    out = {}
    for u in units:
        mats = [n for n in u.params if n in sums]
        size = sum(params[n].numel() for n in mats)
        out[u.label] = sum(sums[n] for n in mats) / size if size else 0.0
    return out


@dataclass
class SnrSelector:
    weights: dict[str, Path]  # checkpoint tensor name -> the safetensors file holding it
    layout: ModelLayout
    units: list[Unit]
    name: str = "snr"
    basis: str = "singular values vs the Marchenko-Pastur noise edge (data-free), relative to the role's mean"
    averaged: bool = True
    deterministic: bool = True

    def scores(self, probe: int) -> dict[str, float]:
        raw = {}
        for u in self.units:
            mats = [n for n in u.params if len(self.layout.param(n).shape) == 2]
            total = sum(self.layout.param(n).numel for n in mats)
            raw[u.label] = sum(matrix_snr(self._tensor(n)) * self.layout.param(n).numel for n in mats) / total
        by_role: dict[str, list[float]] = {}
        for u in self.units:
            by_role.setdefault(u.role, []).append(raw[u.label])
        means = {role: sum(v) / len(v) for role, v in by_role.items()}
        return {u.label: raw[u.label] / means[u.role] if means[u.role] else 0.0 for u in self.units}

    def _tensor(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        key = _checkpoint_key(name, self.layout.param(name).aliases, self.weights)
        with safe_open(str(self.weights[key]), framework="pt") as f:
            return f.get_tensor(key)


def matrix_snr(weight: torch.Tensor) -> float:
    """Spectrum's signal-to-noise of one matrix: its singular values are split at the Marchenko-Pastur
    edge of a noise matrix of the same shape, sigma * (1 + sqrt(beta)) with beta = min/max of the
    shape and sigma estimated robustly as IQR(singular values) / 1.349 (Spectrum's estimator);
    SNR = sum above the edge / sum below. Unlike Spectrum we do not divide by the largest singular
    value: that would make the score depend on the weights' scale, which is what sank `rgn`."""
    s = torch.linalg.svdvals(weight.detach().float())
    rows, cols = weight.shape
    beta = min(rows, cols) / max(rows, cols)
    q75, q25 = torch.quantile(s, 0.75), torch.quantile(s, 0.25)
    sigma = float(q75 - q25) / 1.349
    edge = sigma * (1 + beta**0.5)
    signal = float(s[s > edge].sum())
    noise = float(s[s <= edge].sum())
    return signal / noise if noise > 0 else signal / max(float(s.sum()) * 1e-6, 1e-30)


def safetensors_files(name_or_path: str | None, trust_remote_code: bool) -> dict[str, Path]:
    """Checkpoint tensor name -> its safetensors file, from the model's directory (or the local HF cache),
    reading only the files' headers. No data, tokenizer or model weights are loaded."""
    from engine.train.models import resolve_source

    source = resolve_source(name_or_path, trust_remote_code=trust_remote_code)
    index = _find_file(source.path, "model.safetensors.index.json")
    if index is not None:
        weight_map = json.loads(index.read_text())["weight_map"]
        return {k: index.parent / v for k, v in weight_map.items()}
    single = _find_file(source.path, "model.safetensors")
    if single is None:
        raise FreezeTuiError(
            f"snr reads the weights tensor by tensor from safetensors files; model {source.name!r} has none "
            "(save it with model.save_pretrained(DIR, safe_serialization=True))"
        )
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        return dict.fromkeys(f.keys(), single)


def _find_file(path: str, filename: str) -> Path | None:
    local = Path(path) / filename
    if local.is_file():
        return local
    try:
        from transformers.utils import cached_file

        found = cached_file(path, filename, local_files_only=True, _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):
        return None
    return Path(found) if found else None


def _checkpoint_key(name: str, aliases: tuple[str, ...], keys: dict) -> str:
    """The checkpoint's name for a model parameter: saved models may drop the base-model prefix
    (gpt2 on the Hub writes `h.0.attn.c_attn.weight` for `transformer.h.0.attn.c_attn.weight`)."""
    for candidate in (name, *aliases):
        if candidate in keys:
            return candidate
        if "." in candidate and candidate.split(".", 1)[1] in keys:
            return candidate.split(".", 1)[1]
    for key in keys:
        if name.endswith("." + key) or key.endswith("." + name):
            return key
    raise FreezeTuiError(f"snr: the weights file has no tensor for {name!r}; is it this model's checkpoint?")
