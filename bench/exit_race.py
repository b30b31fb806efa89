"""How often a finished distributed run exits with anything but 0: the rare "terminate called without
an active exception" (exit 1 or 134) after the log ended `run_end finished` (issue 22 / CI). Runs M
short gloo runs (tiny GPT-2, `run --nproc-per-node N --headless`, or plain torchrun with `--torchrun`),
P at a time, beside B CPU burners (the race shows under load), and counts the runs whose log finished
but whose exit code was not 0, or whose stderr says "terminate called".

    python -m bench.exit_race [--runs 40 --parallel 2 --burners 1 --nproc 2 --torchrun]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.result import Result

ROOT = Path(__file__).resolve().parents[1]


def burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def make_assets(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    from tests.tiny_models import WORDS, make_tiny_model

    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(2500)))
    return make_tiny_model(root, "gpt2", n_layer=2), corpus


def command(model: Path, corpus: Path, log: Path, nproc: int, torchrun: bool) -> list[str]:
    names = ("full=full", "targeted=targeted", "mlp=+mlp", "late=+mlp[1]")
    arms = [a for name in names[:nproc] for a in ("--arm", name)]
    run = ["run", "--headless", "--log-path", str(log), "--model", str(model), "--data", str(corpus), *arms]
    run += ["--epochs", "1", "--max-steps", "3", "--batch-size", "4", "--block-size", "16", "--samples", "0"]
    if torchrun:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
        return [sys.executable, *launcher, "-m", "freeze_tui", *run]
    return [sys.executable, "-m", "freeze_tui", *run, "--nproc-per-node", str(nproc)]


def finished(log: Path) -> bool:
    from engine.log.events import RunEnd
    from engine.log.runlog import read_events

    try:
        events = list(read_events(log))
    except Exception:
        return False
    return bool(events) and isinstance(events[-1], RunEnd) and events[-1].status == "finished"


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--burners", type=int, default=1)
    parser.add_argument("--nproc", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--torchrun", action="store_true", help="plain torchrun instead of --nproc-per-node")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for b in burners:
        b.start()
    bad, done, start = 0, 0, time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model, corpus = make_assets(root)
            pending = list(range(args.runs))
            while pending:
                batch, pending = pending[: args.parallel], pending[args.parallel :]
                procs = {}
                for i in batch:
                    log = root / f"run{i}.jsonl"
                    cmd = command(model, corpus, log, args.nproc, args.torchrun)
                    procs[i] = (
                        log,
                        subprocess.Popen(
                            cmd,
                            cwd=root,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            text=True,
                        ),
                    )
                for i, (log, proc) in procs.items():
                    _, err = proc.communicate(timeout=600)
                    ok_log = finished(log)
                    flaky = ok_log and (proc.returncode != 0 or "terminate called" in err)
                    done += 1
                    bad += flaky
                    if flaky or not ok_log:
                        tail = err.strip()[-400:]
                        print(f"run {i}: exit {proc.returncode}, log finished {ok_log}: {tail}", flush=True)
                print(f"{done}/{args.runs} runs, {bad} bad exits ({time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        stop.set()
    how = "torchrun" if args.torchrun else "--nproc-per-node"
    figure = f"finished runs not exiting 0 ({how} {args.nproc}, {args.burners} burner(s))"
    return [Result(figure, bad, 0, unit="runs", higher_is_better=False, note=f"of {done}")]


if __name__ == "__main__":
    for result in main():
        print(result.line())
