"""freeze-tui: a terminal monitor for paired fine-tuning experiments."""

__version__ = "0.1.0"
