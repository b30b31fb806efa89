"""Replicas vs shards (issue 22): the same `full` arm trained over two ranks two ways, each a real
`freeze-tui run --nproc-per-node 2` on the random GPT-2 shape bench.gpu builds: `--replicas 2`
(data-parallel, FSDP2 replication: no weights travel) and `--shards 2` (FSDP2: every block's weights
all-gathered each step). The figure is the ratio of their tokens/s as their run_end reports them; on
GPUs the replicas should win for a model that fits one GPU. Needs two devices: two GPUs, or two CPU
processes over gloo (`--device cpu --tiny`, a check that it runs; its figure means nothing).

    python -m bench.replicas_vs_shards --device cpu --tiny
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from bench.gpt2_shapes import SHAPES, TINY, model_dir
from bench.result import Result
from engine.log import events as ev
from engine.log.runlog import read_events

LAYOUTS = {"replicas": ("--replicas", "2"), "shards": ("--shards", "2")}


def tokens_per_s(model: Path, layout: tuple[str, str], *, device: str, dtype: str, batch: int, block: int, steps: int):
    """One 2-rank run of the full arm in `layout`; its run_end's tokens/s for the arm."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.jsonl"
        argv = [
            sys.executable, "-m", "freeze_tui", "run", "--headless", "--model", str(model), "--arm", "full=full",
            "--nproc-per-node", "2", *layout, "--device", device, "--dtype", dtype, "--batch-size", str(batch),
            "--block-size", str(block), "--max-steps", str(steps), "--epochs", "50", "--samples", "1",
            "--sample-prompts", "1", "--sample-tokens", "4", "--val-fraction", "0.01", "--log", str(log),
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        end = [e for e in read_events(log) if isinstance(e, ev.RunEnd)] if log.exists() else []
        if done.returncode != 0 or not end or end[-1].status != "finished":
            raise RuntimeError(f"the {' '.join(layout)} run failed ({done.returncode}): {done.stderr[-800:]}")
        figures = msgspec.convert(ev.summary_arms(end[-1].summary)["full"], ev.ArmThroughput)
        return figures.tokens_per_s


def replicas_vs_shards(model: Path, *, device: str, dtype: str, batch: int, block: int, steps: int) -> Result:
    speed = {
        name: tokens_per_s(model, layout, device=device, dtype=dtype, batch=batch, block=block, steps=steps)
        for name, layout in LAYOUTS.items()
    }
    return Result(
        "replicas / shards over 2 ranks: tokens/s of the full arm",
        speed["replicas"] / speed["shards"],
        1.0,
        note=f"--replicas 2: {speed['replicas']:.0f} tok/s, --shards 2: {speed['shards']:.0f} tok/s",
    )


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a toy model on two CPU processes (a check that it runs)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if torch.cuda.device_count() < 2:
            print("replicas vs shards: skipped, it needs 2 GPUs (one rank each)")
            return []
    dims, batch, block, steps, dtype = (
        (TINY["tiny"], 4, 32, 3, "fp32") if args.tiny else (SHAPES["medium"], 16, 512, 20, "bf16")
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir(Path(tmp), dims, ctx=max(block, 64))
        return [
            replicas_vs_shards(
                model, device=args.device.split(":")[0], dtype=dtype, batch=batch, block=block, steps=steps
            )
        ]


if __name__ == "__main__":
    for result in main():
        print(result.line(), flush=True)
