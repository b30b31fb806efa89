"""Benchmarks: each prints `figure | measured | target | pass/fail`, pairs measured side by side in one run."""
