"""The Hugging Face ``Trainer`` writing a freeze-tui run log:

    plan = apply_spec(model, "targeted")                      # optional: freeze first
    Trainer(model, args, ..., callbacks=[FreezeTuiCallback(log="run.jsonl", plan=plan)]).train()

Each optimizer step becomes a ``step`` event with the loss of that step (the mean of its
micro-batches, caught from the model's own output: no extra sync, no ``logging_steps=1``) and
the learning rate it used; ΔW of every attention matrix every ``norm_every`` steps; epochs with
the last evaluation loss; samples before and after when ``sample_prompt`` is given. Only the
world process zero writes (``accelerate``, ``torchrun``). Needs ``pip install 'freeze-tui[hf]'``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from transformers import TrainerCallback

from freeze_tui.integrations.recorder import Recorder

__all__ = ["FreezeTuiCallback"]


class FreezeTuiCallback(TrainerCallback):
    def __init__(
        self,
        log: str | Path,
        *,
        arm: str | None = None,
        plan=None,
        norm_every: int = 1,
        sample_prompt: str | None = None,
        sample_tokens: int = 32,
        overwrite: bool = False,
        tokenizer=None,
    ) -> None:
        """tokenizer: encodes `sample_prompt` and decodes samples when the Trainer has none
        (`processing_class`); with neither, the log says that no samples are written."""
        self.log, self.plan, self.norm_every, self.overwrite = log, plan, norm_every, overwrite
        self.arm = arm or (plan.plan.arm if plan is not None and plan.plan.arm != "arm" else "trainer")
        self.sample_prompt, self.sample_tokens, self.tokenizer = sample_prompt, sample_tokens, tokenizer
        self._said_no_tokenizer = False
        self.recorder: Recorder | None = None
        self._losses: list = []
        self._lr: float | None = None
        self._eval_loss: float | None = None
        self._hook = None
        self._said_no_loss = False

    # -- an exception inside Trainer.train() reaches no callback: `with FreezeTuiCallback(...) as cb:` --------
    def __enter__(self) -> FreezeTuiCallback:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Unhooks the model and ends the log: "failed" with the exception's error line, "stopped" on Ctrl-C.
        (Without `with`, a Recorder left open still ends its log "failed" when the process exits.)"""
        self._unhook()
        if self.recorder is not None:
            self.recorder.__exit__(exc_type, exc, tb)

    def _unhook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- Trainer events ----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._unhook()  # a train() that raised before leaves its hook: not twice
        config = {
            "source": "transformers.Trainer",
            "lr": args.learning_rate,
            "epochs": _epochs(args, state, kwargs.get("train_dataloader")),
            "max_steps": state.max_steps,
            "batch_size": args.per_device_train_batch_size,
            "grad_accum": args.gradient_accumulation_steps,
            "seed": args.seed,
        }
        per_epoch = _steps_per_epoch(kwargs.get("train_dataloader"), args.gradient_accumulation_steps)
        if per_epoch:
            config["n_train_batches"] = per_epoch  # optimizer steps per epoch, as the Trainer runs them
        self.recorder = Recorder(
            self.log,
            arm=self.arm,
            model=model,
            plan=self.plan,
            config=config,
            norm_every=self.norm_every,
            overwrite=self.overwrite,
            main_process=state.is_world_process_zero,
        )
        if self.recorder.active and model is not None:
            self._hook = model.register_forward_hook(self._catch_loss)
            self._sample(model, processing_class, "pre")

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self._lr = float(optimizer.param_groups[0]["lr"])  # before the scheduler moves it

    def on_step_end(self, args, state, control, **kwargs):
        if self.recorder is None or not self.recorder.active:
            return
        losses, self._losses = self._losses, []
        loss = sum(losses) / len(losses) if losses else float("nan")
        if not losses and not self._said_no_loss:
            self._said_no_loss = True  # e.g. label_smoothing_factor: the Trainer computes the loss itself
            self.recorder.warning(
                "the model's output carries no loss (label_smoothing_factor or a custom compute_loss computes "
                "it outside the model): step losses are empty; the Trainer's own logs have its loss"
            )
        # state.epoch is fractional and reaches 1.0 on the last step of epoch 0
        self.recorder.step(loss, self._lr, epoch=max(0, math.ceil((state.epoch or 0) - 1e-9) - 1))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self._eval_loss = float(metrics["eval_loss"])

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.epoch_end(val_loss=self._eval_loss)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.recorder is None:
            return
        self._unhook()
        if self.recorder.active and model is not None:
            self._sample(model, processing_class, "post")
        self.recorder.end(
            "stopped" if control.should_training_stop and state.global_step < state.max_steps else "finished"
        )

    # -- inside ----------------------------------------------------------------------------------
    def _catch_loss(self, module, inputs, output) -> None:
        loss = getattr(output, "loss", None) if not isinstance(output, dict) else output.get("loss")
        if module.training and loss is not None:
            self._losses.append(loss.detach())

    def _sample(self, model, tokenizer, phase: str) -> None:
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if not self.sample_prompt or self.recorder is None:
            return
        if tokenizer is None:
            if not self._said_no_tokenizer:
                self._said_no_tokenizer = True
                message = (
                    "sample_prompt is set but there is no tokenizer: no samples are written; pass "
                    "FreezeTuiCallback(tokenizer=...) or Trainer(processing_class=tokenizer)"
                )
                self.recorder.warning(message)
                warnings.warn(message, stacklevel=2)
            return
        from engine.train.generate import sample_tokens

        ids = tokenizer(self.sample_prompt, add_special_tokens=False)["input_ids"]
        device = next(model.parameters()).device
        (seq,) = sample_tokens(model, ids, n=1, max_new=self.sample_tokens, seed=0, device=device)
        self.recorder.sample(tokenizer.decode(seq), phase=phase, prompt=self.sample_prompt)


def _steps_per_epoch(loader, grad_accum: int) -> int | None:
    """Optimizer steps in one epoch: micro-batches / gradient accumulation, rounded up (the Trainer
    steps on an epoch's last, partial accumulation); None for a loader without a length."""
    try:
        batches = len(loader) if loader is not None else 0
    except TypeError:  # an iterable dataset
        return None
    return -(-batches // max(1, int(grad_accum or 1))) if batches else None


def _epochs(args, state, loader) -> int:
    """Epochs that will really run: with max_steps set, as many as its steps reach, else num_train_epochs."""
    per_epoch = _steps_per_epoch(loader, args.gradient_accumulation_steps)
    if args.max_steps and args.max_steps > 0 and per_epoch:
        return -(-int(args.max_steps) // per_epoch)
    return max(1, math.ceil(args.num_train_epochs))
