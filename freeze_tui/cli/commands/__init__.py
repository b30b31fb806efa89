"""CLI subcommands, one module each; freeze_tui/cli/main.py registers them with one line."""
