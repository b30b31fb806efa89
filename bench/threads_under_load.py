"""Torch CPU threads and timing fairness: the demo-sized model's training step timed with 1 thread
and with every core, interleaved (rounds of 1 / N), on the machine as it is loaded now. Prints the
median step time and the spread (interquartile range / median) of each, and the load average. The
figure: how much steadier (smaller spread) 1 thread times under load; the default follows it.

    python -m bench.threads_under_load [--rounds 4 --steps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bench.result import Result


def step_times(threads: int, steps: int, model, batch) -> list[float]:
    torch.set_num_threads(threads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = []
    for _ in range(steps + 2):  # 2 warm-up steps left out, as in runs
        start = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append(time.perf_counter() - start)
    return out[2:]


def spread(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


def main(argv: list[str] | None = None) -> list[Result]:
    from transformers import GPT2Config, GPT2LMHeadModel

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=128, help="block size (batch 8)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=8192, n_positions=128, n_embd=128, n_layer=6, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    batch = torch.randint(0, 8192, (8, args.tokens))
    cores = os.cpu_count() or 1
    times: dict[int, list[float]] = {1: [], cores: []}
    for round_ in range(args.rounds):
        for threads in times:
            new = step_times(threads, args.steps, model, batch)
            times[threads] += new
            print(f"round {round_}: {threads} thread(s) median {statistics.median(new):.3f} s", flush=True)
    load = os.getloadavg()[0]
    for threads, values in times.items():
        median = statistics.median(values)
        print(f"{threads} thread(s): median {median:.3f} s, spread {spread(values):.2f} (load {load:.1f})")
    ratio = spread(times[cores]) / max(spread(times[1]), 1e-9)
    return [
        Result(
            f"step-time spread {cores} threads / 1 thread",
            ratio,
            1.0,
            "x",
            note=f"load {load:.1f} on {cores} cores; medians {statistics.median(times[1]):.3f} / "
            f"{statistics.median(times[cores]):.3f} s",
        )
    ]


if __name__ == "__main__":
    for result in main():
        print(result.line())
