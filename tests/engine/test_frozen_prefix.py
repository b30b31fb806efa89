"""Validation that starts above the lower blocks an arm never trains (engine.train.frozen_prefix, issue 22):
the same numbers, bit for bit, as the whole forward; any change below the cut runs the whole forward."""

from __future__ import annotations

import copy

import msgspec
import pytest
import torch

from engine.train.frozen_prefix import FrozenPrefix, any_mismatch, blocks_of
from engine.train.models import load_model
from engine.train.retain import RetainSet, arm_measures
from tests.tiny_models import make_tiny_model

CPU = torch.device("cpu")
VAL = torch.randint(0, 240, (7, 16), generator=torch.Generator().manual_seed(0))
RETAIN = RetainSet(torch.randint(0, 240, (5, 16), generator=torch.Generator().manual_seed(1)), 80, "test")
COMMON = torch.tensor([2, 3, 4, 5])


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def loaded(request, tmp_path_factory):
    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("prefix"), request.param, n_layer=4)))


def measures(model) -> dict:
    return arm_measures(
        model, retain=RETAIN, val=VAL, common=COMMON, batch_size=3, device=CPU, autocast_dtype=None, with_val=True
    )


def arm_with_lower_blocks_frozen(loaded, depth: int):
    """A copy of the model training only blocks depth.. (and the head); the lower ones as at step zero."""
    model = copy.deepcopy(loaded.model)
    layout = loaded.layout
    for p in layout.params:
        trained = (p.block is not None and p.block >= depth) or (p.block is None and p.roles <= {"final_norm"})
        model.get_parameter(p.name).requires_grad_(trained)
    return model


def train_upper_blocks(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)


def count_calls(module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_reused_prefix_gives_the_whole_forwards_numbers(loaded):
    prefix = FrozenPrefix(loaded.layout, loaded.model)
    arm = arm_with_lower_blocks_frozen(loaded, 2)
    assert prefix.frozen_depth(arm) == 2 and prefix.frozen_depth(loaded.model) == 0
    with prefix.recording(arm, {2}):
        at_zero = measures(arm)
    assert at_zero == measures(loaded.model)  # recording changes nothing
    train_upper_blocks(arm)
    whole = measures(arm)
    assert whole != at_zero  # the upper blocks did move
    inner = next(iter(blocks_of(arm, loaded.layout)[0].children()))  # a module inside block 0
    calls = count_calls(inner)
    assert prefix.usable_depth(arm) == 2
    with prefix.reusing(arm, 2) as mismatches:
        reused = measures(arm)
    assert reused == whole and not any_mismatch(mismatches)
    assert calls[0] == 0  # block 0 was skipped, not run
    assert measures(arm) == whole and calls[0] > 0  # and runs again outside the reuse


def test_a_changed_lower_block_or_other_batches_run_the_whole_forward(loaded):
    prefix = FrozenPrefix(loaded.layout, loaded.model)
    arm = arm_with_lower_blocks_frozen(loaded, 2)
    with prefix.recording(arm, {2}):
        measures(arm)
    with torch.no_grad():  # gradual unfreezing moved block 1
        next(blocks_of(arm, loaded.layout)[1].parameters()).add_(0.01)
    assert prefix.usable_depth(arm) == 0
    other = arm_with_lower_blocks_frozen(loaded, 2)
    with prefix.reusing(other, 2) as mismatches:  # batches in another order than at step zero
        arm_measures(other, retain=None, val=VAL.flip(0), common=COMMON, batch_size=3, device=CPU, autocast_dtype=None)
    assert any_mismatch(mismatches)


def test_a_run_logs_the_same_validations_with_and_without_reuse(tiny, tmp_path, monkeypatch):
    """Through the engine: a targeted arm's epoch-end validations reuse the step-zero record, and every
    number of step_zero and epoch_end is what the whole forward gives."""
    from engine.log.runlog import read_events
    from engine.run.config import RunConfig
    from engine.train.session import RunSession

    model, corpus = tiny

    def run(name: str) -> list:
        cfg = RunConfig(
            model=str(model), data=(str(corpus),), epochs=2, batch_size=16, block_size=16, lr=3e-2, samples=0,
            arms=(("full", "full"), ("targeted", "targeted")), log=str(tmp_path / f"{name}.jsonl"),
        ).validate()  # fmt: skip
        session = RunSession(cfg, cfg.log, producer="test")
        session.start()
        assert session.join(timeout=120) and session.state.status == "finished"
        measured = [e for e in read_events(tmp_path / f"{name}.jsonl") if e.kind in ("step_zero", "epoch_end")]
        return [{arm: numbers(m) for arm, m in e.arms.items()} for e in measured]

    reused: list[int] = []
    reusing = FrozenPrefix.reusing
    monkeypatch.setattr(FrozenPrefix, "reusing", lambda self, m, depth: reused.append(depth) or reusing(self, m, depth))
    with_reuse = run("reuse")
    assert reused and set(reused) == {2}  # targeted on 4 blocks trains q,k,v of blocks 2-3 only
    monkeypatch.setattr(FrozenPrefix, "usable_depth", lambda self, m: 0)
    whole = run("whole")
    assert with_reuse == whole and len(whole) == 3


def numbers(measures) -> dict:
    """Every logged number of an arm's step_zero or epoch_end entry but its times."""
    return {k: v for k, v in msgspec.structs.asdict(measures).items() if not k.startswith("t_")}
