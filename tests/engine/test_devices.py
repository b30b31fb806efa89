"""Several devices in one process, the memory plan before loading, plan --measure, fp16 with a GradScaler
(CPU, tiny models, seconds)."""

from __future__ import annotations

import json
import math
import resource

import torch
from click.testing import CliRunner

from engine.log.runlog import read_events
from engine.run.config import RunConfig
from engine.train import devices
from tests.engine.test_cli_errors import files, one_error_line, run_args, run_main  # noqa: F401 (fixture)
from tests.engine.test_run import config, run_session

PARTS = {"weights", "grads", "optimizer", "activations", "total"}


def steps_of(events) -> list[dict]:
    return [e.arms for e in events if e.kind == "step"]


def test_two_cpu_devices_train_exactly_like_one(tiny, tmp_path):
    _, one = run_session(config(tiny, max_steps=4, samples=1, device="cpu"), tmp_path / "one.jsonl")
    _, two = run_session(config(tiny, max_steps=4, samples=1, device="cpu,cpu"), tmp_path / "two.jsonl")
    assert [e.kind for e in two][-1] == "run_end" and two[-1].status == "finished"
    losses = [{a: v.loss for a, v in s.items()} for s in steps_of(one)]
    assert losses == [{a: v.loss for a, v in s.items()} for s in steps_of(two)]
    start = next(e for e in two if e.kind == "run_start")
    assert [a.device for a in start.arms] == ["cpu", "cpu", "cpu"]
    for arm in start.arms:
        assert set(arm.memory) == PARTS and arm.memory["total"] == sum(arm.memory[k] for k in PARTS - {"total"})
    full, targeted = start.arms[0].memory, start.arms[1].memory
    assert full["weights"] == targeted["weights"] and full["grads"] > targeted["grads"]
    assert not [e for e in two if e.kind == "warning" and "device models" in e.message]


def test_placement_is_round_robin_and_mixed_models_warn():
    cpu, meta = torch.device("cpu"), torch.device("meta")
    placed = devices.place(["a", "b", "c"], [cpu, meta])
    assert placed == {"a": cpu, "b": meta, "c": cpu}
    assert devices.mixed_devices_warning({"a": cpu, "b": cpu}) is None
    line = devices.mixed_devices_warning(placed)
    assert line and "a on cpu (cpu), b on meta (meta)" in line and "do not compare fairly" in line
    assert devices.resolve_devices("cpu,cpu") == [cpu, cpu]


def test_read_floats_keeps_the_order():
    values = [torch.tensor(1.5), torch.tensor(2.0, dtype=torch.float64), torch.tensor(True)]
    assert devices.read_floats(values) == [1.5, 2.0, 1.0]
    assert devices.read_floats([]) == []


def test_memory_limit_refuses_before_the_weights_load(files, capsys, monkeypatch, tmp_path):  # noqa: F811
    import engine.train.models as models

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded before the memory check")

    monkeypatch.setattr(models, "load_model", no_loading)
    monkeypatch.chdir(files)
    log = tmp_path / "run.jsonl"
    code, out, err = run_main(run_args("--memory-limit", "1MB", model="gpt2", log=str(log)), capsys)
    line = one_error_line(err, out, code, "arm targeted does not fit on cpu", "the --memory-limit there is 1.0 MB")
    assert "--batch-size" in line
    kinds = [e.kind for e in read_events(log)]
    assert "run_start" not in kinds and "step" not in kinds


