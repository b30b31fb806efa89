"""The output of the leading blocks an arm never trains, computed once for every validation (torch).

All arms start from the same weights, and validation runs in eval mode (no dropout) on the same blocks
in the same batches every time. So the step-zero pass sees, for every batch, one output of block k-1,
and an arm whose embeddings and blocks 0..k-1 still hold exactly those weights at a later validation
(the targeted arm trains only the upper half: the lower half never moves) computes that same output
again, bit for bit. Such a pass skips those blocks and reads the recorded output instead (issue 22:
validation was most of the run's time off the training steps).

Checked by value, never assumed: before a pass, every parameter below block k (embeddings included)
is compared with the run's initial weights (torch.equal), and the input ids of every batch are
compared on the device with those recorded (read once at the end of the pass); anything else —
gradual unfreezing, another order of batches — runs the whole forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from engine.plans.roles import ModelLayout

MAX_BYTES = 256 * 2**20  # recorded outputs kept per run (device memory under CUDA); beyond it, no reuse
AFTER_BLOCKS = frozenset({"head", "final_norm"})  # roles outside the blocks that act after them


@dataclass
class Recorded:
    """Block depth-1's output for each forward of the step-zero pass, in order, and its input ids."""

    depth: int
    outputs: list = field(default_factory=list)
    ids: list[torch.Tensor] = field(default_factory=list)


