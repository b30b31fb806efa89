"""Sampling text from an arm, with per-sample seeds shared by all arms (torch).

Arms then differ only by their weights: sample i of every arm draws from the same random stream.
"""

from __future__ import annotations

import torch

TOP_K = 40
SAMPLER = f"top-{TOP_K} sampling, temperature 1"  # written into run_start.data: p depends on it


@torch.no_grad()
def sample_tokens(
    model, prompt_ids: list[int], *, n: int, max_new: int, seed: int, device: torch.device, eos_id: int | None = None
) -> list[list[int]]:
    """n continuations of prompt_ids (top-k sampling, KV cache), as generated token ids."""
    was_training = model.training
    model.eval()
    try:
        gens = [torch.Generator().manual_seed(seed * 7919 + i) for i in range(n)]
        ids = torch.tensor([prompt_ids] * n, dtype=torch.long, device=device)
        out: list[list[int]] = [[] for _ in range(n)]
        cache_arg, past = "", None
        for _ in range(max_new):
            result = model(input_ids=ids, use_cache=True, **({cache_arg: past} if past is not None else {}))
            cache_arg = cache_arg or _cache_name(result)
            past = result[cache_arg]
            logits = result.logits[:, -1, :].float().cpu()
            nxt = [_draw(logits[i], gens[i]) for i in range(n)]
            for i, tok in enumerate(nxt):
                out[i].append(tok)
            ids = torch.tensor(nxt, dtype=torch.long, device=device).unsqueeze(1)
        return [_cut_at_eos(seq, eos_id) for seq in out]
    finally:
        model.train(was_training)


def _cache_name(result) -> str:
    """transformers 5 renamed `past_key_values` to `cache`, in the output as in forward's arguments: the
    first output names it, whatever wraps the model (an adapter kind's forward takes **kwargs)."""
    return "cache" if "cache" in result else "past_key_values"


def _draw(logits: torch.Tensor, gen: torch.Generator) -> int:
    k = min(TOP_K, logits.numel())
    top, idx = torch.topk(logits, k)
    probs = torch.softmax(top, dim=-1)
    return int(idx[torch.multinomial(probs, 1, generator=gen)].item())


def _cut_at_eos(seq: list[int], eos_id: int | None) -> list[int]:
    if eos_id is not None and eos_id in seq:
        cut = seq.index(eos_id)
        return seq[:cut] if cut > 0 else seq[:1]
    return seq
