"""`plan --measure`: time a few real steps of every arm on the chosen devices, batch, block and dtype, and
set the measured saving r next to the FLOP model's (torch).

The steps are the engine's own (`train_step`, each arm on its device, timed the same way as in a run);
the batches are random token ids, since a step's time does not depend on which tokens it sees. The arm
order rotates every step so no arm always runs first. r is measured against the same baseline as a run's
Time view and report: the arm named `full`, else the first arm.
"""

from __future__ import annotations

import copy

import torch

from engine.core.errors import FreezeTuiError
from engine.plans.plan_record import ArmMeasured, PlanMeasured
from engine.plans.planned import PlannedRun
from engine.plans.roles import build_layout
from engine.run.config import RunConfig
from engine.train.arm import Arm, StepTimer, build_optimizer, make_scaler, train_step
from engine.train.devices import copy_to, on_device
from engine.train.kernels import compiled, enable_checkpointing, optimizer_kind
from engine.train.kinds import torch_kind

GAP_NOTE = (
    "the FLOP model counts matmul work only; memory-bound work (norms, softmax, GELU, saved activations, "
    "the optimizer's pass over the weights) and launch overheads cost every arm alike, so the measured r "
    "on your hardware is what a run will see"
)
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_arm(model, name: str, plan, device: torch.device, cfg: RunConfig, lr: float) -> Arm:
    """An arm as a run builds it: its own copy on its device, only its trainable tensors in AdamW."""
    copy_ = copy.deepcopy(model).to(device)
    copy_.train(cfg.dropout == "same")
    if cfg.activation_checkpointing:
        enable_checkpointing(copy_, name)
    built = torch_kind(plan).prepare(copy_, plan, build_layout(model), seed=cfg.seed, splits=(), monitor=False)
    copy_, names = built.model, built.trainable
    kind = optimizer_kind([device])
    optimizer = build_optimizer(copy_, names, lr, cfg.weight_decay, fused=kind == "fused", foreach=kind == "foreach")
    arm = Arm(name, plan, copy_, optimizer, None, StepTimer(device), trainable=names, device=device)
    arm.scaler = make_scaler(cfg.dtype, device)
    if cfg.compile:
        arm.compiled = compiled(copy_)
    return arm


def time_arms(arms: list[Arm], batch: torch.Tensor, *, steps: int, warmup: int, cfg: RunConfig) -> dict[str, float]:
    """Mean seconds per step of each arm over `steps` steps after `warmup` uncounted ones."""
    marks: dict[str, list] = {a.name: [] for a in arms}
    batches = copy_to(batch, [a.device for a in arms])
    for step in range(warmup + steps):
        k = step % len(arms)
        for arm in arms[k:] + arms[:k]:
            with on_device(arm.device):
                _, mark = train_step(
                    arm,
                    batches[arm.device],
                    lr=1e-5,
                    rng_seed=step,
                    grad_clip=cfg.grad_clip,
                    autocast_dtype=AUTOCAST[cfg.dtype],
                    measure=False,
                )
            if step >= warmup:
                marks[arm.name].append(mark)
    return {name: sum(StepTimer.seconds(m) for m in ms) / len(ms) for name, ms in marks.items()}


def measure_plan(
    cfg: RunConfig, planned: PlannedRun, *, steps: int, warmup: int = 2
) -> tuple[PlanMeasured, dict[str, ArmMeasured]]:
    """Load the model and time the planned arms on their devices: what was measured, and per arm its
    device, mean step time, measured r and FLOP-model r."""
    from engine.plans.describe import flop_cost
    from engine.train.models import check_block_size, load_model

    if steps < 1:
        raise FreezeTuiError(f"--steps must be at least 1, got {steps}")
    loaded = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code, with_tokenizer=False)
    check_block_size(cfg.block_size, loaded.model.config)
    placement = {name: torch.device(planned.placement[name]) for name, _ in planned.plans}
    arms = [build_arm(loaded.model, name, plan, placement[name], cfg, 1e-5) for name, plan in planned.plans]
    vocab = loaded.model.get_input_embeddings().num_embeddings
    batch = torch.randint(0, vocab, (cfg.batch_size, cfg.block_size), generator=torch.Generator().manual_seed(cfg.seed))
    times = time_arms(arms, batch, steps=steps, warmup=warmup, cfg=cfg)
    baseline = "full" if "full" in times else arms[0].name
    base = times[baseline]
    per_arm = {
        name: ArmMeasured(
            device=str(placement[name]),
            t_step=times[name],
            r=(base - times[name]) / base if base > 0 else float("nan"),
            r_flop=flop_cost(plan, planned.layout, seq_len=cfg.block_size)[1],
        )
        for name, plan in planned.plans
    }
    return PlanMeasured(steps=steps, warmup=warmup, baseline=baseline, note=GAP_NOTE), per_arm
