"""Batched on-device sampling (issue 22): every prompt x seed of an arm in one generation, with each
sample's own reproducible stream, giving what one prompt at a time gives."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.train.generate import TOP_K, draw, gumbel_noise, sample_batch, sample_tokens

CPU = torch.device("cpu")


def model_of(tiny):
    return AutoModelForCausalLM.from_pretrained(tiny[0])


def test_one_batch_equals_one_prompt_at_a_time(tiny):
    model = model_of(tiny)
    prompts = [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
    batched = sample_batch(model, prompts, n=3, max_new=6, seed=4, device=CPU)
    for j, prompt in enumerate(prompts):
        # prompt j's samples draw from the streams of indices j*n .. j*n+n-1, whatever else is in the batch
        rows = gumbel_noise(9, 6, 4)[j * 3 : j * 3 + 3]
        by_hand = _by_hand(model, prompt, rows)
        assert batched[j] == by_hand


def test_left_padding_changes_nothing(tiny):
    """A short prompt beside a long one: padded on the left and masked, it samples what it samples alone."""
    model = model_of(tiny)
    short, long = [5, 6], [9, 10, 11, 12, 13, 14]
    mixed = sample_batch(model, [long, short], n=2, max_new=5, seed=1, device=CPU)
    assert mixed[1] == _by_hand(model, short, gumbel_noise(4, 5, 1)[2:4])
    assert mixed[0] == _by_hand(model, long, gumbel_noise(4, 5, 1)[0:2])


def test_same_seed_same_samples_and_training_mode_kept(tiny):
    model = model_of(tiny)
    model.train()
    a = sample_tokens(model, [5, 6, 7], n=4, max_new=8, seed=2, device=CPU)
    b = sample_tokens(model, [5, 6, 7], n=4, max_new=8, seed=2, device=CPU)
    c = sample_tokens(model, [5, 6, 7], n=4, max_new=8, seed=3, device=CPU)
    assert a == b != c and model.training
    assert len({tuple(s) for s in a}) > 1  # the samples of one prompt differ from each other


def test_gumbel_draw_follows_the_softmax():
    """Gumbel-max over the top k is a draw from their softmax: frequencies match the probabilities."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0] + [-30.0] * 60])
    n = 20000
    noise = gumbel_noise(n, 1, 0)[:, 0, :]
    picks = draw(logits.expand(n, -1), noise)
    freq = torch.bincount(picks, minlength=4)[:4].float() / n
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0, -1.0]), -1)
    assert torch.allclose(freq, expected, atol=0.015), (freq, expected)
    assert noise.shape == (n, TOP_K)


def _by_hand(model, prompt: list[int], noise: torch.Tensor) -> list[list[int]]:
    """Each row alone, no cache, no batch: the full sequence re-run every token."""
    out = []
    with torch.no_grad():
        for row in noise:
            seq = list(prompt)
            for t in range(len(row)):
                logits = model(input_ids=torch.tensor([seq])).logits[:, -1, :]
                seq.append(int(draw(logits, row[t : t + 1])[0]))
            out.append(seq[len(prompt) :])
    return out


def test_one_validation_pass_gives_both_measures(tiny):
    """Validation loss and expected share of S from one forward pass equal the two separate passes."""
    from engine.train.arm import validation_loss
    from engine.train.retain import expected_share, loss_and_share

    model = model_of(tiny)
    blocks = torch.randint(0, 240, (7, 16), generator=torch.Generator().manual_seed(0))
    common = torch.tensor([2, 3, 4, 5])
    loss, losses, share, shares = loss_and_share(model, blocks, 3, CPU, None, common)
    loss2, losses2 = validation_loss(model, blocks, 3, CPU, None)
    share2, shares2 = expected_share(model, blocks, 3, CPU, None, common)
    assert loss == pytest.approx(loss2, abs=1e-6) and losses == pytest.approx(losses2, abs=1e-6)
    assert share == share2 and shares == shares2 and len(losses) == 3