class FrozenPrefix:
    """Recorded prefix outputs of one run (one process, local devices), by depth."""

    def __init__(self, layout: ModelLayout, initial: torch.nn.Module) -> None:
        self.layout = layout
        self.initial = dict(initial.named_parameters())  # the run's starting weights (never trained)
        self.recorded: dict[tuple[str, int], Recorded] = {}  # by (device, depth): arms on several devices
        self.bytes = 0

    # -- which blocks -----------------------------------------------------------------------------
    def prefix_names(self, depth: int) -> list[str]:
        """Parameters an output of block depth-1 depends on: blocks below `depth` and whatever outside
        the blocks acts before them (embeddings, a tied embedding/head)."""
        return [
            p.name
            for p in self.layout.params
            if (p.block is not None and p.block < depth) or (p.block is None and not p.roles <= AFTER_BLOCKS)
        ]

    def frozen_depth(self, model: torch.nn.Module) -> int:
        """Leading blocks of `model` that take no gradient now, embeddings included (0: none, or a model
        whose parameters are not the layout's, such as an adapter kind's wrapper)."""
        params = dict(model.named_parameters())
        if self.layout.n_blocks == 0 or set(params) != set(self.layout.names) or blocks_of(model, self.layout) is None:
            return 0
        depth = 0
        while depth < self.layout.n_blocks and not any(params[n].requires_grad for n in self.prefix_names(depth + 1)):
            depth += 1
        return depth if depth < self.layout.n_blocks else 0  # all frozen: nothing trains, nothing to save

    def holds_initial(self, model: torch.nn.Module, depth: int) -> bool:
        params = dict(model.named_parameters())
        return all(
            n in params and torch.equal(params[n].detach(), self.initial[n].detach().to(params[n].device))
            for n in self.prefix_names(depth)
        )

    # -- recording at step zero ---------------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self, model: torch.nn.Module, depths: set[int]) -> Iterator[None]:
        """Record block d-1's output for each d in `depths` during the passes run inside (step zero)."""
        blocks = blocks_of(model, self.layout)
        device = _device(model)
        wanted = sorted(d for d in depths if d > 0 and (device, d) not in self.recorded)
        if blocks is None or not wanted or not self.holds_initial(model, max(wanted)):
            yield
            return
        records = {d: Recorded(d) for d in wanted}
        handles = [model.register_forward_pre_hook(self._ids_hook(records), with_kwargs=True)]
        handles += [blocks[d - 1].register_forward_hook(self._output_hook(records, d)) for d in wanted]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        for d, record in records.items():
            if record.outputs and len(record.outputs) == len(record.ids):
                self.recorded[device, d] = record

    def _ids_hook(self, records: dict[int, Recorded]):
        def hook(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            for record in records.values():
                record.ids.append(ids.detach().clone())

        return hook

    def _output_hook(self, records: dict[int, Recorded], depth: int):
        def hook(module, args, output):
            record = records.get(depth)
            if record is None:
                return
            size = sum(t.numel() * t.element_size() for t in _tensors(output))
            if self.bytes + size > MAX_BYTES:  # too big to keep: this depth is not reused
                del records[depth]
                self.bytes -= sum(t.numel() * t.element_size() for o in record.outputs for t in _tensors(o))
                return
            self.bytes += size
            record.outputs.append(_clone(output))

        return hook

    # -- reuse at later validations -------------------------------------------------------------------
    def usable_depth(self, model: torch.nn.Module) -> int:
        """The deepest recorded depth whose prefix `model` still holds unchanged (0: none)."""
        if blocks_of(model, self.layout) is None or set(dict(model.named_parameters())) != set(self.layout.names):
            return 0
        device = _device(model)
        for depth in sorted((d for where, d in self.recorded if where == device), reverse=True):
            if self.holds_initial(model, depth):
                return depth
        return 0

    @contextlib.contextmanager
    def reusing(self, model: torch.nn.Module, depth: int) -> Iterator[list[torch.Tensor]]:
        """Blocks 0..depth-1 of `model` return the recorded output of each forward, in order; yields the
        list of per-forward mismatch flags (device bools: the input ids differ from the recorded ones)."""
        record = self.recorded[_device(model), depth]
        blocks = blocks_of(model, self.layout)
        assert blocks is not None
        mismatches: list[torch.Tensor] = []
        served = {"n": -1}

        def check_ids(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            served["n"] += 1
            n = served["n"]
            if n >= len(record.ids) or record.ids[n].shape != ids.shape or record.ids[n].device != ids.device:
                mismatches.append(torch.ones((), dtype=torch.bool))
                served["n"] = len(record.ids)  # past the end: every later forward mismatches too
            else:
                mismatches.append((record.ids[n] != ids).any())

        def first_block(*args, **kwargs):
            n = min(served["n"], len(record.outputs) - 1)
            return _clone(record.outputs[n])  # a block may change its input in place

        def passing(*args, **kwargs):
            return args[0] if args else kwargs["hidden_states"]

        skipped = list(blocks)[:depth]
        own = [block.__dict__.get("forward") for block in skipped]  # a forward set on the instance (hooks)
        handle = model.register_forward_pre_hook(check_ids, with_kwargs=True)
        blocks[0].forward = first_block
        for block in skipped[1:]:
            block.forward = passing  # the recorded output passes through the other skipped blocks
        try:
            yield mismatches
        finally:
            handle.remove()
            for block, forward in zip(skipped, own):
                if forward is None:
                    del block.forward
                else:
                    block.forward = forward


def any_mismatch(flags: list[torch.Tensor]) -> bool:
    """One read of a pass's mismatch flags."""
    return bool(flags) and bool(torch.stack([f.to(flags[0].device) for f in flags]).any().item())


def blocks_of(model: torch.nn.Module, layout: ModelLayout) -> torch.nn.ModuleList | None:
    """The model's ModuleList of blocks (``transformer.h``, ``model.layers`` …), found from the names of
    block 0's parameters; None where it cannot be found."""
    first = next((p.name for p in layout.params if p.block == 0), None)
    if first is None or ".0." not in first:
        return None
    try:
        blocks = model.get_submodule(first.split(".0.", 1)[0])
    except AttributeError:
        return None
    return blocks if isinstance(blocks, torch.nn.ModuleList) and len(blocks) == layout.n_blocks else None


def _device(model: torch.nn.Module) -> str:
    return str(next(model.parameters()).device)


def _tensors(output) -> list[torch.Tensor]:
    if torch.is_tensor(output):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []


def _clone(output):
    if torch.is_tensor(output):
        return output.detach().clone()
    if isinstance(output, tuple):
        return tuple(_clone(o) for o in output)
    if isinstance(output, list):
        return [_clone(o) for o in output]
    return output
