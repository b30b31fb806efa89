"""Peak memory of the corpus path (issue 21, item 26): a synthetic corpus loaded with the demo tokenizer
the way a run prepares its data (token file, blocks, split, S, the base rate of S), first
tokenized, then from the cache. Each measurement is a fresh process (peak RSS = its VmHWM, the demo model
loaded included); `python -m bench.corpus_memory [MB ...]` (default 20 and 200)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus_tokens import measure, write_corpus
from bench.result import Result

TARGET_GB = {20: 1.2, 200: 1.5}  # the targets: whole process, cached or not

CHILD = """
import json, sys
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from engine.core.textfiles import read_corpus
from engine.train.data import common_base_rate, tokenize_corpus
from engine.train.models import load_model
tokenizer = load_model(None).tokenizer
data = tokenize_corpus(read_corpus((sys.argv[1],)), tokenizer, block_size=128, batch_size=8, val_fraction=0.1,
                       seed=0, common_k=100)
common_base_rate(data.val, frozenset(data.common))
print(json.dumps({"peak": rss("VmHWM:"), "n_tokens": data.n_tokens}))
"""


def main(argv: list[str]) -> list[Result]:
    results = []
    for megabytes in [int(a) for a in argv] or [20, 200]:
        target = TARGET_GB.get(megabytes, 1.5)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus.txt"
            write_corpus(corpus, megabytes)
            for label in ("tokenized", "cached"):
                found = measure(corpus, tmp + "/cache", CHILD)
                note = f"{found['n_tokens'] / 1e6:.1f} M tokens"
                results.append(Result(f"{megabytes} MB corpus, {label}: peak RSS (GB)", found["peak"] / 2**30, target,
                                      "GB", False, note))  # fmt: skip
    return results


if __name__ == "__main__":
    for result in main(sys.argv[1:]):
        print(result.line(), flush=True)
