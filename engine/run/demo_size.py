"""The size of the embedded demo: a quick run by default on a CPU, the study's full size one flag away.

The full demo (3 epochs of 122 steps, 8 prompts × 4 samples) takes 20-60 min on a 2-core CPU: too long
for a first look. On a CPU, a demo run (no --model, no --data) without --max-steps and without
--full-demo stops after QUICK_STEPS steps (one epoch's validation and samples), samples fewer
prompts and validates on fewer blocks (--val-blocks: its validation stays a small share of its short
training, issue 22); the run says so in a warning line. No torch.
"""

from __future__ import annotations

import dataclasses

from engine.run.config import RunConfig

QUICK_STEPS = 60
QUICK_PROMPTS = 5  # p's interval is over prompts: 5 still give one
QUICK_SAMPLES = 2
QUICK_VAL_BLOCKS = 32  # 4 batches of validation and retain blocks (of 109 and 64): sized to 60 steps


def is_demo(cfg: RunConfig) -> bool:
    return cfg.model is None and not cfg.data


def quick_demo(cfg: RunConfig, on_cpu: bool) -> tuple[RunConfig, str]:
    """(the config to run, a line saying what was shortened, or "" when nothing was)."""
    if not (on_cpu and is_demo(cfg)) or cfg.full_demo or cfg.max_steps:
        return cfg, ""
    defaults = RunConfig()
    quick = dataclasses.replace(
        cfg,
        max_steps=QUICK_STEPS,
        sample_prompts=QUICK_PROMPTS if cfg.sample_prompts == defaults.sample_prompts else cfg.sample_prompts,
        samples=QUICK_SAMPLES if cfg.samples == defaults.samples else cfg.samples,
        val_blocks=QUICK_VAL_BLOCKS if cfg.val_blocks == defaults.val_blocks else cfg.val_blocks,
    )
    measured = f", validation on {quick.val_blocks} blocks" if quick.val_blocks else ""
    return quick, (
        f"quick demo on CPU: {QUICK_STEPS} steps, {quick.sample_prompts} prompts × {quick.samples} samples"
        f"{measured} (a few minutes); --full-demo runs the full study (3 epochs, 366 steps: 20-60 min on 2 cores)"
    )
