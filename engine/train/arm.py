"""One arm of the experiment: its copy of the model, its optimizer, its timer (torch).

Only this arm's trainable parameters are in its optimizer, so frozen tensors get no gradient,
no optimizer state and no weight decay: they never move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.plans.freeze import Plan, apply_trainable
from engine.train.metrics import DWTracker


class StepTimer:
    """Wall time of this arm's own work. On CUDA: events, read later without a host sync per step."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def stop(self, started):
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            return (started, end)
        return time.perf_counter() - started

    @staticmethod
    def seconds(mark) -> float:
        if isinstance(mark, tuple):
            mark[1].synchronize()
            return mark[0].elapsed_time(mark[1]) / 1000.0
        return float(mark)


@dataclass
class Arm:
    name: str
    plan: Plan
    model: Any  # a transformers PreTrainedModel: save_pretrained etc. are not on torch.nn.Module
    optimizer: torch.optim.Optimizer
    tracker: DWTracker | None
    timer: StepTimer
    trainable: frozenset = frozenset()
    stopped: str = ""
    epoch_losses: list = field(default_factory=list)
    t_total: float = 0.0
    t_epoch_start: float = 0.0  # t_total when the current epoch began

    @property
    def active(self) -> bool:
        return not self.stopped


def build_optimizer(model: torch.nn.Module, names: frozenset, lr: float, weight_decay: float):
    """AdamW over `names` only; matrices decay, biases and norms do not."""
    params = dict(model.named_parameters())
    decay = [params[n] for n in sorted(names) if params[n].ndim >= 2]
    rest = [params[n] for n in sorted(names) if params[n].ndim < 2]
    groups = [
        g
        for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
        if g["params"]
    ]
    return torch.optim.AdamW(groups, lr=lr)


def change_trainable(arm: Arm, names: frozenset, weight_decay: float) -> None:
    """A scheduled rule fired: newly trainable tensors join the optimizer from this step;
    newly frozen ones lose their gradient (AdamW skips tensors without one)."""
    params = dict(arm.model.named_parameters())
    added = sorted(names - arm.trainable)
    for n in sorted(arm.trainable - names):
        params[n].grad = None
    apply_trainable(arm.model, names)
    lr = arm.optimizer.param_groups[0]["lr"]
    for n in added:
        wd = weight_decay if params[n].ndim >= 2 else 0.0
        arm.optimizer.add_param_group({"params": [params[n]], "weight_decay": wd, "lr": lr})
    arm.trainable = names


def train_step(
    arm: Arm, batch: torch.Tensor, *, lr: float, rng_seed: int, grad_clip: float, autocast_dtype, measure: bool
):
    """One optimizer step of one arm on `batch`; returns (loss tensor on device, timer mark)."""
    for group in arm.optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(rng_seed)  # same dropout masks in every arm for this step
    mark = arm.timer.start()
    with torch.autocast(batch.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = arm.model(input_ids=batch, labels=batch).loss
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for g in arm.optimizer.param_groups for p in g["params"]], grad_clip)
    if measure and arm.tracker is not None:
        arm.tracker.snapshot()
    arm.optimizer.step()
    arm.optimizer.zero_grad(set_to_none=True)
    return loss.detach(), arm.timer.stop(mark)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, val: torch.Tensor, batch_size: int, device, autocast_dtype) -> float:
    """Mean loss over the validation blocks (eval mode, no dropout); nan when there are none."""
    if len(val) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(val), batch_size):
        batch = val[i : i + batch_size].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
        count += len(batch)
    model.train(was_training)
    return total / count


def state_bytes(arm: Arm) -> int:
    """Bytes of this arm's gradients and optimizer state (the memory a plan costs beyond weights)."""
    grads = sum(p.numel() * p.element_size() for p in arm.model.parameters() if p.requires_grad)
    state = sum(
        t.numel() * t.element_size() for s in arm.optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    return grads + state
