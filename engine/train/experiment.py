"""The paired experiment: set up arms from one model, then a step-locked loop over them (torch).

Every step the same batch tensor goes to every arm in turn; values are read off the device only
at flush time (every step on CPU, in batches on CUDA) and leave as events through `emit`.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import replace

import torch

from engine.core.control import Control
from engine.core.errors import FreezeTuiError
from engine.core.stats import common_share
from engine.log import events as ev
from engine.run.accumulate import ArmTotals, flush_due
from engine.run.config import RunConfig
from engine.train.arm import (
    Arm,
    StepTimer,
    build_optimizer,
    change_trainable,
    make_scaler,
    state_bytes,
    train_step,
)
from engine.train.checkpoint import Checkpointer
from engine.train.data import batch_order
from engine.train.devices import mixed_devices_warning, read_floats
from engine.train.frozen_prefix import FrozenPrefix, any_mismatch
from engine.train.kernels import compiled, enable_checkpointing, optimizer_kind
from engine.train.kinds import torch_kind
from engine.train.lora import base_named_parameters
from engine.train.measure_parts import merge_parts, part_rows
from engine.train.metrics import DWTracker
from engine.train.retain import RetainSet, arm_measures
from engine.train.setup import Setup
from engine.train.topology import Agreement, LocalDevices, Topology

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
    """The paired loop over the arms this process trains; `topology` says where they live (one process
    and its devices, or ranks of a mesh) and what must be exchanged with other processes."""

    def __init__(self, cfg: RunConfig, setup: Setup, emit, control: Control, topology: Topology | None = None) -> None:
        self.topology: Topology = topology if topology is not None else LocalDevices()
        self.cfg, self.s, self.emit, self.control = cfg, setup, self.topology.emitter(emit), control
        self.device = setup.device
        self.autocast = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.dtype]
        self.arms = [self._make_arm(name, plan) for name, plan in self.topology.own(self.s.plans)]
        self.totals = {a.name: ArmTotals() for a in self.arms}  # step time and the open epoch's losses
        self.step = 0
        self._last_point: tuple[int, int] | None = None  # (step, epoch) of the previous step
        self.pending: list = []  # (step, epoch, {arm: (loss, mark, lr)}) not yet read off the device
        self.pending_dw: list = []
        self.pending_skips: list = []  # (step, arm, device bool): fp16 steps the GradScaler may have skipped
        self.on_device = any(a.device.type != "cpu" for a in self.arms)
        self.nan_stop = False  # --on-nan stop-run fired
        self.resume_at: tuple[int, int] | None = None  # (epoch, batch) a checkpoint continues from
        self.checkpointer: Checkpointer | None = None  # under --checkpoint-every
        # validations of arms whose lower blocks never train reuse their step-zero output (one process only)
        self.prefix = FrozenPrefix(setup.layout, setup.model) if isinstance(self.topology, LocalDevices) else None

    def _make_arm(self, name: str, plan) -> Arm:
        device = self.s.placement.get(name, self.device)
        model = self.topology.place(copy.deepcopy(self.s.model), device)
        model.train(self.cfg.dropout == "same")
        if self.cfg.activation_checkpointing:  # every arm alike, before its kind wraps the model
            enable_checkpointing(model, self.s.loaded.name)
        monitor = bool(self.cfg.monitor and self.cfg.norm_every)
        wrap = lambda m: self.topology.wrap(name, m, self.s.loaded.n_blocks)  # a sharded run wraps the kind's model
        built = torch_kind(plan).prepare(
            model, plan, self.s.layout, seed=self.cfg.seed, splits=self.s.splits, monitor=monitor, wrap=wrap
        )
        model, names, tracker = built.model, built.trainable, built.tracker
        kind = optimizer_kind(self.s.placement.values() or [self.device])  # one choice for every arm
        optimizer = build_optimizer(
            model, names, self.s.lr, self.cfg.weight_decay, fused=kind == "fused", foreach=kind == "foreach"
        )
        timer = StepTimer(device)
        arm = Arm(name, plan, model, optimizer, tracker, timer, trainable=names, device=device)
        arm.scaler = make_scaler(self.cfg.dtype, device)
        if self.cfg.compile:
            arm.compiled = compiled(model)
        return arm

    def _warn_placement(self) -> None:
        message = mixed_devices_warning({a.name: a.device for a in self.arms})
        if message:
            self.emit(ev.Warning(message=message))

    # -- what every process agrees on (one process: itself) -----------------------------------------
    def _local(self) -> Agreement:
        return Agreement(self.control.stop.is_set(), self.nan_stop, any(a.active for a in self.arms))

    def _sync(self) -> None:
        """Events emitted so far leave for the log; every process agrees on stopping."""
        self.nan_stop = self.topology.sync(self._local()).nan_stop

    def _any_active(self) -> bool:
        return self.topology.agreed(self._local()).active

    def _should_end(self) -> bool:
        agreed = self.topology.agreed(self._local())
        return agreed.stop or not agreed.active

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Train; returns the run status: finished, stopped (asked to), or failed (non-finite losses
        stopped every arm, or the run under --on-nan stop-run)."""
        total = self._total_steps()
        self._warn_placement()
        if self.resume_at is None:  # a resumed run's log has its step_zero already
            self.control.activity.enter("validate", epoch=-1)
            started = time.perf_counter()
            zero = self._step_zero_measures()
            self.s.times.validation_s += time.perf_counter() - started
            self.emit(ev.StepZero(arms=zero))  # forgetting's zero: every arm before its first step
        first_epoch, first_batch = self.resume_at or (0, 0)
        for epoch in range(first_epoch, self.cfg.epochs):
            order = batch_order(len(self.s.data.train), self.cfg.batch_size, self.cfg.seed, epoch)
            for batch, batch_ids in enumerate(order):
                if epoch == first_epoch and batch < first_batch:
                    continue  # trained before the checkpoint
                if self._should_end():
                    self.flush()
                    return "failed" if self.nan_stop or not self._any_active() else "stopped"
                if self.control.pause.is_set():
                    self.control.activity.enter("paused", self.step, epoch)
                    self.control.wait_while_paused()
                if self.checkpointer is not None and self.checkpointer.due(self.step):
                    self.flush()  # the totals and the log cover every step before the checkpoint
                    self.checkpointer.save(self, epoch, batch)
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
        batches = self.topology.batches(batch, [a.device for a in self.arms if a.active])
        self._apply_schedule(epoch)
        lr = self._lr(total)
        every = self.cfg.norm_every if self.cfg.monitor else 0
        measure = bool(every) and self.step % every == 0
        record = {}
        for arm in self.turn_order(self.step):
            if arm.active:
                with self.topology.launching_on(arm.device):
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
        if flush_due(len(self.pending), on_device=self.on_device):  # norms wait on the device like the losses do
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
        loss_list, dts, squares = self.topology.reduce(read[: len(losses)], dts, read_floats(dw_tensors))
        values, times = iter(loss_list), iter(dts)
        dw_values = iter(DWTracker.finish(torch.tensor(squares)).tolist() if squares else [])
        dw_by_step = {step: {name: next(dw_values) for name in per_arm} for step, per_arm in self.pending_dw}
        for step, epoch, rec in self.pending:
            measured = {name: (next(values), next(times), lr) for name, (_, _, lr) in rec.items()}
            self.emit(ev.Step(step=step, epoch=epoch, arms={name: ev.ArmStep(*m) for name, m in measured.items()}))
            for name, (loss, dt, _) in measured.items():
                self._account(name, loss, dt, step)
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
        if self.totals[name].add_step(loss, dt):
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
        records = {
            arm.name: ev.ArmDW(*arm.tracker.as_dicts(per_arm[arm.name]))
            for arm in self.arms
            if arm.name in per_arm and arm.tracker is not None
        }
        self.emit(ev.DW.of(step, records))

    def _arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    # -- epoch ends, samples, the end ------------------------------------------------------------
    def _end_epoch(self, epoch: int) -> None:
        self.flush()
        self.control.activity.enter("validate", epoch=epoch)
        started = time.perf_counter()
        arms = {}
        for arm in self.arms:
            totals = self.totals[arm.name].end_epoch()
            # validation loss, retain loss and expected share of S (one pass over the validation blocks)
            arms[arm.name] = ev.epoch_record(
                loss_mean=totals.loss_mean,
                loss_var=totals.loss_var,
                t_epoch=totals.t_epoch,
                t_total=totals.t_total,
                measures=self._measures(arm, with_val=True) if arm.active else None,
            )
        self.s.times.validation_s += time.perf_counter() - started
        self.emit(ev.EpochEnd(epoch=epoch, arms=arms))
        self.samples("epoch", epoch)
        self._sync()

    def _step_zero_measures(self) -> dict[str, ev.ArmMeasures]:
        """Every arm before its first step. Arms that are the same model on the same device (freeze arms:
        copies of one set of weights, in eval mode) measure the same numbers, so the first of them is
        measured for all; an adapter kind's arm (another model type) is measured itself."""
        done: dict[tuple, ev.ArmMeasures] = {}
        out = {}
        for arm in self.arms:
            key = (str(arm.device), type(arm.model))
            if key not in done:
                done[key] = self._recording_measures(arm, key)
            out[arm.name] = done[key]
        return out

    def _recording_measures(self, arm: Arm, key: tuple) -> ev.ArmMeasures:
        """The step-zero measures of `arm`, recording the output of the frozen lower blocks of the arms
        it measures for (engine.train.frozen_prefix): their later validations start above them."""
        if self.prefix is None:
            return self._measures(arm, with_val=True)
        same = [a for a in self.arms if (str(a.device), type(a.model)) == key]
        with self.prefix.recording(arm.model, {self.prefix.frozen_depth(a.model) for a in same}):
            return self._measures(arm, with_val=True)

    def _measures(self, arm: Arm, with_val: bool = False) -> ev.ArmMeasures:
        """Retain loss and expected share of S (engine.train.retain), on the same blocks for every arm."""
        depth = self.prefix.usable_depth(arm.model) if self.prefix is not None else 0
        if depth:
            with self.prefix.reusing(arm.model, depth) as mismatches:  # type: ignore[union-attr]
                measured = self._measure_pass(arm, with_val)
            if not any_mismatch(mismatches):
                return measured
        return self._measure_pass(arm, with_val)

    def _measure_pass(self, arm: Arm, with_val: bool) -> ev.ArmMeasures:
        """The arm's measures; where replicas hold it, each measures its part (engine.train.measure_parts)."""
        index, count = self.topology.measure_part()
        if count == 1:
            return self._measure_blocks(arm, with_val, self.s.data.val, self.s.retain)
        retain, val, size = self.s.retain, self.s.data.val, self.cfg.batch_size
        my_retain = retain
        if retain is not None:
            my_retain = replace(retain, blocks=retain.blocks[part_rows(len(retain.blocks), size, index, count)])
        mine = self._measure_blocks(arm, with_val, val[part_rows(len(val), size, index, count)], my_retain)
        n_retain = 0 if retain is None else len(retain.blocks)
        return merge_parts(self.topology.gather_parts(mine), len(val), n_retain, size)

    def _measure_blocks(self, arm: Arm, with_val: bool, val: torch.Tensor, retain: RetainSet | None) -> ev.ArmMeasures:
        common = torch.tensor(self.s.data.common, dtype=torch.long)
        return arm_measures(
            arm.model,
            retain=retain,
            val=val,
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
        if phase == "pre" and not self.topology.samples_before_training:
            return  # another process samples for every arm (they are all equal before training)
        from engine.train.generate import sample_batch

        self.control.activity.enter("sample", epoch=epoch)
        active = [a for a in self.arms if a.active]
        if not active:
            return
        # before training every arm holds the same weights: the first one samples for all
        targets = [("*", active[0])] if phase == "pre" else [(a.name, a) for a in active]
        started = time.perf_counter()
        prompts = [ids for ids, _ in self.s.prompts]
        index, count = self.topology.measure_part()  # replicas of an arm: each samples a run of the prompts
        mine = part_rows(len(prompts), 1, index, count)
        for name, arm in targets:
            with self.topology.launching_on(arm.device):
                per_prompt = sample_batch(
                    arm.model,
                    prompts[mine],
                    n=self.cfg.samples,
                    max_new=self.s.sample_tokens,
                    seed=self.cfg.seed,
                    device=arm.device,
                    eos_id=self.s.tokenizer.eos_token_id,
                    first=mine.start * self.cfg.samples,
                )
            if count > 1:  # every prompt's samples, in prompt order
                per_prompt = [seqs for part in self.topology.gather_parts(per_prompt) for seqs in part]
            for j, seqs in enumerate(per_prompt):
                prompt_text = self.s.prompts[j][1]
                for i, seq in enumerate(seqs):
                    index = j * self.cfg.samples + i  # the same prompt and seed for every arm and phase
                    self.emit(self._sample_event(phase, name, epoch, index, seq, j, prompt_text))
        self.s.times.sampling_s += time.perf_counter() - started

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
        return self.topology.arm_memory({a.name: state_bytes(a) for a in self.arms})

    def save(self, directory: str) -> None:
        """Each arm's final weights (safetensors), config and tokenizer, loadable with from_pretrained."""
        from pathlib import Path

        self.control.activity.enter("save")
        for arm in self.arms:
            whole = self.topology.whole_model(arm.model, self.s.model)  # every process of the arm takes part
            if whole is None:
                continue
            out = Path(directory) / arm.name
            try:
                model = torch_kind(arm.plan).save(whole, out)
                model.save_pretrained(out, safe_serialization=True)
                self.s.tokenizer.save_pretrained(out)
            except OSError as exc:
                raise FreezeTuiError(f"cannot save arm {arm.name} to {out}: {exc.strerror or exc}") from None
            if not any(out.glob("*.safetensors")):  # transformers only logs when `out` is not a folder
                raise FreezeTuiError(f"arm {arm.name}: no weights were written to {out}; is it a folder you can write?")
