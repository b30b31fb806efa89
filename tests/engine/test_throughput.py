"""Throughput per arm and time off the steps in run_end (issue 22): tokens/s and MFU from the arm's own
step times and its FLOP-model FLOPs, the peak from --peak-tflops (none on CPU), shown by `report`."""

from __future__ import annotations

import math

import msgspec
import pytest

from engine.log.state import RunState
from engine.log.throughput import arm_throughput, read_record
from engine.plans.flops import step_flops
from engine.plans.roles import build_layout
from engine.train.models import load_model
from freeze_tui.draw.report import markdown_report
from tests.engine.test_run import config, run_session

ARMS = (("full", "full"), ("targeted", "targeted"))


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("throughput")
    _, events = run_session(config(tiny, max_steps=4, arms=ARMS, peak_tflops=0.5), root / "given.jsonl")
    return {"given": events}


def test_run_end_has_tokens_per_s_and_phase_times(runs):
    events = runs["given"]
    summary = events[-1].summary
    steps = [e for e in events if e.kind == "step"]
    for name in ("full", "targeted"):
        seconds = sum(s.arms[name].dt for s in steps)
        assert summary["arms"][name]["tokens_per_s"] == pytest.approx(len(steps) * 4 * 16 / seconds)
    assert summary["sampling_s"] > 0 and summary["validation_s"] > 0


def test_no_mfu_without_a_peak(runs):
    """On CPU (no --peak-tflops) the record has no peak: MFU is null, not a made-up figure."""
    import torch

    from engine.log.throughput import throughput_extras
    from engine.train.setup import device_peak

    assert device_peak(torch.device("cpu"), "fp32", None)[0] is None
    assert device_peak(torch.device("cpu"), "fp32", 2.0) == (2.0, "--peak-tflops 2")
    state = RunState().apply_all(runs["given"])
    record = state.settings.throughput
    assert record is not None
    no_peak = msgspec.structs.replace(record, peak_tflops={"full": None, "targeted": None})
    state.settings = msgspec.structs.replace(state.settings, throughput=no_peak)
    figures = arm_throughput(state, "full")
    assert figures is not None and figures.mfu is None and figures.tokens_per_s > 0
    assert throughput_extras(state)["mfu"] == {"full": None, "targeted": None}


def test_mfu_is_flop_model_flops_over_the_given_peak(runs, tiny):
    events = runs["given"]
    state = RunState().apply_all(events)
    record = read_record(state)
    assert record is not None
    layout = build_layout(load_model(str(tiny[0])).model)
    full = step_flops(layout, set(layout.names), seq_len=16).total
    assert record.flops_per_token["full"] == pytest.approx(full)
    assert record.flops_per_token["targeted"] < full
    for name in ("full", "targeted"):
        figures = arm_throughput(state, name)
        assert figures is not None and figures.mfu is not None
        expected = record.flops_per_token[name] * figures.tokens_per_s / 0.5e12
        assert figures.mfu == pytest.approx(expected) and events[-1].summary["arms"][name]["mfu"] == pytest.approx(
            expected
        )
    assert "Throughput: full " in markdown_report(state) and "--peak-tflops 0.5" in markdown_report(state)


def test_old_logs_have_no_figures():
    from pathlib import Path

    from engine.log.runlog import read_events

    root = Path(__file__).resolve().parents[2]
    state = RunState().apply_all(read_events(root / "sample_runs" / "demo-full-vs-targeted.jsonl"))
    assert read_record(state) is None and all(arm_throughput(state, n) is None for n in state.arms)
    assert not math.isnan(state.arm_time("full"))


@pytest.mark.parametrize(
    ("name", "dtype", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.5),
        ("NVIDIA H100 PCIe", "bf16", 756.5),
        ("NVIDIA H200", "fp32", 67.0),
        ("NVIDIA A100-SXM4-40GB", "fp16", 312.0),
        ("NVIDIA A10G", "bf16", 70.0),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
        ("NVIDIA L40S", "bf16", 362.05),
        ("Tesla V100-SXM2-16GB", "bf16", None),
        ("Some Future GPU", "bf16", None),
    ],
)
def test_peak_table_by_nvml_name(name, dtype, peak):
    from engine.run.peaks import peak_tflops

    assert peak_tflops(name, dtype) == peak
