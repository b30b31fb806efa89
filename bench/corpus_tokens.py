"""A large corpus (issue 14, case 9): a synthetic 200 MB text tokenized into the token file with the
demo tokenizer, peak RSS above the loaded model, then the cached second start. Each measurement runs
in a fresh process with its own empty cache folder: `python -m bench.corpus_tokens [MB]`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.result import Result

CHILD = """
import json, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from engine.train.models import load_model
tokenizer = load_model(None).tokenizer
base = rss("VmRSS:")
start = time.perf_counter()
from engine.core.textfiles import read_corpus
from engine.train.data import tokenize_corpus
data = tokenize_corpus(read_corpus((sys.argv[1],)), tokenizer, block_size=128, batch_size=8, val_fraction=0.1,
                       seed=0, common_k=100)
print(json.dumps({"seconds": time.perf_counter() - start, "base": base, "peak": rss("VmHWM:"),
                  "n_tokens": data.n_tokens}))
"""


def write_corpus(path: Path, megabytes: int) -> None:
    """English-like lines from the demo's own fine-tuning text, shuffled so BPE sees varied input."""
    from engine.demo.corpus import finetune_text

    lines = [line for line in finetune_text().splitlines() if line.strip()]
    rng, target = random.Random(0), megabytes * 1_000_000
    with open(path, "w") as f:
        written = 0
        while written < target:
            block = "\n".join(rng.sample(lines, 2000)) + "\n"
            written += f.write(block)


def measure(path: Path, cache: str, child: str = CHILD) -> dict:
    """Run `child` (Python source; prints one JSON line last) on `path` in a fresh process with cache `cache`."""
    env = {**os.environ, "FREEZE_TUI_CACHE": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", child, str(path)], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> list[Result]:
    megabytes = int(argv[0]) if argv else 200
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        write_corpus(corpus, megabytes)
        first = measure(corpus, tmp + "/cache")
        second = measure(corpus, tmp + "/cache")
    above = (first["peak"] - first["base"]) / 2**30
    note = f"{megabytes} MB, {first['n_tokens'] / 1e6:.1f} M tokens in {first['seconds']:.0f} s"
    return [
        Result(f"{megabytes} MB corpus: peak RSS above model (GB)", above, 1.5, "GB", False, note),
        Result("cached second start: tokens ready (s)", second["seconds"], 5.0, "s", False),
    ]


if __name__ == "__main__":
    for result in main(sys.argv[1:]):
        print(result.line())
