"""freeze-tui's monitor for training loops it does not run: ``Recorder`` for any loop,
``freeze_tui.integrations.hf.FreezeTuiCallback`` for the Hugging Face ``Trainer``."""

from freeze_tui.integrations.recorder import Recorder

__all__ = ["Recorder"]
