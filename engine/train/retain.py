"""What the model forgets, and a sampler-free common-token measure (torch).

* The retain set: a fixed set of blocks of text from the model's original domain (`--retain-data`,
  or the demo's held-out docstrings). Every arm is measured on the same blocks in the same batches,
  so retain losses pair by batch; forgetting = retain loss now - retain loss at step 0.
* Expected share of S: the probability mass the model puts on S's tokens at the validation positions
  (every next-token position of the validation blocks). Unlike p it needs no sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from msgspec import UNSET, UnsetType

from engine.core.errors import FreezeTuiError
from engine.core.textfiles import Corpus, check_retain_data, read_corpus
from engine.log import events as ev
from engine.run.config import RunConfig
from engine.train.arm import validation_loss
from engine.train.data import spread_rows
from engine.train.devices import copy_to
from engine.train.tokens import corpus_tokens

MAX_RETAIN_BLOCKS = 64  # spread evenly over the retain text: enough batches for a paired interval, cheap to run


@dataclass
class RetainSet:
    blocks: torch.Tensor  # long [n_blocks, block_size], the same for every arm and every measurement
    n_tokens: int  # tokens measured (n_blocks * block_size)
    source: str

    def record(self, batch_size: int) -> ev.RetainRecord:
        """run_start.data.retain."""
        n = len(self.blocks)
        return ev.RetainRecord(n_tokens=self.n_tokens, n_blocks=n, n_batches=-(-n // batch_size), source=self.source)


def load_retain_set(cfg: RunConfig, tokenizer) -> RetainSet | None:
    """--retain-data, or the demo's held-out docstrings when the model is the demo; None otherwise."""
    if cfg.retain_data:
        check_retain_data(cfg.retain_data)
        corpus = read_corpus(cfg.retain_data)
    elif cfg.model is None:
        from engine.demo.corpus import retain_source, retain_text

        corpus = Corpus((retain_text(),), retain_source())
    else:
        return None
    ids = corpus_tokens(corpus, tokenizer)
    n = len(ids) // cfg.block_size
    if n == 0:
        raise FreezeTuiError(
            f"the retain data has {len(ids)} tokens, fewer than one block of {cfg.block_size}; "
            "add text to --retain-data or lower --block-size"
        )
    rows = spread_rows(n, MAX_RETAIN_BLOCKS)
    if cfg.val_blocks:  # --val-blocks: a spread subset of those, as of the validation blocks
        rows = rows[spread_rows(len(rows), cfg.val_blocks)]
    grid = np.asarray(ids[: n * cfg.block_size]).reshape(n, cfg.block_size)[rows]
    return RetainSet(torch.from_numpy(grid.astype(np.int64)), len(rows) * cfg.block_size, corpus.source)


@torch.no_grad()
def expected_share(
    model: torch.nn.Module, blocks: torch.Tensor, batch_size: int, device, autocast_dtype, common: torch.Tensor
) -> tuple[float, list[float]]:
    """Mean over the next-token positions of the blocks of P(next token in S), and the mean of each
    batch (pairs across arms and phases); (nan, []) without blocks or S."""
    if len(blocks) == 0 or len(common) == 0 or blocks.shape[1] < 2:
        return math.nan, []
    share, shares, _, _ = _one_pass(model, blocks, batch_size, device, autocast_dtype, common, with_loss=False)
    return share, shares


@torch.no_grad()
def loss_and_share(
    model: torch.nn.Module, blocks: torch.Tensor, batch_size: int, device, autocast_dtype, common: torch.Tensor
) -> tuple[float, list[float], float, list[float]]:
    """validation_loss and expected_share of the same blocks from one forward pass per batch (issue 22:
    validation is off the training's critical path, so it runs the model once, not twice):
    (loss, loss per batch, share, share per batch)."""
    if len(blocks) == 0 or len(common) == 0 or blocks.shape[1] < 2:
        return (
            *validation_loss(model, blocks, batch_size, device, autocast_dtype),
            *expected_share(model, blocks, batch_size, device, autocast_dtype, common),
        )
    share, shares, loss, losses = _one_pass(model, blocks, batch_size, device, autocast_dtype, common, with_loss=True)
    return loss, losses, share, shares


def _one_pass(model, blocks, batch_size, device, autocast_dtype, common, *, with_loss: bool):
    was_training = model.training
    model.eval()
    means, losses = [], []
    for i in range(0, len(blocks), batch_size):
        batch = copy_to(blocks[i : i + batch_size], [device])[device]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
        everything = torch.logsumexp(logits, -1)  # one pass over the vocabulary serves both measures
        if with_loss:  # the causal LM loss: next-token cross entropy (-log softmax), mean over positions
            target = logits.gather(-1, batch[:, 1:].unsqueeze(-1)).squeeze(-1)
            losses.append((everything - target).mean())
        # P(S) = exp(logsumexp over S - logsumexp over the vocabulary): no softmax over the vocabulary kept
        mass = torch.exp(torch.logsumexp(logits[..., common.to(logits.device)], -1) - everything)
        means.append(mass.mean())
    model.train(was_training)
    sizes = [len(blocks[i : i + batch_size]) for i in range(0, len(blocks), batch_size)]
    values = torch.stack(means + losses).tolist()  # one read per pass
    shares, loss_values = values[: len(means)], values[len(means) :]
    share = sum(v * n for v, n in zip(shares, sizes)) / len(blocks)
    loss = sum(v * n for v, n in zip(loss_values, sizes)) / len(blocks) if with_loss else math.nan
    return share, shares, loss, loss_values


def arm_measures(
    model: torch.nn.Module,
    *,
    retain: RetainSet | None,
    val: torch.Tensor,
    common: torch.Tensor,
    batch_size: int,
    device,
    autocast_dtype,
    with_val: bool = False,
) -> ev.ArmMeasures:
    """One arm's retain loss (mean, per batch) and expected share of S (mean, per batch), as step_zero
    records them and epoch_end takes them over (ev.epoch_record); with_val: the validation loss too
    (step 0: target gain). retain_* stay unset without a retain set, val_* without with_val."""
    val_loss: float | UnsetType = UNSET
    val_batches: list[float] | UnsetType = UNSET
    if with_val:
        val_loss, val_batches, share, shares = loss_and_share(model, val, batch_size, device, autocast_dtype, common)
    else:
        share, shares = expected_share(model, val, batch_size, device, autocast_dtype, common)
    retain_loss: float | UnsetType = UNSET
    retain_batches: list[float] | UnsetType = UNSET
    if retain is not None:
        retain_loss, retain_batches = validation_loss(model, retain.blocks, batch_size, device, autocast_dtype)
    return ev.ArmMeasures(
        val_loss=val_loss,
        val_batches=val_batches,
        retain_loss=retain_loss,
        retain_batches=retain_batches,
        expected_s=share,
        expected_s_batches=shares,
    )
