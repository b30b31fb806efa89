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

from msgspec import UNSET

from engine.log import events as ev


def part_rows(n_blocks: int, batch_size: int, index: int, count: int) -> slice:
    """The blocks of part `index` of `count`: whole batches, the parts in order, their sizes within one
    batch of each other."""
    n_batches = -(-n_blocks // batch_size)
    first, extra = divmod(n_batches, count)
    start = index * first + min(index, extra)
    stop = start + first + (index < extra)
    return slice(min(n_blocks, start * batch_size), min(n_blocks, stop * batch_size))


def merge_parts(parts: Sequence[ev.ArmMeasures], n_val: int, n_retain: int, batch_size: int) -> ev.ArmMeasures:
    """The measures of the whole from those of its parts (in part order): per-batch values joined, each
    mean sum(value x batch blocks) / blocks as one pass over every batch gives it (nan without values);
    a measure no part took stays unset. n_val, n_retain: the validation and retain blocks of the whole."""
    val = _whole([p.val_batches for p in parts], n_val, batch_size)
    retain = _whole([p.retain_batches for p in parts], n_retain, batch_size)
    share = _whole([p.expected_s_batches for p in parts], n_val, batch_size)
    return ev.ArmMeasures(
        val_loss=val[0],
        val_batches=val[1],
        retain_loss=retain[0],
        retain_batches=retain[1],
        expected_s=share[0],
        expected_s_batches=share[1],
    )


def _whole(batches_of_parts: list, n_blocks: int, batch_size: int) -> tuple:
    """(mean, per-batch values) of one measure over every part, or (UNSET, UNSET) where no part took it."""
    if all(batches is UNSET for batches in batches_of_parts):
        return UNSET, UNSET
    values = [v for batches in batches_of_parts if batches is not UNSET for v in batches]
    sizes = [min(batch_size, n_blocks - i) for i in range(0, n_blocks, batch_size)]
    mean = sum(v * s for v, s in zip(values, sizes)) / n_blocks if values else math.nan
    return mean, values
