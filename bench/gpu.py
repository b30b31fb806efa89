"""The GPU figures in one script (target: under 8 minutes on one H200). Nothing downloads: models are
random-weight GPT-2 shapes built here, the run uses the embedded demo's text and tokenizer.

1. engine step vs a plain hand-written loop (the `full` arm), GPT-2 small/medium/large, bf16, 8x1024:
   ratio of step times, target <= 1.02;
2. at the same shapes, measured r of `targeted` vs `full` next to the FLOP model's r;
3. CUDA host syncs per flush (bench.cuda_sync), target <= 3;
4. a `freeze-tui run` (3 arms, bf16) at 16x512 on a GPT-2-medium-shaped model: step time, TFLOP/s, r,
   each arm's tokens/s and MFU as the run reports them, and the sampling + validation share of its
   wall time (default samples: 8 prompts x 4 seeds, target <= 10 %);
5. MFU per arm (the FLOP model's FLOPs of the arm / step time / the GPU's dense peak, engine.run.peaks)
   at every shape, the plain loop's beside the full arm's (target: full >= plain);
6. --compile on vs off at the largest shape: compiled full and targeted arms taking turns with the
   eager ones (target: compiled full arm's MFU >= 1.2x the plain loop's), and r under compile.
7. with two GPUs or more, replicas vs shards (bench.replicas_vs_shards): the `full` arm over 2 ranks
   as `--replicas 2` and as `--shards 2`, the ratio of their tokens/s (one GPU: a skip line).

    python -m bench.gpu                      # skips without CUDA
    python -m bench.gpu --device cpu --tiny  # tiny shapes on the CPU: checks the script works
    python -m bench.gpu --no-compile         # leave figure 6 out (torch.compile takes minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import msgspec
import torch

from bench.gpt2_shapes import SHAPES, TINY, gpt2, model_dir
from bench.result import Result
from engine.log import events as ev
from engine.log.runlog import read_events
from engine.plans.describe import arm_record
from engine.plans.flops import step_flops
from engine.plans.freeze import resolve_plan
from engine.plans.roles import build_layout
from engine.run.config import RunConfig
from engine.run.peaks import peak_tflops
from engine.train.arm import StepTimer, train_step
from engine.train.measure import AUTOCAST, build_arm


def plain_step(model, opt, batch: torch.Tensor, dtype: str, timer: StepTimer):
    """A hand-written step, the reference the engine must match; returns the timer's mark."""
    start = timer.start()
    with torch.autocast(batch.device.type, dtype=AUTOCAST[dtype], enabled=AUTOCAST[dtype] is not None):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return timer.stop(start)


def interleaved(runners: dict, *, steps: int, warmup: int) -> dict[str, float]:
    """Mean seconds per step of each runner, taking turns (rotating order) so drift hits all alike."""
    names, marks = list(runners), {name: [] for name in runners}
    for step in range(warmup + steps):
        k = step % len(names)
        for name in names[k:] + names[:k]:
            mark = runners[name](step)
            if step >= warmup:
                marks[name].append(mark)
    return {name: sum(StepTimer.seconds(m) for m in ms) / len(ms) for name, ms in marks.items()}


def peak_of(device, dtype: str) -> tuple[float | None, str]:
    """(dense peak TFLOP/s of the device at dtype, its name); None off CUDA or for an unknown GPU."""
    if device.type != "cuda":
        return None, device.type
    name = torch.cuda.get_device_name(device)
    return peak_tflops(name, dtype), name


