"""Start-up: `freeze-tui --help` wall time, and which heavy modules the log tools import."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.result import Result

HEAVY = ("torch", "transformers", "textual")


def help_seconds(runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "freeze_tui", "--help"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def heavy_imports(module: str) -> list[str]:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return out.split()


def main(argv: list[str] | None = None) -> list[Result]:
    results = [
        Result(
            "freeze-tui --help (s, best of 5)",
            help_seconds(),
            0.25,
            "s",
            higher_is_better=False,
            note="heavy modules after `import freeze_tui.cli.main`: "
            + (", ".join(heavy_imports("freeze_tui.cli.main")) or "none"),
        )
    ]
    for module in ("engine.log.sources", "freeze_tui.app.app"):
        loaded = [m for m in heavy_imports(module) if m != "textual"]
        results.append(
            Result(
                f"torch/transformers imported by {module}",
                len(loaded),
                0,
                "modules",
                higher_is_better=False,
                note=", ".join(loaded) or "none",
            )
        )
    return results


if __name__ == "__main__":
    for result in main():
        print(result.line())
