"""A realistic, deterministic run log without torch: for app tests and benchmarks (100k steps).

The numbers follow the study (loss 3.78 -> ~2.65, a targeted arm ~25 % faster, p ~45 %
before training); frozen matrices have a change of exactly 0. Events are generated lazily
(`synthetic_events`) so a writer thread can append them slowly in watch tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

from engine.log import events as ev
from engine.log.runlog import LogWriter

T0 = 1_700_000_000.0  # fixed clock: snapshots must not depend on the wall clock
ROLES = ["attn.qkv", "attn.o", "mlp", "norm"]  # GPT-2: q, k, v fused in one matrix (engine/plans/describe.py)
MATRICES = ["q", "k", "v", "o"]
MATRIX_ROLE = {"q": "attn.qkv", "k": "attn.qkv", "v": "attn.qkv", "o": "attn.o"}
D_MODEL, VOCAB = 128, 8000
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "i",
    "had",
    "not",
    "are",
    "but",
    "from",
    "or",
    "have",
    "an",
    "whale",
    "ship",
    "sea",
    "captain",
    "ahab",
    "white",
    "water",
    "boat",
    "men",
    "old",
    "like",
    "upon",
    "into",
    "one",
    "all",
    "there",
]
COMMON = set(WORDS[:30])


def _sig6(values: dict) -> dict:
    """Norms as the engine logs them: 6 significant digits (engine/train/metrics.py)."""
    return {name: float(f"{v:.6g}") for name, v in values.items()}


def _trains(arm: str, block: int, role: str, n_blocks: int) -> bool:
    """What each preset trains (see README.md, "Freeze specs")."""
    upper = block >= n_blocks // 2
    if arm == "targeted":
        return upper and role == "attn.qkv"
    if arm == "reverse":
        return not (upper and role.startswith("attn"))
    return True


def _cell(trains: bool) -> str:
    return "train" if trains else "frozen"


def _grid(arm: str, n_blocks: int) -> dict:
    """The grid format of engine/plans/describe.py: roles x blocks of train/frozen/partial/later/absent."""
    other = _cell(arm != "targeted")
    return {
        "blocks": n_blocks,
        "roles": ROLES,
        "cells": [[_cell(_trains(arm, b, r, n_blocks)) for r in ROLES] for b in range(n_blocks)],
        "other": {"embed": other, "pos": other, "head": other, "final_norm": other},
        "tied": ["embed", "head"],
    }


def _params(arm: str, n_blocks: int) -> tuple[int, int]:
    """(trainable, total) for a small GPT-2-like model."""
    sizes = {"attn.qkv": 3 * D_MODEL**2, "attn.o": D_MODEL**2, "mlp": 8 * D_MODEL**2, "norm": 4 * D_MODEL}
    outside = VOCAB * D_MODEL + 256 * D_MODEL + 2 * D_MODEL
    total = n_blocks * sum(sizes.values()) + outside
    trainable = sum(sizes[r] for b in range(n_blocks) for r in ROLES if _trains(arm, b, r, n_blocks))
    return trainable + (outside if arm != "targeted" else 0), total


_SPEED = {"full": 1.0, "targeted": 0.74, "reverse": 0.97}  # relative step time
_TAU = {"full": 0.25, "targeted": 0.34, "reverse": 0.25}  # loss decay, as a fraction of the run
_FLOOR = {"full": 2.60, "targeted": 2.68, "reverse": 2.61}


def _arm_info(arm: str, n_blocks: int) -> ev.ArmRecord:
    trainable, total = _params(arm, n_blocks)
    flop = 1.0 if arm == "full" or arm not in _SPEED else _SPEED[arm] - 0.02
    spec = {"targeted": "targeted", "reverse": "reverse"}.get(arm, "full")
    grid = _grid(arm, n_blocks)
    return ev.ArmRecord(arm, spec, trainable, total, flop_ratio=flop, r_pred=1.0 - flop, grid=grid)


def _run_start(arms, n_blocks, epochs, per_epoch, seed) -> ev.RunStart:
    config = {
        "name": "synthetic",
        "model": "demo",
        "epochs": epochs,
        "batch_size": 8,
        "block_size": 128,
        "lr": 3e-4,
        "seed": seed,
        "device": "cpu",
        "dtype": "float32",
        "norm_every": 10,
        "samples": 3,
        "sample_tokens": 16,
        "common_k": 100,
        "trust_remote_code": False,
    }
    model = {"name": "demo-gpt2-tiny", "n_params": _params("full", n_blocks)[1], "n_blocks": n_blocks, "arch": "gpt2"}
    data = {"n_tokens": per_epoch * 8 * 128, "n_unique": 5210, "n_train_batches": per_epoch, "n_val_batches": 4}
    common = [[i, w] for i, w in enumerate(WORDS[:30])]
    return ev.RunStart(
        config=config, model=model, data=data, common_tokens=common, arms=[_arm_info(a, n_blocks) for a in arms]
    )


def _sample(rng: random.Random, phase: str, arm: str, index: int, epoch: int, bias: float) -> ev.Sample:
    words = [rng.choice(WORDS[:30]) if rng.random() < bias else rng.choice(WORDS[30:]) for _ in range(16)]
    tokens = [[" " + w, w in COMMON] for w in words]
    prompt = ["Call me Ishmael.", "The sea was", "Captain Ahab said"][index % 3]
    p = sum(1 for _, s in tokens if s) / len(tokens)
    return ev.Sample(
        phase=phase,
        arm=arm,
        prompt=prompt,
        text="".join(t for t, _ in tokens),
        tokens=tokens,
        p=p,
        index=index,
        epoch=epoch,
    )


class _Run:
    """The evolving numbers of one synthetic run."""

    def __init__(self, arms, n_blocks, steps, seed):
        self.arms, self.n_blocks, self.steps = arms, n_blocks, steps
        self.rng = random.Random(seed)
        self.drift: dict[str, dict[str, float]] = {a: {} for a in arms}
        self.names = [f"h.{b}.attn.{m}" for b in range(n_blocks) for m in MATRICES]
        self.trained = {  # (matrix, typical norm) of what each arm trains
            a: [
                (f"h.{b}.attn.{m}", 0.02 + 0.004 * b)
                for b in range(n_blocks)
                for m in MATRICES
                if _trains(a, b, MATRIX_ROLE[m], n_blocks)
            ]
            for a in arms
        }
        self.t_total = dict.fromkeys(arms, 0.0)
        self.epochs: dict[str, list[dict]] = {a: [] for a in arms}
        self.p: dict[str, list[float]] = {"*": [], **{a: [] for a in arms}}  # the latest sample set's p

    def sample(self, phase: str, arm: str, index: int, epoch: int, bias: float) -> ev.Sample:
        s = _sample(self.rng, phase, arm, index, epoch, bias)
        if index == 0:
            self.p[arm] = []
        self.p[arm].append(s.p)
        return s

    def loss(self, arm: str, step: int) -> float:
        tau = _TAU.get(arm, 0.3) * self.steps
        floor = _FLOOR.get(arm, 2.65)
        return floor + (3.78 - floor) * math.exp(-step / tau) + self.rng.gauss(0, 0.06)

    def dt(self, arm: str) -> float:
        return 0.12 * _SPEED.get(arm, 1.0) * (1 + 0.05 * self.rng.random())

    def dw(self, step: int, every: int) -> ev.DW:
        records = {}
        decay = math.exp(-step / self.steps)
        rand, root = self.rng.random, math.sqrt(every)
        for arm in self.arms:
            mine = dict.fromkeys(self.names, 0.0)  # frozen matrices: exactly 0
            for name, base in self.trained[arm]:
                mine[name] = base * decay * (1 + 0.2 * rand())
            acc = self.drift[arm]
            for name, value in mine.items():
                acc[name] = acc.get(name, 0.0) + value * root
            rel = _sig6({name: value / 11.3 for name, value in mine.items()})
            records[arm] = ev.ArmDW(_sig6(mine), _sig6(acc), rel)
        return ev.DW.of(step, records)


def synthetic_events(
    *,
    steps: int = 200,
    arms=("full", "targeted"),
    n_blocks: int = 6,
    epochs: int = 2,
    seed: int = 0,
    finished: bool = True,
    norm_every: int = 10,
    retain: bool = False,
) -> Iterator[ev.Event]:
    """The events of a run, seq and t filled in, lazily; retain: with step_zero and the per-batch
    validation, retain and expected-S fields (the Frontier view's)."""
    t = T0
    events = _all_events(steps, tuple(arms), n_blocks, epochs, seed, finished, norm_every)
    if retain:
        events = _with_retain(events, tuple(arms), seed)
    for seq, (e, dt) in enumerate(events):
        t += dt
        yield ev.stamped(e, seq, round(t, 6))


def _all_events(steps, arms, n_blocks, epochs, seed, finished, norm_every):
    """(event, seconds before it) pairs; seq/t are stamped by the caller."""
    per_epoch = max(1, steps // epochs)
    run = _Run(arms, n_blocks, steps, seed)
    yield ev.Header(producer="freeze-tui 0.1.0", run_id=f"synthetic-{seed}"), 0.0
    yield _run_start(arms, n_blocks, epochs, per_epoch, seed), 2.5
    for i in range(3):
        yield run.sample("pre", "*", i, -1, 0.45), 0.2
    epoch_losses = {a: [] for a in arms}
    for step in range(steps):
        epoch = min(step // per_epoch, epochs - 1)
        recs = {a: ev.ArmStep(run.loss(a, step), run.dt(a), 3e-4) for a in arms}
        for a in arms:
            run.t_total[a] += recs[a].dt
            epoch_losses[a].append(recs[a].loss)
        yield ev.Step(step=step, epoch=epoch, arms=recs), sum(r.dt for r in recs.values())
        if step % norm_every == 0:
            yield run.dw(step, norm_every), 0.0
        if step == steps // 2:
            yield ev.Warning(message=f"loss spike in {arms[-1]} at step {step}", arm=arms[-1]), 0.0
        if (step + 1) % per_epoch == 0 and epoch < epochs - 1 or step == steps - 1:
            yield from _epoch_end(run, epoch, epoch_losses, step)
    if finished:
        yield _run_end(run, arms), 0.1


def _with_retain(events, arms, seed):
    """The same events plus step_zero and, per arm at each epoch end, 4 validation and 4 retain batches
    (their own random stream, so nothing else of the log changes)."""
    rng = random.Random(seed + 17)
    zero_val, zero_retain = [4.0 + 0.1 * i for i in range(4)], [3.0 + 0.05 * i for i in range(4)]
    for e, dt in events:
        if isinstance(e, ev.EpochEnd):
            arms_rec = {}
            for k, (a, rec) in enumerate(e.arms.items()):
                learn, forget = 0.3 + 0.1 * e.epoch - 0.04 * k, 0.02 + 0.06 * (len(arms) - k) / len(arms)
                val = [v - learn + rng.gauss(0, 0.02) for v in zero_val]
                kept = [v + forget * (e.epoch + 1) + rng.gauss(0, 0.01) for v in zero_retain]
                extra = {"val_batches": val, "retain_batches": kept, "retain_loss": sum(kept) / 4}
                arms_rec[a] = ev.replaced(rec, **extra, expected_s=0.41 + 0.01 * k)
            e = ev.replaced(e, arms=arms_rec)
        yield e, dt
        if isinstance(e, ev.RunStart):
            zero = {"val_batches": zero_val, "val_loss": sum(zero_val) / 4, "retain_batches": zero_retain}
            zero.update(retain_loss=sum(zero_retain) / 4, expected_s=0.40)
            yield ev.StepZero(arms={a: ev.ArmMeasures(**zero) for a in arms}), 0.5


def _epoch_end(run: _Run, epoch: int, epoch_losses: dict, step: int):
    recs = {}
    for a, losses in epoch_losses.items():
        mean = sum(losses) / len(losses)
        var = sum((x - mean) ** 2 for x in losses) / len(losses)
        t_epoch = run.t_total[a] - sum(r.t_epoch for r in run.epochs[a])
        recs[a] = ev.ArmEpoch(
            loss_mean=mean, loss_var=var, val_loss=mean + 0.05, t_epoch=t_epoch, t_total=run.t_total[a]
        )
        run.epochs[a].append(recs[a])
        losses.clear()
    yield ev.EpochEnd(epoch=epoch, arms=recs), 0.3
    for a in run.arms:
        for i in range(3):
            yield run.sample("epoch", a, i, epoch, 0.5 + 0.04 * epoch), 0.2


def _run_end(run: _Run, arms) -> ev.RunEnd:
    base = run.t_total[arms[0]]
    p_pre = sum(run.p["*"]) / len(run.p["*"])
    summary = {
        "arms": {
            a: {
                "T": run.t_total[a],
                "loss_final": run.epochs[a][-1].loss_mean,
                "p_pre": p_pre,
                "p_post": sum(run.p[a]) / len(run.p[a]),
            }
            for a in arms
        },
        "r": {a: (base - run.t_total[a]) / base for a in arms},
    }
    return ev.RunEnd(status="finished", summary=summary)


def write_synthetic_log(
    path: str | Path,
    *,
    steps: int = 200,
    arms=("full", "targeted"),
    n_blocks: int = 6,
    epochs: int = 2,
    seed: int = 0,
    finished: bool = True,
    retain: bool = False,
) -> Path:
    """Write the whole synthetic log to `path` through LogWriter (streaming, constant memory)."""
    writer = LogWriter(path, overwrite=True)
    try:
        for e in synthetic_events(
            steps=steps, arms=arms, n_blocks=n_blocks, epochs=epochs, seed=seed, finished=finished, retain=retain
        ):
            writer.write(e)
    finally:
        writer.close()
    return Path(path)
