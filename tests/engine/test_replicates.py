"""--seeds 2 on the embedded demo: one log, two replicates from the same weights, intervals across seeds."""

from __future__ import annotations

import math

from engine.run.config import RunConfig
from tests.engine.test_run import by_kind, run_session


def test_two_seeds_on_the_demo_end_with_intervals_across_seeds(tmp_path, monkeypatch):
    import engine.plans.kinds
    import engine.train.models

    calls = {"layout": 0, "spec": 0}  # the run is planned once: one layout read, each arm's spec resolved once

    def counted(module, name: str, key: str) -> None:
        original = getattr(module, name)

        def call(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    counted(engine.train.models, "load_layout", "layout")
    counted(engine.plans.kinds, "parse_spec", "spec")
    cfg = RunConfig(
        max_steps=3, samples=1, sample_prompts=2, sample_tokens=4, seeds=2, block_size=64, batch_size=4,
        val_fraction=0.01, device="cpu",
    )  # fmt: skip
    session, events = run_session(cfg, tmp_path / "seeds.jsonl")
    assert events[-1].status == "finished"
    assert calls == {"layout": 1, "spec": len(cfg.arms)}
    replicates = by_kind(events, "replicate")
    assert [(r.replicate, r.of, r.seed) for r in replicates] == [(0, 2, 0), (1, 2, 1)]
    assert len(by_kind(events, "run_start")) == 1 and len(by_kind(events, "epoch_end")) == 2
    steps = by_kind(events, "step")
    assert [s.step for s in steps] == [0, 1, 2, 0, 1, 2]
    assert steps[0].arms["full"].loss != steps[3].arms["full"].loss  # seed 1 orders batches differently
    summary = events[-1].summary
    assert summary["replicates"] == 2
    targeted = summary["arms"]["targeted"]
    for key in ("val_loss", "r", "delta_p", "val_diff"):
        lo, hi = targeted[f"{key}_ci"]
        assert lo <= targeted[key] <= hi and math.isfinite(hi - lo), key
    assert session.state.replicate == 1 and len(session.state.past) == 1
