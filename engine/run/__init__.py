"""The torch-free side of a run: the emitter and its sinks, the replicate loop, the per-arm accumulator."""
