"""CLI subcommands, one module each; freeze_tui/cli.py registers them with one line."""
