"""Run every benchmark: `python -m bench` (about 10 minutes on 2 CPU cores). Each line: figure,
measured, target, PASS/FAIL."""

from __future__ import annotations

import sys
import time

from bench import (
    app_load,
    corpus_memory,
    corpus_tokens,
    cuda_sync,
    freeze_saving,
    heartbeat_overhead,
    log_throughput,
    monitor_overhead,
    startup,
)

SUITES = [
    ("start-up", lambda: startup.main([])),
    ("log throughput and memory", lambda: log_throughput.log_throughput() + log_throughput.state_memory()),
    ("app under load", lambda: app_load.main([])),
    ("monitoring overhead", lambda: monitor_overhead.main([])),
    ("heartbeat overhead", lambda: heartbeat_overhead.main([])),
    ("CUDA host syncs", lambda: cuda_sync.main([])),
    ("freeze saving and memory", lambda: freeze_saving.main([])),
    ("large corpus: token file and cache", lambda: corpus_tokens.main([])),
    ("corpus memory, tokenized and cached", lambda: corpus_memory.main([])),
]


def main() -> int:
    failed = 0
    for title, run in SUITES:
        start = time.perf_counter()
        print(f"== {title}", flush=True)
        for result in run():
            print(result.line(), flush=True)
            failed += not result.passed
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
