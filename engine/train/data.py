"""Training data: tokenize the corpus once, cut it into blocks, split, order batches (torch).

Reading the text files is `engine.textfiles` (torch-free).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import FreezeTuiError
from engine.textfiles import Corpus

if TYPE_CHECKING:
    import torch


def common_token_ids(token_ids, k: int) -> list[int]:
    """The k most frequent ids, most frequent first; ties broken by the smaller id (deterministic)."""
    counts = Counter(token_ids)
    return [tok for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


@dataclass
class TokenData:
    train: torch.Tensor  # long [n_train_blocks, block_size]
    val: torch.Tensor  # long [n_val_blocks, block_size]
    n_tokens: int
    n_unique: int
    common: list[int]

    def n_train_batches(self, batch_size: int) -> int:
        return len(self.train) // batch_size

    def n_val_batches(self, batch_size: int) -> int:
        return -(-len(self.val) // batch_size)


def tokenize_corpus(
    corpus: Corpus, tokenizer, *, block_size: int, batch_size: int, val_fraction: float, seed: int, common_k: int
) -> TokenData:
    """Tokenize once, cut into blocks, split train/validation with the seed; S from the training blocks."""
    import torch

    ids = _token_ids(corpus, tokenizer)
    n_blocks = len(ids) // block_size
    n_val = max(1, round(n_blocks * val_fraction)) if val_fraction > 0 and n_blocks > 1 else 0
    if n_blocks - n_val < batch_size:
        raise FreezeTuiError(
            f"the corpus has {len(ids)} tokens = {n_blocks - n_val} training blocks of {block_size}, "
            f"fewer than one batch of {batch_size}; add text or lower --batch-size/--block-size"
        )
    blocks = torch.tensor(ids[: n_blocks * block_size], dtype=torch.long).view(n_blocks, block_size)
    perm = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))
    val, train = blocks[perm[:n_val]], blocks[perm[n_val:]]
    return TokenData(train, val, len(ids), len(set(ids)), common_token_ids(train.flatten().tolist(), common_k))


def _token_ids(corpus: Corpus, tokenizer) -> list[int]:
    sep = tokenizer.eos_token_id
    ids: list[int] = []
    for doc in corpus.documents:
        ids.extend(tokenizer(doc, add_special_tokens=False, verbose=False)["input_ids"])
        if sep is not None:
            ids.append(sep)
    return ids


def batch_order(n_train: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Block indices of each batch of an epoch: a seeded shuffle, the same for every arm; the last
    incomplete batch is dropped so every step sees the same number of tokens."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_train, generator=gen).tolist()
    return [perm[i : i + batch_size] for i in range(0, n_train - batch_size + 1, batch_size)]
