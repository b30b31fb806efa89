"""Peak host memory per rank of a distributed run (issue 22, "host memory that scales"): a random GPT-2 of
~124 M parameters (n_layer 12, n_embd 768, GPT-2's vocabulary) trained 2 steps over 2 and 4 gloo ranks, one
`full` arm sharded over every rank (`--shards N`). Each run is a real `freeze-tui run --nproc-per-node N`;
this process polls every rank's VmHWM (/proc/PID/status, the peak resident set) until it exits, and prints
it against the model's fp32 size. Side by side, three runs per world size:

* before: every rank loads the whole model (FREEZE_TUI_WHOLE_LOAD=1) with glibc's own mmap threshold
  (FREEZE_TUI_GLIBC_MALLOC=1), as before issue 22;
* own weights: each rank reads only its own shards (engine.dist.rank_load), glibc's threshold;
* after: own weights and the fixed threshold (engine.dist.host_alloc), the default.

    python -m bench.host_memory [NPROC ...]        (default: 2 4; about 15 minutes on 2 busy CPU cores)
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
from tests.tiny_models import WORDS

ROOT = Path(__file__).resolve().parents[1]
# every rank held the whole model twice (the shared initial copy and its arm's) before it was sharded;
# now it holds its 1/N: its worst peak must drop by at least one whole model's fp32 bytes
TARGET_SAVED_MODELS = 1.0


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
    path.write_text(" ".join(rng.choice(WORDS[2:26]) for _ in range(4000)))  # the plain words the tests use


def vm_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


VARIANTS = {  # name: the environment that selects it
    "before": {"FREEZE_TUI_WHOLE_LOAD": "1", "FREEZE_TUI_GLIBC_MALLOC": "1"},
    "own weights": {"FREEZE_TUI_GLIBC_MALLOC": "1"},
    "after": {},
}


def measure(model: Path, corpus: Path, nproc: int, variant: str, root: Path) -> dict[int, int]:
    """{rank: peak RSS bytes} of one run; the run must finish."""
    import psutil

    cmd = [sys.executable, "-m", "freeze_tui", "run", "--headless", "--model", str(model), "--data", str(corpus)]
    cmd += ["--arm", "full=full", "--shards", str(nproc), "--nproc-per-node", str(nproc), "--max-steps", "2"]
    cmd += ["--batch-size", str(nproc), "--block-size", "32", "--samples", "0", "--epochs", "1"]
    cmd += ["--log-path", str(root / f"run-{nproc}-{variant.replace(' ', '-')}.jsonl")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TERM": "dumb"}
    for name in ("FREEZE_TUI_WHOLE_LOAD", "FREEZE_TUI_GLIBC_MALLOC", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(name, None)
    env.update(VARIANTS[variant])
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
            peaks = {variant: measure(model, corpus, nproc, variant, root) for variant in VARIANTS}
            before, after = peaks["before"], peaks["after"]
            for rank in sorted(after):
                row = ", ".join(
                    f"{v} {peaks[v][rank] / 2**20:.0f} MiB ({peaks[v][rank] / fp32:.2f} x)" for v in VARIANTS
                )
                print(f"  {nproc} ranks, rank {rank}: peak RSS {row}", flush=True)
            worst_before, worst_after = max(before.values()), max(after.values())
            results.append(
                Result(
                    f"{nproc} sharded ranks: worst peak RSS before - after",
                    (worst_before - worst_after) / fp32,
                    TARGET_SAVED_MODELS,
                    "x fp32",
                    True,
                    f"{worst_before / 2**20:.0f} MiB before, {worst_after / 2**20:.0f} MiB after; "
                    f"the rank's own share of weights, grads and AdamW {16 * n / nproc / 2**20:.0f} MiB",
                )
            )
    return results


if __name__ == "__main__":
    failed = 0
    for result in main(sys.argv[1:]):
        print(result.line(), flush=True)
        failed += not result.passed
    sys.exit(1 if failed else 0)