def shape_figures(
    label: str, dims, *, batch: int, block: int, steps: int, device, dtype: str, vocab: int, compile_too: bool = False
):
    """Engine vs plain loop (full arm), measured vs FLOP r (targeted) and MFU per arm at one shape, all
    taking turns; compile_too: compiled full and targeted arms take turns with them."""
    model = gpt2(*dims, vocab=vocab, ctx=max(block, 64))
    layout = build_layout(model)
    cfg = RunConfig(dtype=dtype, grad_clip=1.0, batch_size=batch, block_size=block)
    plans = {name: resolve_plan(name, name, layout) for name in ("full", "targeted")}
    arms = {name: build_arm(model, name, plan, device, cfg, 1e-5) for name, plan in plans.items()}
    if compile_too:
        compiled_cfg = dataclasses.replace(cfg, compile=True)
        for name, plan in plans.items():
            arms[f"{name}+compile"] = build_arm(model, name, plan, device, compiled_cfg, 1e-5)
    plain = model.to(device).train()
    opt, timer = torch.optim.AdamW(plain.parameters(), lr=1e-5), StepTimer(device)
    x = torch.randint(0, vocab, (batch, block), generator=torch.Generator().manual_seed(0)).to(device)

    def engine(arm):
        return lambda step: train_step(
            arm, x, lr=1e-5, rng_seed=step, grad_clip=1.0, autocast_dtype=AUTOCAST[dtype], measure=False
        )[1]

    runners = {name: engine(arm) for name, arm in arms.items()}
    runners["plain"] = lambda step: plain_step(plain, opt, x, dtype, timer)
    times = interleaved(runners, steps=steps, warmup=3 if compile_too else 2)  # compiling: the first steps
    r = (times["full"] - times["targeted"]) / times["full"]
    r_flop = arm_record(plans["targeted"], layout, seq_len=block).r_pred
    tflops = 6 * layout.n_total * batch * block / times["full"] / 1e12
    where = f"{label} ({layout.n_total / 1e6:.0f} M), {dtype}, {batch}x{block}"
    full_flops = step_flops(layout, set(layout.names), seq_len=block).total * batch * block
    flops = {name: plans[name.split("+")[0]].flop_ratio(layout, seq_len=block) * full_flops for name in arms}
    flops["plain"] = full_flops
    peak, gpu = peak_of(device, dtype)
    mfu = {name: flops[name] / times[name] / (peak * 1e12) if peak else float("nan") for name in times}
    words = ", ".join(f"{name} {100 * value:.1f} %" for name, value in mfu.items())
    results = [
        Result(
            f"MFU full arm / plain loop, {where}",
            mfu["full"] / mfu["plain"] if peak else times["plain"] / times["full"],
            1.0,
            note=f"MFU on {gpu} (peak {peak} TFLOP/s): {words}"
            if peak
            else f"no peak known for {gpu}: the ratio is of FLOP/s",
        ),
    ]
    if compile_too:
        r_compiled = (times["full+compile"] - times["targeted+compile"]) / times["full+compile"]
        results.append(
            Result(
                f"compiled full arm / plain loop FLOP/s, {where}",
                times["plain"] / times["full+compile"],
                1.2,
                note=f"compiled {1000 * times['full+compile']:.1f} ms vs eager {1000 * times['full']:.1f} ms, "
                f"plain {1000 * times['plain']:.1f} ms; r under compile {r_compiled:.3f} (eager {r:.3f})",
            )
        )
    return results + [
        Result(
            f"engine / plain loop step, {where}",
            times["full"] / times["plain"],
            1.02,
            higher_is_better=False,
            note=f"engine {1000 * times['full']:.1f} ms, plain {1000 * times['plain']:.1f} ms; "
            f"{tflops:.1f} TFLOP/s (6N)",
        ),
        Result(
            f"r targeted measured / FLOP r, {where}",
            r / r_flop if r_flop else float("nan"),
            0.0,
            note=f"r = {r:.3f} measured vs {r_flop:.3f} FLOP model (reported, not a target)",
        ),
    ]


