"""The run log: events, writing and reading it, event sources, and the one reducer. No torch."""
