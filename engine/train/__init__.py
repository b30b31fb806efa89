"""Training: models, data, the paired experiment and the live session (torch, imported lazily)."""
