"""A validation pass split over replicas (engine.train.measure_parts): parts of whole batches, in order,
whose merged measures equal one pass over every block, bit for bit; a sampling phase split by prompts
draws the same ids (tiny random GPT-2, CPU)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from msgspec import UNSET

from engine.log import events as ev
from engine.train.generate import sample_batch
from engine.train.measure_parts import merge_parts, part_rows
from engine.train.retain import RetainSet, arm_measures
from tests.tiny_models import make_tiny_model


@pytest.mark.parametrize(("n_blocks", "batch_size", "count"), [(17, 4, 2), (17, 4, 3), (8, 4, 3), (3, 8, 2), (0, 4, 2)])
def test_parts_are_whole_batches_in_order_covering_every_block_once(n_blocks, batch_size, count):
    parts = [part_rows(n_blocks, batch_size, i, count) for i in range(count)]
    assert [r for p in parts for r in range(n_blocks)[p]] == list(range(n_blocks))
    assert all(p.start % batch_size == 0 for p in parts if p.stop > p.start)
    batches = [-(-(p.stop - p.start) // batch_size) for p in parts]
    assert max(batches) - min(batches) <= 1


def test_merged_parts_equal_one_pass_over_every_block(tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path, "gpt2", n_layer=2))
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    val, retain_blocks = torch.randint(vocab, (19, 16), generator=gen), torch.randint(vocab, (10, 16), generator=gen)
    retain = RetainSet(retain_blocks, retain_blocks.numel(), "test")
    kw = dict(common=torch.arange(5), batch_size=4, device=torch.device("cpu"), autocast_dtype=None, with_val=True)
    whole = arm_measures(model, retain=retain, val=val, **kw)
    for count in (2, 3):
        parts = [
            arm_measures(
                model,
                retain=dataclasses.replace(retain, blocks=retain_blocks[part_rows(10, 4, i, count)]),
                val=val[part_rows(19, 4, i, count)],
                **kw,
            )
            for i in range(count)
        ]
        assert merge_parts(parts, 19, 10, 4) == whole  # exactly: the same batches, the same sums
    assert math.isfinite(whole.val_loss) and len(whole.val_batches) == 5 and len(whole.retain_batches) == 3


def test_no_blocks_merge_to_nan_as_one_pass_gives():
    merged = merge_parts([ev.ArmMeasures(val_loss=math.nan, val_batches=[])] * 2, 0, 0, 4)
    assert math.isnan(merged.val_loss) and merged.val_batches == [] and merged.retain_loss is UNSET


def test_prompts_split_over_parts_draw_the_samples_of_one_batch(tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path, "gpt2", n_layer=2))
    prompts = [list(range(i, i + 6)) for i in range(5)]
    kw = dict(n=2, max_new=6, seed=3, device=torch.device("cpu"))
    whole = sample_batch(model, prompts, **kw)
    for count in (2, 3):
        parts = [part_rows(len(prompts), 1, i, count) for i in range(count)]
        split = [seqs for p in parts for seqs in sample_batch(model, prompts[p], first=p.start * 2, **kw)]
        assert split == whole
    assert sample_batch(model, prompts[1:], **kw) != whole[1:]  # without `first` the streams would differ
