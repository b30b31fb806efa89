"""freeze-tui: a terminal monitor for paired fine-tuning experiments."""

from freeze_tui.version import __version__

__all__ = ["__version__", "apply_spec"]


def apply_spec(model, spec: str, *, arm: str = "arm", seed: int = 0, seq_len: int = 0):
    """Apply a freeze spec (``"targeted"``, ``"+attn.qkv[6:]"``, ``"lora:8:attn.qkv[6:]"`` ...) to your
    own model in place and return the plan: ``.n_trainable``, ``.n_total``, ``.pct``, ``.flop_ratio``,
    ``.r_pred``, ``.plan`` and ``.record``. See engine.train.apply."""
    from engine.train.apply import apply_spec as _apply_spec  # torch only when called

    return _apply_spec(model, spec, arm=arm, seed=seed, seq_len=seq_len)