def plan_json(*args: str) -> dict:
    from freeze_tui.cli.main import cli

    result = CliRunner().invoke(cli, ["plan", "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_json_gives_memory_and_placement_for_the_demo():
    desc = plan_json("--arm", "full", "--arm", "targeted", "--device", "cpu,cpu", "--batch-size", "4")
    assert desc["placement"] == {"full": "cpu", "targeted": "cpu"}
    for arm in desc["arms"]:
        assert set(arm["memory"]) == PARTS and arm["device"] == "cpu"
    assert desc["devices"]["cpu"]["needed"] == sum(a["memory"]["total"] for a in desc["arms"])
    assert desc["settings"] == {"batch_size": 4, "block_size": 128, "dtype": "fp32"}


def test_plan_json_for_a_7b_config_allocates_no_weights(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
    ).save_pretrained(tmp_path)  # config.json only: no weights, no tokenizer
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    desc = plan_json("--model", str(tmp_path), "--arm", "full", "--arm", "targeted", "--dtype", "bf16")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1000  # the weights alone would be 27 GB
    n = desc["model"]["n_params"]
    assert 6.5e9 < n < 7e9
    full, targeted = (a["memory"] for a in desc["arms"])
    assert full["weights"] == 4 * n and full["grads"] == 4 * n and full["optimizer"] == 8 * n
    assert targeted["grads"] == 4 * desc["arms"][1]["trainable"]
    line = plan_json("--model", str(tmp_path), "--memory-limit", "24GB")["memory_problem"]
    assert line.startswith("arm full does not fit on cpu")


def test_plan_measure_times_real_steps(tiny):
    model, _ = tiny
    args = ("--model", str(model), "--arm", "full", "--arm", "targeted", "--block-size", "16", "--batch-size", "2")
    desc = plan_json(*args, "--measure", "--steps", "1")
    assert desc["measured"]["baseline"] == "full" and "memory-bound" in desc["measured"]["note"]
    full, targeted = (a["measured"] for a in desc["arms"])
    assert full["t_step"] > 0 and targeted["t_step"] > 0 and full["r"] == 0.0
    assert targeted["r_flop"] == desc["arms"][1]["r_pred"]
    from freeze_tui.cli.main import cli

    text = CliRunner().invoke(cli, ["plan", *args, "--measure", "--steps", "1"]).output
    assert "r measured" in text and "why they differ" in text and "memory plan" in text


def test_fp16_trains_with_a_grad_scaler(tiny, tmp_path):
    session, events = run_session(config(tiny, max_steps=3, samples=0, dtype="fp16"), tmp_path / "fp16.jsonl")
    assert events[-1].status == "finished"
    assert all(math.isfinite(v.loss) for s in steps_of(events) for v in s.values())


def test_an_overflowing_fp16_step_is_skipped_and_logged(tiny, tmp_path, monkeypatch):
    import engine.train.experiment as experiment

    # a scale of 2^100 overflows fp16 gradients: the scaler must skip those steps and say so
    monkeypatch.setattr(
        experiment, "make_scaler", lambda dtype, device: torch.amp.GradScaler("cpu", init_scale=2.0**100)
    )
    cfg = config(tiny, max_steps=2, samples=0, dtype="fp16", arms=(("full", "full"),))
    session, events = run_session(cfg, tmp_path / "skip.jsonl")
    skipped = [e for e in events if e.kind == "warning" and "skipped this optimizer step" in e.message]
    assert [(e.arm, e.message.endswith(f"step {i}")) for i, e in enumerate(skipped)] == [("full", True)] * 2
    start = next(e for e in events if e.kind == "run_start")
    assert start.arms[0].init_checksum


def test_fp16_scaler_skips_without_touching_the_weights(tiny):
    from engine.plans.freeze import resolve_plan
    from engine.train.measure import build_arm
    from engine.train.models import load_model

    model, _ = tiny
    loaded = load_model(str(model), with_tokenizer=False)
    cfg = RunConfig(dtype="fp16")
    arm = build_arm(loaded.model, "full", resolve_plan("full", "full", loaded.layout), torch.device("cpu"), cfg, 1e-2)
    arm.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    before = [p.detach().clone() for p in arm.model.parameters()]
    batch = torch.randint(0, 200, (2, 8))
    from engine.train.arm import train_step

    train_step(arm, batch, lr=1e-2, rng_seed=0, grad_clip=1.0, autocast_dtype=torch.float16, measure=False)
    assert bool(arm.skipped) and arm.scaler.get_scale() < 2.0**100
    assert all(torch.equal(a, b) for a, b in zip(before, arm.model.parameters()))
    arm.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    train_step(arm, batch, lr=1e-2, rng_seed=0, grad_clip=0.0, autocast_dtype=torch.float16, measure=False)
    assert not bool(arm.skipped)
    assert not all(torch.equal(a, b) for a, b in zip(before, arm.model.parameters()))


def test_gpu_bench_skips_cleanly_without_cuda_and_rotates_its_runners(capsys):
    import bench.gpu as gpu

    if not torch.cuda.is_available():
        assert gpu.main([]) == []
        assert "skipped, no CUDA device visible" in capsys.readouterr().out
    order: list[str] = []
    runners = {name: (lambda step, name=name: order.append(name) or 0.5) for name in ("a", "b", "c")}
    times = gpu.interleaved(runners, steps=2, warmup=1)
    assert times == {"a": 0.5, "b": 0.5, "c": 0.5}
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
