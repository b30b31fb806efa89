"""One arm of the experiment: its copy of the model, its optimizer, its timer (torch).

Only this arm's trainable parameters are in its optimizer, so frozen tensors get no gradient,
no optimizer state and no weight decay: they never move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from engine.plans.freeze import apply_trainable
from engine.plans.kinds import ArmPlan
from engine.train.devices import copy_to
from engine.train.metrics import DWTracker


class StepTimer:
    """Wall time of this arm's own work. On CUDA: events, read later without a host sync per step."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def start(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record(torch.cuda.current_stream(self.device))  # on this arm's own device
            return ev
        return time.perf_counter()

    def stop(self, started):
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream(self.device))
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
    plan: ArmPlan
    model: Any  # a transformers PreTrainedModel: save_pretrained etc. are not on torch.nn.Module
    optimizer: torch.optim.Optimizer
    tracker: DWTracker | None
    timer: StepTimer
    trainable: frozenset = frozenset()
    stopped: str = ""
    device: torch.device = torch.device("cpu")
    scaler: torch.amp.GradScaler | None = None  # under --dtype fp16
    skipped: torch.Tensor | None = None  # after an fp16 step: a device bool, true when the scaler skipped it
    compiled: Any = None  # --compile: torch.compile of `model`, used for the training steps only

    @property
    def active(self) -> bool:
        return not self.stopped


def build_optimizer(
    model: torch.nn.Module,
    names: frozenset,
    lr: float,
    weight_decay: float,
    *,
    fused: bool = False,
    foreach: bool | None = None,
):
    """AdamW over `names` only; matrices decay, biases and norms do not. `fused` (every arm on CUDA,
    engine.train.kernels): one kernel per step, and the GradScaler hands the skip decision to it instead
    of reading it on the host each step; `foreach` otherwise; the same for every arm of a run."""
    params = dict(model.named_parameters())
    decay = [params[n] for n in sorted(names) if params[n].ndim >= 2]
    rest = [params[n] for n in sorted(names) if params[n].ndim < 2]
    groups = [
        g
        for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
        if g["params"]
    ]
    return torch.optim.AdamW(groups, lr=lr, fused=True if fused else None, foreach=None if fused else foreach)


def make_scaler(dtype: str, device: torch.device):
    """A GradScaler for fp16 autocast (small gradients would underflow to 0 without one); None otherwise."""
    return torch.amp.GradScaler(device.type) if dtype == "fp16" else None


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
        model = arm.compiled if arm.compiled is not None else arm.model
        loss = model(input_ids=batch, labels=batch).loss
    if arm.scaler is None:
        loss.backward()
        _clip(arm, grad_clip)
    else:  # PyTorch's AMP recipe: scale, backward, unscale, clip, step (skipped on inf/nan), update
        arm.scaler.scale(loss).backward()
        arm.scaler.unscale_(arm.optimizer)
        arm.skipped = ~torch.isfinite(_clip(arm, grad_clip) if grad_clip > 0 else _grad_norm(arm))
    if measure and arm.tracker is not None:
        arm.tracker.snapshot()
    if arm.scaler is None:
        arm.optimizer.step()
    else:
        arm.scaler.step(arm.optimizer)
        arm.scaler.update()
    arm.optimizer.zero_grad(set_to_none=True)
    return loss.detach(), arm.timer.stop(mark)


def _trained(arm: Arm) -> list:
    return [p for g in arm.optimizer.param_groups for p in g["params"] if p.grad is not None]


def _clip(arm: Arm, grad_clip: float):
    if grad_clip > 0:
        return torch.nn.utils.clip_grad_norm_(_trained(arm), grad_clip)
    return None


def _grad_norm(arm: Arm) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in _trained(arm)])


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, val: torch.Tensor, batch_size: int, device, autocast_dtype
) -> tuple[float, list[float]]:
    """Mean loss over the validation blocks (eval mode, no dropout) and the mean of each batch (for
    paired differences between arms); (nan, []) when there are none."""
    if len(val) == 0:
        return float("nan"), []
    was_training = model.training
    model.eval()
    losses = []
    for i in range(0, len(val), batch_size):
        batch = copy_to(val[i : i + batch_size], [device])[device]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            losses.append(model(input_ids=batch, labels=batch, use_cache=False).loss.float())
    model.train(was_training)
    values = torch.stack(losses).tolist()  # one read per pass, not per batch
    sizes = [len(val[i : i + batch_size]) for i in range(0, len(val), batch_size)]
    return sum(v * n for v, n in zip(values, sizes)) / len(val), values


def state_bytes(arm: Arm) -> int:
    """Bytes of this arm's gradients and optimizer state (the memory a plan costs beyond weights)."""
    grads = sum(p.numel() * p.element_size() for p in arm.model.parameters() if p.requires_grad)
    state = sum(
        t.numel() * t.element_size() for s in arm.optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    return grads + state
