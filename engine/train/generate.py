"""Sampling text from an arm, with per-sample seeds shared by all arms (torch).

Arms then differ only by their weights: sample i of every arm draws from the same random stream.
Every prompt x seed of an arm is one batched, KV-cached generation on the arm's device (prompts left
padded, with an attention mask and positions that skip the padding). The draw is Gumbel-max over the
top k logits: each sample's noise for every token comes up front from its own CPU generator seeded
from (seed, sample index) and reaches the device in one copy, so the loop never waits on the host
(no read per token) and the same sample draws the same noise on any device and in every arm.
"""

from __future__ import annotations

import torch

TOP_K = 40
SAMPLER = f"top-{TOP_K} sampling, temperature 1"  # written into run_start.data: p depends on it
SEED_STRIDE = 7919  # sample i of a run with --seed s draws from the stream seeded s * 7919 + i


def sample_batch(
    model,
    prompts: list[list[int]],
    *,
    n: int,
    max_new: int,
    seed: int,
    device: torch.device,
    eos_id: int | None = None,
    first: int = 0,
) -> list[list[list[int]]]:
    """n continuations of each prompt (top-k sampling, KV cache), as generated token ids:
    out[j][i] is prompt j's sample i, which draws from the stream of sample index first + j * n + i
    (first: where these prompts' samples start among the run's, when a replica samples a part)."""
    if not prompts or n <= 0:
        return [[] for _ in prompts]
    with _without_autograd(model):
        return _sample_rows(model, prompts, n, max_new, seed, device, eos_id, first)


def _without_autograd(model):
    """inference_mode (no autograd bookkeeping at all: 8-13 % of a sampling phase on CPU), except for a
    model sharded by FSDP2: its unsharded buffers, made under inference_mode, could not be written in
    training again ("Inplace update to inference tensor outside InferenceMode")."""
    sharded = any(hasattr(p, "placements") for p in model.parameters())
    return torch.no_grad() if sharded else torch.inference_mode()


def _sample_rows(model, prompts, n, max_new, seed, device, eos_id, first) -> list[list[list[int]]]:
    rows = [ids for ids in prompts for _ in range(n)]
    ids, mask = left_padded(rows, device)
    noise = gumbel_noise(len(rows), max_new, seed, first).to(device, non_blocking=True)
    was_training = model.training
    model.eval()
    try:
        drawn = _generate(model, ids, mask, noise, max_new, padded=len({len(r) for r in rows}) > 1)
    finally:
        model.train(was_training)
    seqs = drawn.tolist()  # the one read of the whole generation
    flat = [cut_at_eos(seq, eos_id) for seq in seqs]
    return [flat[j * n : (j + 1) * n] for j in range(len(prompts))]


def sample_tokens(
    model, prompt_ids: list[int], *, n: int, max_new: int, seed: int, device: torch.device, eos_id: int | None = None
) -> list[list[int]]:
    """n continuations of one prompt (sample_batch with a single prompt)."""
    return sample_batch(model, [prompt_ids], n=n, max_new=max_new, seed=seed, device=device, eos_id=eos_id)[0]


def left_padded(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the left to one length (pad id 0, masked out) and their attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids.to(device), mask.to(device)


def gumbel_noise(rows: int, max_new: int, seed: int, first: int = 0) -> torch.Tensor:
    """Gumbel(0, 1) noise [rows, max_new, TOP_K]; row i from its own generator (seed * 7919 + first + i)."""
    out = torch.empty(rows, max_new, TOP_K)
    for i in range(rows):
        gen = torch.Generator().manual_seed(seed * SEED_STRIDE + first + i)
        uniform = torch.rand(max_new, TOP_K, generator=gen).clamp_(min=1e-20, max=1.0 - 1e-7)
        out[i] = -torch.log(-torch.log(uniform))
    return out


def _generate(
    model, ids: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, max_new: int, *, padded: bool
) -> torch.Tensor:
    # positions skip the padding; without padding (prompts of one length) the model's own count is the
    # same, and a model whose forward takes no position_ids still samples
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = []
    cache_arg, past = "", None
    for t in range(max_new):
        result = model(
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **({"position_ids": positions} if padded else {}),
            **({cache_arg: past} if past is not None else {}),
        )
        cache_arg = cache_arg or _cache_name(result)
        past = result[cache_arg]
        nxt = draw(result.logits[:, -1, :], noise[:, t, :])
        out.append(nxt)
        ids = nxt.unsqueeze(1)
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        positions = positions[:, -1:] + 1
    return torch.stack(out, dim=1)


def draw(logits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One token per row: Gumbel-max over the top k logits (a draw from their softmax at temperature 1),
    on the logits' device."""
    k = min(TOP_K, logits.shape[-1])
    top, idx = torch.topk(logits.float(), k, dim=-1)
    pick = (top + noise[:, :k]).argmax(dim=-1, keepdim=True)
    return idx.gather(-1, pick).squeeze(-1)


def _cache_name(result) -> str:
    """transformers 5 renamed `past_key_values` to `cache`, in the output as in forward's arguments: the
    first output names it, whatever wraps the model (an adapter kind's forward takes **kwargs)."""
    return "cache" if "cache" in result else "past_key_values"


def cut_at_eos(seq: list[int], eos_id: int | None) -> list[int]:
    if eos_id is not None and eos_id in seq:
        cut = seq.index(eos_id)
        return seq[:cut] if cut > 0 else seq[:1]
    return seq
