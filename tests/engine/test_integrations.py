"""Your own loop: apply_spec on a user's model, the Recorder, and the HF Trainer callback (tiny, CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from engine.log.runlog import read_events
from engine.log.state import RunState
from freeze_tui import apply_spec
from freeze_tui.cli.main import cli
from freeze_tui.integrations import Recorder


@pytest.fixture
def tiny_gpt2(tiny):
    """A fresh model object per test (tests change requires_grad and train it) from the session's files."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny[0])


def kinds(events):
    return [e.kind for e in events]


@pytest.mark.parametrize("spec", ["targeted", "+attn.o[-1:],+mlp[0]", "full"])
def test_apply_spec_sets_requires_grad_as_the_plan_says(tiny_gpt2, spec):
    applied = apply_spec(tiny_gpt2, spec)
    trainable = {n for n, p in tiny_gpt2.named_parameters() if p.requires_grad}
    assert trainable == set(applied.plan.trainable_at(0, 0))
    assert applied.n_trainable == sum(p.numel() for p in tiny_gpt2.parameters() if p.requires_grad)
    assert applied.n_total == sum(p.numel() for p in tiny_gpt2.parameters())
    assert 0 < applied.flop_ratio <= 1 and applied.r_pred == pytest.approx(1 - applied.flop_ratio, abs=1e-4)


def test_apply_spec_lora_injects_adapters_in_place(tiny_gpt2):
    ids = torch.tensor([[3, 4, 5, 6]])
    before = tiny_gpt2(input_ids=ids).logits
    applied = apply_spec(tiny_gpt2, "lora:4:attn.qkv[2:]")
    trainable = {n for n, p in tiny_gpt2.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable) and trainable == applied.plan.trainable_at(0, 0)
    assert applied.n_trainable == sum(p.numel() for p in tiny_gpt2.parameters() if p.requires_grad) == 2 * 4 * 128
    assert torch.equal(tiny_gpt2(input_ids=ids).logits, before)  # B = 0


@pytest.mark.parametrize("spec", ["targeted", "lora:4:attn.qkv[2:]", "dora:4:attn.qkv[2:]"])
def test_recorder_in_a_plain_loop_writes_a_log_report_reads(tiny_gpt2, tmp_path, spec):
    applied = apply_spec(tiny_gpt2, spec, arm="targeted")
    optimizer = torch.optim.AdamW([p for p in tiny_gpt2.parameters() if p.requires_grad], lr=1e-2)
    log = tmp_path / "loop.jsonl"
    batch = torch.randint(2, 200, (2, 12))
    with Recorder(log, arm="targeted", model=tiny_gpt2, plan=applied, config={"epochs": 2}) as rec:
        for epoch in range(2):
            for _ in range(3):
                loss = tiny_gpt2(input_ids=batch, labels=batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                rec.step(loss, lr=1e-2, epoch=epoch)
    events = list(read_events(log))
    assert kinds(events)[:2] == ["header", "run_start"] and events[-1].kind == "run_end"
    assert [e.step for e in events if e.kind == "step"] == list(range(6))
    assert [e.epoch for e in events if e.kind == "epoch_end"] == [0, 1]
    dws = [e for e in events if e.kind == "dw"]
    assert len(dws) == 6
    for dw in dws:
        norms = dw.norms_of("targeted")
        assert all(norms[f"h.{b}.attn.{m}"] == 0.0 for b in (0, 1) for m in "qkvo")
        assert all(norms[f"h.{b}.attn.{m}"] > 0 for b in (2, 3) for m in "qkv")
    state = RunState().apply_all(events)
    assert state.status == "finished" and state.arms["targeted"].trainable == applied.n_trainable


def test_recorder_off_the_main_process_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    rec = Recorder(tmp_path / "rank1.jsonl")
    rec.step(1.0, 0.1)
    rec.end()
    assert not rec.active and not (tmp_path / "rank1.jsonl").exists()


class _Blocks(torch.utils.data.Dataset):
    def __init__(self, n=16, length=12):
        g = torch.Generator().manual_seed(0)
        self.data = torch.randint(2, 200, (n, length), generator=g)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"input_ids": self.data[i], "labels": self.data[i]}


