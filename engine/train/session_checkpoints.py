"""A live run's checkpoints: a Checkpointer on each replicate's experiment under --checkpoint-every, and
`run --resume`'s checks and restore before the log gets its `resumed` event (torch; issue 21)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.run.checkpoints import ResumePoint, RunIdentity, checkpoint_root, differences, digest, run_settings
from engine.run.emitter import Emitter, LogSink
from engine.run.every import parse_every
from engine.train.checkpoint import Checkpointer, data_identity, model_identity, restore

if TYPE_CHECKING:
    from engine.train.experiment import Experiment
    from engine.train.setup import Setup


def settings_of(setup: Setup) -> dict:
    """The settings that change the run, as run_start records them (the lr resolved, the demo named)."""
    cfg = setup.cfg
    return run_settings({**cfg.to_dict(), "lr": setup.lr, "model": cfg.model or "demo"})


class SessionCheckpoints:
    """log: the run's log sink, joined to `emitter` once a resume is checked (`resume`: where it goes on)."""

    def __init__(
        self,
        setup: Setup,
        log_path,
        emitter: Emitter,
        log: LogSink,
        resume: ResumePoint | None = None,
        model_checksum: str | None = None,  # given where setup.model holds no weights (a distributed rank)
    ) -> None:
        from engine.train.experiment import weights_checksum

        self.setup, self.cfg, self.log_path = setup, setup.cfg, log_path
        self.emitter, self.log, self.resume = emitter, log, resume
        self.base: RunIdentity | None = None
        if self.cfg.checkpoint_every is not None or resume is not None:
            settings = settings_of(setup)
            self.base = RunIdentity(
                settings=settings,
                settings_digest=digest(settings),
                model=model_identity(setup, model_checksum or weights_checksum(setup.model)),
                data=data_identity(setup),
            )

    def attach(self, exp: Experiment) -> Experiment:
        if self.cfg.checkpoint_every is not None:
            exp.checkpointer = Checkpointer(
                checkpoint_root(self.log_path),
                parse_every(self.cfg.checkpoint_every),
                self.cfg.keep_checkpoints,
                replicate=exp.cfg.seed - self.cfg.seed,
                seeds=self.cfg.seeds,
                identity=self.base,
                seq_now=lambda: self.emitter.seq - 1,
            )
        return exp

    def restore(self, exp: Experiment) -> None:
        """Check that the checkpoint is of this run (settings, model, data), load it, then open the log."""
        self.check()
        assert self.resume is not None
        restore(exp, self.resume.folder)
        if exp.checkpointer is not None:
            exp.checkpointer.last_step = exp.step
        self.open_log(exp)

    def check(self) -> None:
        """FreezeTuiError in one line when the checkpoint is not of this run (settings, model, data)."""
        resume, base = self.resume, self.base
        assert resume is not None and base is not None
        folder, manifest = resume.folder, resume.manifest
        for name, then, now in differences(manifest.settings, base.settings):
            flag = "--" + name.replace("_", "-")
            raise FreezeTuiError(
                f"checkpoint {folder} was written with {flag} {then!r}, this run has {now!r}; resume with the "
                "run's own settings"
            )
        if manifest.model != base.model:
            raise FreezeTuiError(
                f"the model ({self.cfg.model or 'demo'}) is not the one checkpoint {folder} was trained from "
                "(its weights or config differ); resume with the run's own model"
            )
        if manifest.data != base.data:
            raise FreezeTuiError(
                f"the data ({', '.join(self.cfg.data) or 'demo'}) is not the text checkpoint {folder} was "
                "trained on (its content hash differs); resume with the run's own data"
            )

    def open_log(self, exp: Experiment) -> None:
        """The checkpoint is loaded: the log gets its `resumed` event and goes on."""
        resume = self.resume
        assert resume is not None
        folder, manifest = resume.folder, resume.manifest
        with self.emitter.lock:
            self.emitter.seq = resume.next_seq  # the log's seq goes on without a gap
            self.emitter.sinks.insert(0, self.log)
        self.emitter.emit(
            ev.Resumed(
                step=exp.step,
                epoch=exp.resume_at[0] if exp.resume_at else 0,
                replicate=resume.replicate,
                after_seq=manifest.after_seq,
                checkpoint=str(folder),
                superseded_steps=resume.superseded_steps,
            )
        )
