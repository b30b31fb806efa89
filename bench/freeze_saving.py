"""Freeze saving at the limit: measured r of `targeted` vs `full` against the FLOP-model r, and the
memory each arm holds for gradients + optimizer state. Both arms train side by side on the same
batches, alternating every step, so machine noise hits both alike.

    python -m bench.freeze_saving [--steps 3] [--demo]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from bench.result import Result
from engine.plans.flops import predicted_saving
from engine.plans.freeze import apply_trainable, resolve_plan
from engine.plans.roles import build_layout
from engine.train.arm import Arm, StepTimer, build_optimizer, state_bytes, train_step


def gpt2_small():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024))


def demo_model():
    from engine.train.models import load_model

    return load_model(None).model


def _arm(model, layout, name: str, spec: str, device: torch.device) -> Arm:
    plan = resolve_plan(name, spec, layout)
    copy_ = copy.deepcopy(model).to(device)
    names = plan.trainable_at(0, 0)
    apply_trainable(copy_, names)
    copy_.train()
    return Arm(name, plan, copy_, build_optimizer(copy_, names, 1e-4, 0.0), None, StepTimer(device), trainable=names)


def measure(model, label: str, *, steps: int, batch: int, block: int, device: str = "cpu") -> list[Result]:
    layout = build_layout(model)
    dev = torch.device(device)
    arms = [_arm(model, layout, "full", "full", dev), _arm(model, layout, "targeted", "targeted", dev)]
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    totals = {a.name: 0.0 for a in arms}
    for step in range(steps + 1):  # step 0 warms up (allocations, first-touch) and is not counted
        x = torch.randint(0, vocab, (batch, block), generator=gen).to(dev)
        for arm in arms:
            _, mark = train_step(arm, x, lr=1e-4, rng_seed=step, grad_clip=1.0, autocast_dtype=None, measure=False)
            if step:
                totals[arm.name] += StepTimer.seconds(mark)
    r = (totals["full"] - totals["targeted"]) / totals["full"]
    r_flop = predicted_saving(layout, arms[1].trainable, seq_len=block)
    frozen_with_grad = [n for n, p in arms[1].model.named_parameters() if not p.requires_grad and p.grad is not None]
    mem = {a.name: state_bytes(a) for a in arms}
    return [
        Result(
            f"{label}: r measured / r FLOP model",
            r / r_flop,
            0.9,
            note=f"r = {r:.3f} vs FLOP r = {r_flop:.3f}; T_full {totals['full']:.2f} s, "
            f"T_targeted {totals['targeted']:.2f} s over {steps} steps",
        ),
        Result(
            f"{label}: targeted grad+optimizer bytes / full",
            mem["targeted"] / mem["full"],
            arms[1].plan.n_trainable / arms[1].plan.n_total * 1.01,
            higher_is_better=False,
            note=f"{mem['targeted'] / 1e6:.1f} MB vs {mem['full'] / 1e6:.1f} MB; "
            f"frozen tensors holding a .grad: {len(frozen_with_grad)}",
        ),
    ]


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--demo-steps", type=int, default=10)
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (arms timed with CUDA events there)")
    args = parser.parse_args(argv)
    where, results = args.device.upper(), []
    if not args.skip_gpt2:
        results += measure(
            gpt2_small(), f"GPT-2-small shape, {where}, 4x128", steps=args.steps, batch=4, block=128, device=args.device
        )
    results += measure(
        demo_model(), f"embedded demo, {where}, 8x128", steps=args.demo_steps, batch=8, block=128, device=args.device
    )
    return results


if __name__ == "__main__":
    start = time.perf_counter()
    for result in main():
        print(result.line())
    print(f"({time.perf_counter() - start:.0f} s)")
