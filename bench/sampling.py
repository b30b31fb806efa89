"""Sampling and validation as a share of a run's wall time, against the paths they replaced, side by
side in one process (issue 22).

One demo run (`freeze-tui run` in-process, headless; the study's size by default: 3 epochs, 8 prompts
x 4 samples, as with --full-demo; --quick: the quick demo a CPU runs without --full-demo) gives the
wall time and the run_end summary's sampling_s and validation_s. Then, on that run's demo model and
prompts, two things are timed both ways:

* one sampling phase of one arm: the previous sampler (one call per prompt, logits to the host and a
  CPU draw every token) against the batched one;
* one validation of every arm (validation + retain + expected-S passes) after a few steps: the whole
  forward against the one that starts above the lower blocks an arm never trains
  (engine/train/frozen_prefix.py), plus the step-zero pass both share.

The old path's share is the run's share with its sampling and validation times scaled by those
measured ratios. The quick demo validates on --val-blocks 32 (engine/run/demo_size.py): its old path's
validation is timed on every validation and retain block (whole forward), and the share the quick demo
had before that setting (every block, the reused prefix) is printed beside it. The share is also given
in this process's CPU time (every validation pass and sampling phase against the whole run): on a
shared box a load burst lands on whichever phase runs then.

    python -m bench.sampling [--quick] [--max-steps N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import msgspec
import torch

from bench.result import Result
from engine.log import events as ev
from engine.train.generate import TOP_K, cut_at_eos, sample_batch

TARGET_SHARE = 0.10


def clock_of(device: torch.device):
    """The clock of the side-by-side timings: this process's CPU time on a CPU (the box is shared: another
    process's burst would land on whichever way ran then), wall time under CUDA."""
    return time.perf_counter if device.type == "cuda" else time.process_time


@torch.no_grad()
def previous_sampler(model, prompt_ids: list[int], *, n: int, max_new: int, seed: int, device, eos_id=None):
    """The sampler before issue 22, kept here only to be measured: one prompt per call, the logits read
    to the host every token and drawn there with one generator per sample."""
    from engine.train.generate import _cache_name

    model.eval()
    gens = [torch.Generator().manual_seed(seed * 7919 + i) for i in range(n)]
    ids = torch.tensor([prompt_ids] * n, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(n)]
    cache_arg, past = "", None
    for _ in range(max_new):
        result = model(input_ids=ids, use_cache=True, **({cache_arg: past} if past is not None else {}))
        cache_arg = cache_arg or _cache_name(result)
        past = result[cache_arg]
        logits = result.logits[:, -1, :].float().cpu()
        nxt = []
        for i in range(n):
            top, idx = torch.topk(logits[i], min(TOP_K, logits.shape[-1]))
            nxt.append(int(idx[torch.multinomial(torch.softmax(top, -1), 1, generator=gens[i])].item()))
        for i, tok in enumerate(nxt):
            out[i].append(tok)
        ids = torch.tensor(nxt, dtype=torch.long, device=device).unsqueeze(1)
    return [cut_at_eos(seq, eos_id) for seq in out]


def run_demo(full: bool, max_steps: int, device: str) -> tuple[float, dict, int, object, float]:
    """(wall seconds, run_end summary, epochs, the config the run ran, the sampling + validation share of
    the run's CPU time) of one demo run."""
    from engine.run.config import RunConfig
    from engine.train.session import RunSession

    with tempfile.TemporaryDirectory() as tmp, cpu_time_of_phases() as phases:
        cfg = RunConfig(max_steps=max_steps, device=device, full_demo=full, log=str(Path(tmp) / "demo.jsonl"))
        session = RunSession(cfg.validate(), cfg.log, producer="bench.sampling")
        started, cpu = time.perf_counter(), time.process_time()
        session.start()
        session.join()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        state = session.state
    if state.status != "finished":
        raise SystemExit(f"the demo run ended {state.status}: {[m.text for m in state.messages]}")
    epochs = max(len(a.epochs) for a in state.arms.values())
    return wall, dict(state.summary), epochs, session.cfg, phases[0] / cpu


@contextlib.contextmanager
def cpu_time_of_phases():
    """This process's CPU seconds in every validation pass and sampling phase of the runs inside ([total]):
    on a shared box a load burst lands on whichever phase ran then, so the wall share alone is noisy."""
    from engine.train.experiment import Experiment

    total = [0.0]
    originals = {name: getattr(Experiment, name) for name in ("_measures", "samples")}

    def timed(method):
        def run(*args, **kw):
            started = time.process_time()
            try:
                return method(*args, **kw)
            finally:
                total[0] += time.process_time() - started

        return run

    for name, method in originals.items():
        setattr(Experiment, name, timed(method))
    try:
        yield total
    finally:
        for name, method in originals.items():
            setattr(Experiment, name, method)


