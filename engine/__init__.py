"""Everything that computes. Torch is imported lazily, only by the training modules."""
