"""Sampling and validation as a share of a run's wall time, the batched sampler against the one it
replaced, side by side in one process (issue 22).

One demo run at default settings (`freeze-tui run` in-process, headless) gives the wall time and the
run_end summary's sampling_s and validation_s. Then, on that run's trained demo model and its prompts,
one sampling phase of one arm is timed both ways: the previous path (one call per prompt, logits to the
host and a CPU draw every token) and the batched one. The old path's share is the run's share with its
sampling time scaled by the measured ratio.

    python -m bench.sampling [--max-steps N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import msgspec
import torch

from bench.result import Result
from engine.log import events as ev
from engine.train.generate import TOP_K, cut_at_eos, sample_batch

TARGET_SHARE = 0.10


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


def run_demo(max_steps: int, device: str) -> tuple[float, dict, int]:
    """(wall seconds, run_end summary, sampling phases x arms) of one demo run at default settings."""
    from engine.run.config import RunConfig
    from engine.train.session import RunSession

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(max_steps=max_steps, device=device, log=str(Path(tmp) / "demo.jsonl")).validate()
        session = RunSession(cfg, cfg.log, producer="bench.sampling")
        started = time.perf_counter()
        session.start()
        session.join()
        wall = time.perf_counter() - started
        state = session.state
    if state.status != "finished":
        raise SystemExit(f"the demo run ended {state.status}: {[m.text for m in state.messages]}")
    epochs = max(len(a.epochs) for a in state.arms.values())
    phases = 1 + epochs * len(state.arms)  # one shared set before training, then every arm each epoch
    return wall, dict(state.summary), phases


def time_phase(model, prompts, *, n: int, max_new: int, device, batched: bool) -> float:
    started = time.perf_counter()
    if batched:
        sample_batch(model, prompts, n=n, max_new=max_new, seed=0, device=device)
    else:
        for ids in prompts:
            previous_sampler(model, ids, n=n, max_new=max_new, seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def measure(max_steps: int = 0, device: str = "cpu", repeats: int = 3) -> list[Result]:
    from engine.run.config import RunConfig
    from engine.train.setup import prepare

    wall, summary, phases = run_demo(max_steps, device)
    times = msgspec.convert(summary, ev.PhaseTimes)
    sampling, validation = times.sampling_s, times.validation_s
    setup = prepare(RunConfig(device=device).validate())
    model = setup.model.to(setup.device)
    prompts = [ids for ids, _ in setup.prompts]
    n, max_new = setup.cfg.samples, setup.sample_tokens
    time_phase(model, prompts[:1], n=n, max_new=2, device=setup.device, batched=True)  # warm-up
    new = min(
        time_phase(model, prompts, n=n, max_new=max_new, device=setup.device, batched=True) for _ in range(repeats)
    )
    old = min(
        time_phase(model, prompts, n=n, max_new=max_new, device=setup.device, batched=False) for _ in range(repeats)
    )
    share_new = (sampling + validation) / wall
    old_sampling = sampling * old / new
    share_old = (old_sampling + validation) / (wall - sampling + old_sampling)
    where = f"demo, default settings{f', --max-steps {max_steps}' if max_steps else ''}, {setup.device}"
    return [
        Result(
            "sampling + validation share of wall time",
            share_new,
            TARGET_SHARE,
            higher_is_better=False,
            note=f"{where}: wall {wall:.1f} s, sampling {sampling:.2f} s, validation {validation:.2f} s; "
            f"the previous sampler: {share_old:.1%}",
        ),
        Result(
            "one sampling phase: previous / batched",
            old / new,
            1.0,
            unit="x",
            note=f"{len(prompts)} prompts x {n} seeds x {max_new} tokens: {old * 1000:.0f} ms vs {new * 1000:.0f} ms "
            f"({phases} phases in the run)",
        ),
    ]


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=0, help="cut the demo run short (0: default settings)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    return measure(args.max_steps, args.device)


if __name__ == "__main__":
    for result in main():
        print(result.line())
