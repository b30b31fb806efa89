"""Freeze plans: the spec language, model roles, plan resolution, the FLOP model. No torch."""