def test_trainer_with_callback_writes_a_log_that_report_reads(tiny_gpt2, tmp_path):
    from transformers import Trainer, TrainingArguments

    from freeze_tui.integrations.hf import FreezeTuiCallback

    applied = apply_spec(tiny_gpt2, "targeted", arm="targeted")
    log = tmp_path / "trainer.jsonl"
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    callback = FreezeTuiCallback(log=log, plan=applied)
    Trainer(model=tiny_gpt2, args=args, train_dataset=_Blocks(), callbacks=[callback]).train()
    events = list(read_events(log))
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(8)) and [e.epoch for e in steps] == [0] * 4 + [1] * 4
    assert all(0 < e.arms["targeted"].loss < 20 and e.arms["targeted"].lr > 0 for e in steps)
    assert [e.epoch for e in events if e.kind == "epoch_end"] == [0, 1]
    start = next(e for e in events if e.kind == "run_start")
    assert start.arms[0].spec == "targeted" and start.arms[0].trainable == applied.n_trainable
    assert start.config["source"] == "transformers.Trainer" and start.model["n_blocks"] == 4
    dw = next(e for e in events if e.kind == "dw").norms_of("targeted")
    assert dw["h.0.attn.q"] == 0.0 and dw["h.3.attn.q"] > 0
    assert events[-1].kind == "run_end" and events[-1].status == "finished"
    result = CliRunner().invoke(cli, ["report", str(log)])
    assert result.exit_code == 0, result.output
    assert "targeted" in result.output and "did not finish" not in result.output
    assert json.loads(log.read_text().splitlines()[0])["kind"] == "header"


def _trainer_args(tmp_path, **extra):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **extra,
    )


def test_trainer_callback_logs_the_batches_and_epochs_that_run(tiny_gpt2, tmp_path):
    """16 blocks of 4 with 2 accumulations: 2 optimizer steps per epoch; max_steps 3 runs 2 epochs, not 3."""
    from transformers import Trainer

    from freeze_tui.integrations.hf import FreezeTuiCallback

    log = tmp_path / "steps.jsonl"
    args = _trainer_args(tmp_path, num_train_epochs=3, max_steps=3, gradient_accumulation_steps=2)
    Trainer(model=tiny_gpt2, args=args, train_dataset=_Blocks(), callbacks=[FreezeTuiCallback(log=log)]).train()
    events = list(read_events(log))
    start = next(e for e in events if e.kind == "run_start")
    assert start.data["n_train_batches"] == 2
    assert start.config["epochs"] == 2
    assert len([e for e in events if e.kind == "step"]) == 3


def test_trainer_callback_samples_with_a_tokenizer_argument_and_says_when_it_cannot(tiny_gpt2, tmp_path):
    from transformers import Trainer

    from freeze_tui.integrations.hf import FreezeTuiCallback
    from tests.tiny_models import make_tokenizer

    args = _trainer_args(tmp_path, max_steps=1)
    without = tmp_path / "without.jsonl"
    callback = FreezeTuiCallback(log=without, sample_prompt="the whale", sample_tokens=4)
    with pytest.warns(UserWarning, match="no tokenizer"):
        Trainer(model=tiny_gpt2, args=args, train_dataset=_Blocks(), callbacks=[callback]).train()
    events = list(read_events(without))
    assert not [e for e in events if e.kind == "sample"]
    assert [e for e in events if e.kind == "warning" and "tokenizer=" in e.message]
    with_tok = tmp_path / "with.jsonl"
    callback = FreezeTuiCallback(log=with_tok, sample_prompt="the whale", sample_tokens=4, tokenizer=make_tokenizer())
    Trainer(model=tiny_gpt2, args=args, train_dataset=_Blocks(), callbacks=[callback]).train()
    assert {e.phase for e in read_events(with_tok) if e.kind == "sample"} == {"pre", "post"}
