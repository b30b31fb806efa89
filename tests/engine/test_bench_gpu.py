"""`python -m bench.gpu` runs its CPU-safe parts here (issue 22): the toy shapes, the MFU and the
sampling-share figures of a real 3-arm run; a GPU session then runs the same script at full size."""

from __future__ import annotations

import math

from bench import gpu


def test_bench_gpu_smoke_on_cpu():
    results = gpu.main(["--device", "cpu", "--tiny", "--no-compile"])
    figures = {r.figure: r for r in results}
    assert any(f.startswith("engine / plain loop step, tiny") for f in figures)
    assert any(f.startswith("MFU full arm / plain loop, tiny") for f in figures)  # FLOP/s ratio: no peak on CPU
    share = figures["sampling + validation share of that run's wall time"]
    assert 0 < share.measured < 1 and "sampling" in share.note
    for arm in ("full", "targeted", "reverse"):
        tokens = figures[f"that run, arm {arm}: tokens/s (run_end)"]
        assert tokens.measured > 0 and not math.isnan(tokens.measured) and tokens.note == "MFU: no peak known"