def run_figure(
    dims, *, batch: int, block: int, steps: int, device: str, dtype: str, tiny: bool = False
) -> list[Result]:
    """A real `freeze-tui run` (the session, headless, 3 arms) and what its log's state says; tiny: few
    validation blocks and short samples (a CPU check of the script, seconds)."""
    small = dict(val_fraction=0.01, sample_prompts=2, sample_tokens=4) if tiny else {}
    from engine.train.session import RunSession

    with tempfile.TemporaryDirectory() as tmp:
        path = model_dir(Path(tmp), dims, ctx=max(block, 64))
        cfg = RunConfig(
            model=str(path),
            arms=(("full", "full"), ("targeted", "targeted"), ("reverse", "reverse")),
            batch_size=batch,
            block_size=block,
            max_steps=steps,
            epochs=50,
            device=device,
            dtype=dtype,
            log=str(Path(tmp) / "run.jsonl"),
            **small,
        ).validate()
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        session = RunSession(cfg, cfg.log, producer="bench.gpu").start()
        session.join()
        wall = time.perf_counter() - started
        state = session.state
        planned = [a.memory or {} for e in read_events(cfg.log) if isinstance(e, ev.RunStart) for a in e.arms]
    if session.failure is not None or state.status != "finished":
        raise RuntimeError(f"the bench run ended {state.status}: {session.failure}")
    n = state.model_info.n_params or 0
    t_full = state.arm_time("full") / steps
    shape = f"{dims[0]}x{dims[1]}"
    notes = ", ".join(f"{a} r {state.saving(a):.3f} (FLOP {state.arms[a].r_pred:.3f})" for a in ("targeted", "reverse"))
    results = [
        Result(
            f"freeze-tui run, GPT-2 shape {shape} ({n / 1e6:.0f} M), {dtype}, {batch}x{block}: full step",
            1000 * t_full,
            0.0,
            unit="ms",
            higher_is_better=True,
            note=f"{6 * n * batch * block / t_full / 1e12:.1f} TFLOP/s (6N); {notes}; reported, not a target",
        )
    ]
    times = msgspec.convert(state.summary, ev.PhaseTimes)
    share = (times.sampling_s + times.validation_s) / wall
    results.append(
        Result(
            "sampling + validation share of that run's wall time",
            share,
            0.10,
            higher_is_better=False,
            note=f"wall {wall:.1f} s (loading included), sampling {times.sampling_s:.2f} s, "
            f"validation {times.validation_s:.2f} s",
        )
    )
    for arm, record in ev.summary_arms(state.summary).items():
        figures = msgspec.convert(record, ev.ArmThroughput)
        results.append(
            Result(
                f"that run, arm {arm}: tokens/s (run_end)",
                figures.tokens_per_s if figures.tokens_per_s is not None else float("nan"),
                0.0,
                unit="tok/s",
                note=f"MFU {100 * figures.mfu:.1f} %" if figures.mfu is not None else "MFU: no peak known",
            )
        )
    if cuda and planned and all(planned):
        # arms step one after another: their weights, grads and AdamW state stay, activations come and go
        static = sum(m["weights"] + m["grads"] + m["optimizer"] for m in planned)
        expected = static + max(m["activations"] for m in planned)
        peak = torch.cuda.max_memory_allocated()
        results.append(
            Result(
                "memory plan / measured peak, that run",
                expected / peak,
                0.0,
                note=f"plan {expected / 1e9:.2f} GB (static {static / 1e9:.2f} GB + largest activations), "
                f"peak allocated {peak / 1e9:.2f} GB; reported, not a target",
            )
        )
    return results


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and few steps (CPU check)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="leave the --compile figure out")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu: skipped, no CUDA device visible (try --device cpu --tiny)")
        return []
    device = torch.device(args.device)
    if args.tiny:
        print("gpu: --tiny checks that the script runs; its figures mean nothing (2 steps of a toy model)")
    shapes, batch, block, steps = (TINY, 2, 32, 2) if args.tiny else (SHAPES, 8, 1024, args.steps)
    dtype = "bf16"
    results: list[Result] = []
    for label, dims in shapes.items():
        vocab = 1000 if args.tiny else 50257
        compile_too = not args.no_compile and label == list(shapes)[-1]  # the largest shape only
        results += shape_figures(
            label,
            dims,
            batch=batch,
            block=block,
            steps=steps,
            device=device,
            dtype=dtype,
            vocab=vocab,
            compile_too=compile_too,
        )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type == "cuda":
        from bench.cuda_sync import main as sync_main

        results += sync_main(["--steps", "60"])
    run_dims, run_batch, run_block = ((2, 64, 2), 2, 32) if args.tiny else (SHAPES["medium"], 16, 512)
    results += run_figure(
        run_dims,
        batch=run_batch,
        block=run_block,
        steps=4 if args.tiny else 40,
        device=args.device,
        dtype=dtype,
        tiny=args.tiny,
    )
    if device.type == "cuda":
        from bench.replicas_vs_shards import main as replicas_main

        results += replicas_main(["--device", "cuda"])
    return results


if __name__ == "__main__":
    start = time.perf_counter()
    for result in main():
        print(result.line(), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")