def time_phase(model, prompts, *, n: int, max_new: int, device, batched: bool) -> float:
    clock = clock_of(device)
    started = clock()
    if batched:
        sample_batch(model, prompts, n=n, max_new=max_new, seed=0, device=device)
    else:
        for ids in prompts:
            previous_sampler(model, ids, n=n, max_new=max_new, seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - started


def time_validation(cfg, setup, repeats: int) -> tuple[float, float, float]:
    """(step-zero pass, one validation of every arm: whole forward, the same reusing the frozen prefix)
    in seconds, after 3 training steps (the trained blocks have moved), min over `repeats`."""
    from engine.core.control import Control
    from engine.train.data import batch_order
    from engine.train.experiment import Experiment

    experiment = Experiment(cfg, setup, lambda event: None, Control())
    clock = clock_of(setup.device)
    started = clock()
    experiment._step_zero_measures()
    step_zero = clock() - started
    for ids in batch_order(len(setup.data.train), cfg.batch_size, cfg.seed, 0)[:3]:
        experiment._one_step(setup.data.train[ids], 0, 100)
    experiment.flush()
    whole = {arm.name: math.inf for arm in experiment.arms}
    reused = dict(whole)
    for _ in range(repeats):  # the two ways take turns: a change of load hits both alike
        for arm in experiment.arms:
            whole[arm.name] = min(whole[arm.name], _timed(clock, experiment._measure_pass, arm))
            reused[arm.name] = min(reused[arm.name], _timed(clock, experiment._measures, arm))
    return step_zero, sum(whole.values()), sum(reused.values())


def _timed(clock, measure, arm) -> float:
    started = clock()
    measure(arm, True)
    return clock() - started


def measure(full: bool = True, max_steps: int = 0, device: str = "cpu", repeats: int = 3) -> list[Result]:
    from engine.train.setup import prepare

    wall, summary, epochs, cfg, cpu_share = run_demo(full, max_steps, device)
    times = msgspec.convert(summary, ev.PhaseTimes)
    sampling, validation = times.sampling_s, times.validation_s
    setup = prepare(cfg)
    model = setup.model.to(setup.device)
    prompts = [ids for ids, _ in setup.prompts]
    n, max_new = cfg.samples, setup.sample_tokens
    time_phase(model, prompts[:1], n=n, max_new=2, device=setup.device, batched=True)  # warm-up
    new = min(
        time_phase(model, prompts, n=n, max_new=max_new, device=setup.device, batched=True) for _ in range(repeats)
    )
    old = min(
        time_phase(model, prompts, n=n, max_new=max_new, device=setup.device, batched=False) for _ in range(repeats)
    )
    step_zero, whole, reused = time_validation(cfg, setup, repeats)
    now_cpu = step_zero + epochs * reused
    old_cpu, every_block = step_zero + epochs * whole, ""
    if cfg.val_blocks:  # the quick demo measures a subset: the old path measured every block
        every = dataclasses.replace(cfg, val_blocks=0)
        zero_all, whole_all, reused_all = time_validation(every, prepare(every), repeats)
        old_cpu = zero_all + epochs * whole_all
        before = _share(wall, sampling, validation, sampling, validation * (zero_all + epochs * reused_all) / now_cpu)
        every_block = f"; every validation block (before --val-blocks {cfg.val_blocks}): {before:.1%}"
    share_new = (sampling + validation) / wall
    share_old = _share(wall, sampling, validation, sampling * old / new, validation * old_cpu / now_cpu)
    size = "demo at the study's size (--full-demo)" if full else "the quick CPU demo"
    where = f"{size}{f', --max-steps {max_steps}' if max_steps else ''}, {setup.device}"
    phases = 1 + epochs * len(setup.plans)  # one shared set before training, then every arm each epoch
    return [
        Result(
            "sampling + validation share of wall time",
            share_new,
            TARGET_SHARE,
            higher_is_better=False,
            note=f"{where}: wall {wall:.1f} s, sampling {sampling:.2f} s, validation {validation:.2f} s; "
            f"the old path (previous sampler, whole-forward validation of every block): {share_old:.1%}"
            f"{every_block}",
        ),
        Result(
            "the same share of the run's CPU time",
            cpu_share,
            TARGET_SHARE,
            higher_is_better=False,
            note=f"{where}: CPU seconds of every validation pass and sampling phase / of the whole run (this process)",
        ),
        Result(
            "one sampling phase: previous / batched",
            old / new,
            1.0,
            unit="x",
            note=f"{len(prompts)} prompts x {n} seeds x {max_new} tokens: {old * 1000:.0f} ms vs {new * 1000:.0f} ms "
            f"({phases} phases in the run)",
        ),
        Result(
            "one validation of every arm: whole / reused prefix",
            whole / reused,
            1.0,
            unit="x",
            note=f"{len(setup.plans)} arms: {whole * 1000:.0f} ms vs {reused * 1000:.0f} ms; the step-zero pass "
            f"{step_zero * 1000:.0f} ms ({epochs} epoch(s) in the run)",
        ),
    ]


def _share(wall: float, sampling: float, validation: float, other_sampling: float, other_validation: float) -> float:
    """The share of a run whose training took what this one's did, its sampling and validation the others."""
    other = other_sampling + other_validation
    return other / (wall - sampling - validation + other)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick CPU demo instead of the study's size")
    parser.add_argument("--max-steps", type=int, default=0, help="cut the demo run short (0: default settings)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    return measure(not args.quick, args.max_steps, args.device)


if __name__ == "__main__":
    for result in main():
        print(result.line())
