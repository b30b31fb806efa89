"""Peak host memory per rank of a distributed run (issue 22, "host memory that scales"): a random GPT-2 of
~124 M parameters (n_layer 12, n_embd 768, GPT-2's vocabulary) trained 2 steps over 2 and 4 gloo ranks, one
`full` arm sharded over every rank (`--shards N`). Each run is a real `freeze-tui run --nproc-per-node N`;
this process polls every rank's VmHWM (/proc/PID/status, the peak resident set) until it exits, and prints
it against the model's fp32 size. Before/after side by side: the same run with FREEZE_TUI_WHOLE_LOAD=1 (every
rank loads the whole model, as before issue 22) and without (each rank reads only its own shards).

    python -m bench.host_memory [NPROC ...]        (default: 2 4; about 4 minutes on 2 CPU cores)
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.result import Result

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "or",
    "at",
    "an",
    "which",
    "not",
    "have",
]
# a sharded rank holds its 1/N of weights, grads and AdamW state (16 bytes per parameter in all) and one
# block's gathered weights at a time; it may not hold the whole model's fp32 bytes on top of that
TARGET_OVER_SHARE = 1.0  # (peak - 16 N / ranks) / fp32 bytes of the model


def build_model(root: Path) -> tuple[Path, int]:
    """A random GPT-2 small (~124 M parameters) saved with save_pretrained, with the demo's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config

    from engine.demo import DEMO_MODEL_DIR

    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=256, vocab_size=50257)
    model = AutoModelForCausalLM.from_config(config)
    out = root / "gpt2-124m"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(DEMO_MODEL_DIR).save_pretrained(out)
    return out, sum(p.numel() for p in model.parameters())


def write_corpus(path: Path) -> None:
    rng = random.Random(0)
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(4000)))


def vm_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure(model: Path, corpus: Path, nproc: int, whole: bool, root: Path) -> dict[int, int]:
    """{rank: peak RSS bytes} of one run; the run must finish."""
    import psutil

    cmd = [sys.executable, "-m", "freeze_tui", "run", "--headless", "--model", str(model), "--data", str(corpus)]
    cmd += ["--arm", "full=full", "--shards", str(nproc), "--nproc-per-node", str(nproc), "--max-steps", "2"]
    cmd += ["--batch-size", str(nproc), "--block-size", "32", "--samples", "0", "--epochs", "1"]
    cmd += ["--log-path", str(root / f"run-{nproc}-{int(whole)}.jsonl")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TERM": "dumb"}
    env.pop("FREEZE_TUI_WHOLE_LOAD", None)
    if whole:
        env["FREEZE_TUI_WHOLE_LOAD"] = "1"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    launcher = psutil.Process(proc.pid)
    peaks: dict[int, int] = {}
    ranks: dict[int, int] = {}  # pid -> rank
    while proc.poll() is None:
        try:
            for child in launcher.children(recursive=True):
                if child.pid not in ranks:
                    rank = child.environ().get("RANK")
                    if rank is None:
                        continue
                    ranks[child.pid] = int(rank)
                peak = vm_hwm(child.pid)
                if peak is not None:
                    peaks[ranks[child.pid]] = max(peaks.get(ranks[child.pid], 0), peak)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0 or len(peaks) != nproc:
        raise SystemExit(f"the {nproc}-rank run failed (exit {proc.returncode}):\n{out[-3000:]}")
    return peaks


def main(argv: list[str]) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, n = build_model(root)
        corpus = root / "corpus.txt"
        write_corpus(corpus)
        fp32 = 4 * n
        print(f"model: random GPT-2, {n / 1e6:.1f} M parameters, fp32 {fp32 / 2**20:.0f} MiB", flush=True)
        for nproc in [int(a) for a in argv] or [2, 4]:
            before, after = (measure(model, corpus, nproc, whole, root) for whole in (True, False))
            for rank in sorted(after):
                print(
                    f"  {nproc} ranks, rank {rank}: peak RSS {before[rank] / 2**20:.0f} MiB before "
                    f"({before[rank] / fp32:.2f} x fp32 model), {after[rank] / 2**20:.0f} MiB after "
                    f"({after[rank] / fp32:.2f} x)",
                    flush=True,
                )
            share = 16 * n / nproc  # weights, grads and AdamW moments of this rank's shard
            worst = max(after.values())
            results.append(
                Result(
                    f"{nproc} sharded ranks: (peak RSS - own share) / fp32",
                    (worst - share) / fp32,
                    TARGET_OVER_SHARE,
                    "x",
                    False,
                    f"worst rank {worst / 2**20:.0f} MiB, before {max(before.values()) / 2**20:.0f} MiB",
                )
            )
    return results


if __name__ == "__main__":
    failed = 0
    for result in main(sys.argv[1:]):
        print(result.line(), flush=True)
        failed += not result.passed
    sys.exit(1 if failed else 0)
