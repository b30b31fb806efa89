"""One validation pass split over the replicas of an arm, with the numbers one process logs (torch-free).

Every replica of an arm holds the same weights, so each can measure a part of the validation and
retain blocks and the parts together give the whole: replica r of R takes the r-th run of whole
batches (the same batches, so each batch's value is bit for bit the one a single process computes),
the per-batch values are gathered in replica order, and each mean is recomputed from them exactly as
`engine.train.retain` and `engine.train.arm.validation_loss` compute it (issue 22: with --replicas R
each replica ran the whole validation; now 1/R of it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# each mean and its per-batch values, and which blocks it is measured on
PER_BATCH = {"val_loss": "val_batches", "retain_loss": "retain_batches", "expected_s": "expected_s_batches"}
BLOCKS_OF = {"val_loss": "val", "retain_loss": "retain", "expected_s": "val"}


def part_rows(n_blocks: int, batch_size: int, index: int, count: int) -> slice:
    """The blocks of part `index` of `count`: whole batches, the parts in order, their sizes within one
    batch of each other."""
    n_batches = -(-n_blocks // batch_size)
    first, extra = divmod(n_batches, count)
    start = index * first + min(index, extra)
    stop = start + first + (index < extra)
    return slice(min(n_blocks, start * batch_size), min(n_blocks, stop * batch_size))


def merge_parts(parts: Sequence[dict], n_blocks: dict[str, int], batch_size: int) -> dict:
    """The measures of the whole from those of its parts (in part order): per-batch values joined, each
    mean sum(value x batch blocks) / blocks as one pass over every batch gives it (nan without values).
    n_blocks: the blocks of "val" and "retain"."""
    out: dict = {}
    for mean, batches in PER_BATCH.items():
        if not any(mean in part for part in parts):
            continue
        values = [v for part in parts for v in part.get(batches, [])]
        n = n_blocks[BLOCKS_OF[mean]]
        sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
        out[mean] = sum(v * s for v, s in zip(values, sizes)) / n if values else math.nan
        out[batches] = values
    return out
