"""The library entry points for a user's own loop keep the app's promise: importing them loads no torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_app_cli_serve_and_integrations_do_not_import_torch():
    code = (
        "import sys, freeze_tui, freeze_tui.cli.main, freeze_tui.cli.commands.serve, freeze_tui.integrations; "
        "assert callable(freeze_tui.apply_spec); "
        "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
