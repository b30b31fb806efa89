"""Training data: the corpus as a memory-mapped token file (engine.train.tokens), cut into blocks,
split, batches ordered (torch).

Reading the text files is `engine.core.textfiles` (torch-free). Training blocks stay in the token file
and are read per batch; the validation blocks (a small share) are held as one tensor.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.core.errors import FreezeTuiError
from engine.core.textfiles import Corpus
from engine.train.tokens import COUNT_CHUNK, Progress, corpus_tokens, count_ids, token_counts

if TYPE_CHECKING:
    import torch


def common_token_ids(token_ids, k: int) -> list[int]:
    """The k most frequent ids, most frequent first; ties broken by the smaller id (deterministic)."""
    counts = Counter(token_ids)
    return [tok for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def top_ids(counts: np.ndarray, k: int) -> list[int]:
    """common_token_ids from a count per id (ids with count 0 never appear)."""
    ids = np.flatnonzero(counts)
    order = np.lexsort((ids, -counts[ids]))  # by count descending, then id ascending
    return ids[order[:k]].tolist()


class Blocks:
    """Blocks of `block_size` tokens of a token array, in the order `rows`; `blocks[indices]` reads
    those blocks as a LongTensor [len(indices), block_size]."""

    def __init__(self, tokens: np.ndarray, block_size: int, rows: np.ndarray) -> None:
        self._grid = tokens[: (len(tokens) // block_size) * block_size].reshape(-1, block_size)
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, indices):
        import torch

        return torch.from_numpy(self._grid[self._rows[indices]].astype(np.int64))

    def counts(self, size: int) -> np.ndarray:
        """How often each id 0..size-1 occurs in these blocks (in bounded pieces)."""
        out = np.zeros(size, dtype=np.int64)
        step = max(1, COUNT_CHUNK // max(1, self._grid.shape[1]))
        for start in range(0, len(self._rows), step):
            rows = np.sort(self._rows[start : start + step])  # sorted: the memory map is read forwards
            out += np.bincount(self._grid[rows].ravel(), minlength=size)[:size]
        return out


@dataclass
class TokenData:
    train: Blocks
    val: torch.Tensor  # long [n_val_blocks, block_size]
    n_tokens: int
    n_unique: int
    common: list[int]

    def n_train_batches(self, batch_size: int) -> int:
        return len(self.train) // batch_size

    def n_val_batches(self, batch_size: int) -> int:
        return -(-len(self.val) // batch_size)


def tokenize_corpus(
    corpus: Corpus,
    tokenizer,
    *,
    block_size: int,
    batch_size: int,
    val_fraction: float,
    seed: int,
    common_k: int,
    progress: Progress | None = None,
) -> TokenData:
    """Tokenize once (or find the cached token file), cut into blocks, split train/validation with the
    seed; S from the training blocks."""
    import torch

    ids = corpus_tokens(corpus, tokenizer, progress)
    n_blocks = len(ids) // block_size
    n_val = max(1, round(n_blocks * val_fraction)) if val_fraction > 0 and n_blocks > 1 else 0
    if n_blocks - n_val < batch_size:
        raise FreezeTuiError(
            f"the corpus has {len(ids)} tokens = {n_blocks - n_val} training blocks of {block_size}, "
            f"fewer than one batch of {batch_size}; add text or lower --batch-size/--block-size"
        )
    perm = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed)).numpy()
    train, val = Blocks(ids, block_size, perm[n_val:]), Blocks(ids, block_size, perm[:n_val])
    total = token_counts(ids)
    # the training blocks' counts: everything but the validation blocks and the tail after the last block
    train_counts = total - val.counts(len(total)) - count_ids(ids[n_blocks * block_size :], len(total))
    n_unique = int(np.count_nonzero(total))
    return TokenData(train, val[np.arange(n_val)], len(ids), n_unique, top_ids(train_counts, common_k))


def common_base_rate(blocks, common) -> float:
    """The share of tokens of `blocks` that are in S: the p a model that reproduces the text scores.
    Counted in numpy (a Python list of every validation id was ~40 bytes a token on a large corpus)."""
    ids = np.asarray(blocks).reshape(-1)
    if not len(ids):
        return float("nan")
    return float(np.isin(ids, np.fromiter(common, dtype=np.int64)).mean())


def batch_order(n_train: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Block indices of each batch of an epoch: a seeded shuffle, the same for every arm; the last
    incomplete batch is dropped so every step sees the same number of tokens."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_train, generator=gen).tolist()
    return [perm[i : i + batch_size] for i in range(0, n_train - batch_size + 1, batch_size)]


def spread_rows(n: int, at_most: int) -> np.ndarray:
    """Indices of at most `at_most` of n rows, spread evenly from the first to the last (all n when
    at_most >= n): the measured subset of the validation or retain blocks."""
    return np.unique(np.linspace(0, n - 1, min(n, at_most)).round().astype(np.int64))


def measured_validation(data: TokenData, at_most: int) -> TokenData:
    """`data` with its validation blocks cut to at most `at_most` spread evenly (--val-blocks; 0: all).
    Training blocks, S and the prompts (taken before) are those of the whole split."""
    if not at_most or len(data.val) <= at_most:
        return data
    return dataclasses.replace(data, val=data.val[spread_rows(len(data.val), at_most)])
