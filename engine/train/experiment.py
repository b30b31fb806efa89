"""The paired experiment: set up arms from one model, then a step-locked loop over them (torch).

Every step the same batch tensor goes to every arm in turn; values are read off the device only
at flush time (every step on CPU, in batches on CUDA) and leave as events through `emit`.
"""

from __future__ import annotations

import copy
import hashlib
import math

import torch

from engine.config import RunConfig
from engine.control import Control
from engine.errors import FreezeTuiError
from engine.log import events as ev
from engine.plans.freeze import apply_trainable
from engine.plans.lora import LoraPlan
from engine.stats import common_share, mean_var
from engine.train.arm import (
    Arm,
    StepTimer,
    build_optimizer,
    change_trainable,
    make_scaler,
    state_bytes,
    train_step,
    validation_loss,
)
from engine.train.data import batch_order
from engine.train.devices import copy_to, mixed_devices_warning, on_device, read_floats
from engine.train.lora import base_named_parameters, is_lora, lora_parts, save_lora
from engine.train.metrics import DWTracker
from engine.train.retain import arm_measures
from engine.train.setup import Setup

SKIPPED = "fp16 gradients overflowed; the GradScaler skipped this optimizer step and lowered its scale"


def weights_checksum(model: torch.nn.Module) -> str:
    h = hashlib.blake2b(digest_size=12)
    for name, p in sorted(base_named_parameters(model)):  # a LoRA arm: its base weights (B = 0)
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def token_texts(tokenizer, seq: list[int]) -> list[str]:
    """The text each token adds. A byte-level token that ends inside a multi-byte character adds
    nothing; the token that completes it carries the whole character (no stray U+FFFD)."""
    texts, shown = [], ""
    for i in range(len(seq)):
        text = tokenizer.decode(seq[: i + 1])
        if text.endswith("\ufffd") and i < len(seq) - 1:
            texts.append("")
            continue
        texts.append(text[len(shown) :] if text.startswith(shown) else text)
        shown = text
    return texts


class Experiment:
    def __init__(self, cfg: RunConfig, setup: Setup, emit, control: Control) -> None:
        self.cfg, self.s, self.emit, self.control = cfg, setup, emit, control
        self.device = setup.device
        self.autocast = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.dtype]
        self.arms = [self._make_arm(name, plan) for name, plan in self._own_plans()]
        self.step = 0
        self._last_point: tuple[int, int] | None = None  # (step, epoch) of the previous step
        self.pending: list = []  # (step, epoch, {arm: (loss, mark, lr)}) not yet read off the device
        self.pending_dw: list = []
        self.pending_skips: list = []  # (step, arm, device bool): fp16 steps the GradScaler may have skipped
        self.flush_every = 1 if all(a.device.type == "cpu" for a in self.arms) else 20
        self.nan_stop = False  # --on-nan stop-run fired

    def _make_arm(self, name: str, plan) -> Arm:
        device = self.s.placement.get(name, self.device)
        model = self._place(copy.deepcopy(self.s.model), device)
        model.train(self.cfg.dropout == "same")
        tracker = None
        if isinstance(plan, LoraPlan):
            model, names, tracker = lora_parts(plan, model, self.s.layout, self.s.splits, self.cfg)
        else:
            names = plan.trainable_at(0, 0)
            apply_trainable(model, names)
        model = self._wrap(name, model)
        fused = self.cfg.dtype == "fp16" and device.type == "cuda"
        optimizer = build_optimizer(model, names, self.s.lr, self.cfg.weight_decay, fused=fused)
        if not isinstance(plan, LoraPlan):  # on the wrapped (maybe sharded) parameters
            tracker = DWTracker(model, self.s.splits) if self.cfg.monitor and self.cfg.norm_every else None
        timer = StepTimer(device)
        arm = Arm(name, plan, model, optimizer, tracker, timer, trainable=names, device=device)
        arm.scaler = make_scaler(self.cfg.dtype, device)
        return arm

    def _warn_placement(self) -> None:
        message = mixed_devices_warning({a.name: a.device for a in self.arms})
        if message:
            self.emit(ev.Warning(message=message))

    # -- seams for a distributed run (engine.train.distributed): one process, one world -------------
    def _own_plans(self) -> list:
        """The arms this process trains: all of them."""
        return self.s.plans

    def _place(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return model.to(device)

    def _wrap(self, name: str, model: torch.nn.Module) -> torch.nn.Module:
        """The arm's model as trained (a sharded run wraps it here, before its optimizer exists)."""
        return model

    def _reduce(self, losses: list, dts: list, dw_squares: list) -> tuple[list, list, list]:
        """Per-step values of this process's part of each arm -> the whole arm's (nothing to do here)."""
        return losses, dts, dw_squares

    def _sync(self) -> None:
        """Events emitted so far leave for the log (they already have: `emit` is the sink here)."""

    def _any_active(self) -> bool:
        return any(a.active for a in self.arms)

    def _should_end(self) -> bool:
        return self.control.stop.is_set() or not self._any_active()

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Train; returns the run status: finished, stopped (asked to), or failed (non-finite losses
        stopped every arm, or the run under --on-nan stop-run)."""
        total = self._total_steps()
        self._warn_placement()
        self.control.activity.enter("validate", epoch=-1)
        self.emit(ev.StepZero(arms={a.name: self._measures(a, with_val=True) for a in self.arms}))  # forgetting's zero
        for epoch in range(self.cfg.epochs):
            for batch_ids in batch_order(len(self.s.data.train), self.cfg.batch_size, self.cfg.seed, epoch):
                if self._should_end():
                    self.flush()
                    return "failed" if self.nan_stop or not self._any_active() else "stopped"
                if self.control.pause.is_set():
                    self.control.activity.enter("paused", self.step, epoch)
                    self.control.wait_while_paused()
                self._one_step(self.s.data.train[batch_ids], epoch, total)
                if self.step >= total:
                    break
            # an epoch cut short by --max-steps still gets its epoch_end (validation, samples)
            self._end_epoch(epoch)
            if self.step >= total:
                break
        # every arm stopped by a non-finite loss on the last step is a failed run, as it would be a step earlier
        return "failed" if self.nan_stop or not any(a.active for a in self.arms) else "finished"

    def _total_steps(self) -> int:
        per_epoch = self.s.data.n_train_batches(self.cfg.batch_size)
        planned = per_epoch * self.cfg.epochs
        return min(planned, self.cfg.max_steps) if self.cfg.max_steps else planned

    def _lr(self, total: int) -> float:
        warm = self.cfg.warmup
        if warm and self.step < warm:
            return self.s.lr * (self.step + 1) / warm
        return self.s.lr * max(0.0, (total - self.step) / max(1, total - warm))

    def _one_step(self, batch: torch.Tensor, epoch: int, total: int) -> None:
        self.control.activity.enter("step", self.step, epoch)
        batches = copy_to(batch, [a.device for a in self.arms if a.active])  # once per device, no host sync
        self._apply_schedule(epoch)
        lr = self._lr(total)
        every = self.cfg.norm_every if self.cfg.monitor else 0
        measure = bool(every) and self.step % every == 0
        record = {}
        for arm in self.turn_order(self.step):
            if arm.active:
                with on_device(arm.device):  # launches only: the devices work at the same time
                    loss, mark = train_step(
                        arm,
                        batches[arm.device],
                        lr=lr,
                        rng_seed=self.cfg.seed * 1_000_003 + self.step + 1,
                        grad_clip=self.cfg.grad_clip,
                        autocast_dtype=self.autocast,
                        measure=measure,
                    )
                record[arm.name] = (loss, mark, lr)
                if arm.scaler is not None:
                    self.pending_skips.append((self.step, arm.name, arm.skipped))
        record = {a.name: record[a.name] for a in self.arms if a.name in record}  # events keep arm order
        self.pending.append((self.step, epoch, record))
        if measure:
            self.pending_dw.append(
                (self.step, {a.name: a.tracker.squares() for a in self.arms if a.active and a.tracker is not None})
            )
        self.step += 1
        if len(self.pending) >= self.flush_every:  # norms wait on the device like the losses do
            self.flush()

    def turn_order(self, step: int) -> list[Arm]:
        """Arms in the order they train at `step`: step s starts with arm s mod N, so a load burst
        or a warm cache favours no arm on average (each arm runs first equally often)."""
        k = step % len(self.arms)
        return self.arms[k:] + self.arms[:k]

    def _apply_schedule(self, epoch: int) -> None:
        """Apply the scheduled rules reached at this step (Plan.fired: the one schedule rule)."""
        now = (self.step, epoch)
        for arm in self.arms:
            fired = arm.plan.fired(self._last_point, now) if arm.active else []
            if fired:
                change_trainable(arm, arm.plan.trainable_at(*now), self.cfg.weight_decay)
                n = sum(p.numel() for p in arm.model.parameters() if p.requires_grad)
                for change in fired:
                    self.emit(ev.PlanChange(step=self.step, arm=arm.name, trainable=n, rule=change.rule))
        self._last_point = now

    # -- reading values off the device ---------------------------------------------------------
    def flush(self) -> None:
        """One batched read of everything pending, then the events, in step order."""
        if not self.pending:
            return
        losses = [loss for _, _, rec in self.pending for loss, _, _ in rec.values()]
        read = read_floats(losses + [flag for _, _, flag in self.pending_skips])  # one read per device
        skipped = {(step, name) for (step, name, _), v in zip(self.pending_skips, read[len(losses) :]) if v}
        dts = [StepTimer.seconds(mark) for _, _, rec in self.pending for _, mark, _ in rec.values()]
        dw_tensors = [t for _, per_arm in self.pending_dw for t in per_arm.values()]
        loss_list, dts, squares = self._reduce(read[: len(losses)], dts, read_floats(dw_tensors))
        values, times = iter(loss_list), iter(dts)
        dw_values = iter(DWTracker.finish(torch.tensor(squares)).tolist() if squares else [])
        dw_by_step = {step: {name: next(dw_values) for name in per_arm} for step, per_arm in self.pending_dw}
        for step, epoch, rec in self.pending:
            arms = {name: {"loss": next(values), "dt": next(times), "lr": lr} for name, (_, _, lr) in rec.items()}
            self.emit(ev.Step(step=step, epoch=epoch, arms=arms))
            for name, values_of_arm in arms.items():
                self._account(name, values_of_arm["loss"], values_of_arm["dt"], step)
                if (step, name) in skipped:
                    self.emit(ev.Warning(message=f"arm {name}: {SKIPPED} at step {step}", arm=name))
            if step in dw_by_step:
                self._emit_dw(step, dw_by_step[step])
        self.pending.clear()
        self.pending_dw.clear()
        self.pending_skips.clear()
        self._sync()

    def _account(self, name: str, loss: float, dt: float, step: int) -> None:
        arm = self._arm(name)
        arm.t_total += dt
        if math.isfinite(loss):
            arm.epoch_losses.append(loss)
            return
        message = f"arm {name}: loss is {loss} at step {step}"
        policy = self.cfg.on_nan
        if policy == "continue":
            self.emit(ev.Warning(message=message + " (continuing: --on-nan continue)", arm=name))
            return
        self.emit(ev.Error(message=message + f"; arm stopped (--on-nan {policy})", arm=name, fatal=False))
        arm.stopped = "non-finite loss"
        if policy == "stop-run":
            self.nan_stop = True
            self.control.stop.set()

    def _emit_dw(self, step: int, per_arm: dict) -> None:
        dw, drift, rel = {}, {}, {}
        for arm in self.arms:
            if arm.name in per_arm and arm.tracker is not None:
                dw[arm.name], drift[arm.name], rel[arm.name] = arm.tracker.as_dicts(per_arm[arm.name])
        self.emit(ev.DW(step=step, arms=dw, drift=drift, rel=rel))

    def _arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    # -- epoch ends, samples, the end ------------------------------------------------------------
    def _end_epoch(self, epoch: int) -> None:
        self.flush()
        self.control.activity.enter("validate", epoch=epoch)
        arms = {}
        for arm in self.arms:
            mean, var = mean_var(arm.epoch_losses)
            val, val_batches = (
                validation_loss(arm.model, self.s.data.val, self.cfg.batch_size, arm.device, self.autocast)
                if arm.active
                else (math.nan, [])
            )
            t_epoch, arm.t_epoch_start = arm.t_total - arm.t_epoch_start, arm.t_total
            arms[arm.name] = {
                "loss_mean": mean,
                "loss_var": var,
                "val_loss": val,
                "val_batches": val_batches,  # per validation batch, the same batches for every arm: pairs
                "t_epoch": t_epoch,
                "t_total": arm.t_total,
                **(self._measures(arm) if arm.active else {}),
            }
            arm.epoch_losses = []
        self.emit(ev.EpochEnd(epoch=epoch, arms=arms))
        self.samples("epoch", epoch)
        self._sync()

    def _measures(self, arm: Arm, with_val: bool = False) -> dict:
        """Retain loss and expected share of S (engine.train.retain), on the same blocks for every arm."""
        common = torch.tensor(self.s.data.common, dtype=torch.long)
        return arm_measures(
            arm.model,
            retain=self.s.retain,
            val=self.s.data.val,
            common=common,
            batch_size=self.cfg.batch_size,
            device=arm.device,
            autocast_dtype=self.autocast,
            with_val=with_val,
        )

    def samples(self, phase: str, epoch: int) -> None:
        """One set of samples per arm (or one `*` set before training, when all arms are equal)."""
        if not self.cfg.monitor or not self.cfg.samples:
            return
        from engine.train.generate import sample_tokens

        self.control.activity.enter("sample", epoch=epoch)
        active = [a for a in self.arms if a.active]
        if not active:
            return
        # before training every arm holds the same weights: the first one samples for all
        targets = [("*", active[0])] if phase == "pre" else [(a.name, a) for a in active]
        for name, arm in targets:
            for j, (prompt_ids, prompt_text) in enumerate(self.s.prompts):
                seqs = sample_tokens(
                    arm.model,
                    prompt_ids,
                    n=self.cfg.samples,
                    max_new=self.s.sample_tokens,
                    seed=self.cfg.seed,
                    device=arm.device,
                    eos_id=self.s.tokenizer.eos_token_id,
                )
                for i, seq in enumerate(seqs):
                    index = j * self.cfg.samples + i  # the same prompt and seed for every arm and phase
                    self.emit(self._sample_event(phase, name, epoch, index, seq, j, prompt_text))

    def _sample_event(
        self, phase: str, arm: str, epoch: int, index: int, seq: list[int], prompt_index: int, prompt: str
    ) -> ev.Sample:
        common = self.s.common_set
        pieces = [[text, t in common] for text, t in zip(token_texts(self.s.tokenizer, seq), seq)]
        return ev.Sample(
            phase=phase,
            arm=arm,
            prompt=prompt,
            text=self.s.tokenizer.decode(seq),
            tokens=pieces,
            p=common_share([t in common for t in seq]),
            index=index,
            epoch=epoch,
            ids=list(seq),
            prompt_index=prompt_index,
        )

    def arm_memory(self) -> dict:
        return {a.name: state_bytes(a) for a in self.arms}

    def save(self, directory: str) -> None:
        """Each arm's final weights (safetensors), config and tokenizer, loadable with from_pretrained."""
        from pathlib import Path

        self.control.activity.enter("save")
        for arm in self.arms:
            out = Path(directory) / arm.name
            try:
                model = save_lora(arm.model, out) if is_lora(arm.model) else arm.model  # + out/adapter
                model.save_pretrained(out, safe_serialization=True)
                self.s.tokenizer.save_pretrained(out)
            except OSError as exc:
                raise FreezeTuiError(f"cannot save arm {arm.name} to {out}: {exc.strerror or exc}") from None
            if not any(out.glob("*.safetensors")):  # transformers only logs when `out` is not a folder
                raise FreezeTuiError(f"arm {arm.name}: no weights were written to {out}; is it a folder you can write?")
