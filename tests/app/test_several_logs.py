"""The app on several logs: one run, their arms side by side (replay through the merging source)."""

from pathlib import Path

import pytest
from textual.widgets import DataTable

from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from freeze_tui.cli.logs import source_of
from tests.app.helpers import play_to_end, quiet, shown

pytestmark = pytest.mark.anyio

# the two runs of full + targeted (+ reverse), in this order
SAMPLE_RUNS = [
    Path(__file__).resolve().parents[2] / "sample_runs" / name
    for name in ("demo-full-targeted-reverse.jsonl", "demo-full-vs-targeted.jsonl")
]


async def test_two_recorded_runs_replay_as_one():
    logs = [f"three={SAMPLE_RUNS[0]}", f"two={SAMPLE_RUNS[1]}"]
    app = quiet(FreezeApp(source_of(logs, lambda path: ReplaySource(path, None))))
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        assert app.state.status == "finished" and app.state.n_skipped == 0
        cards = [shown(card) for card in app.arms.children]
        assert len(cards) == 6 and "three/full" in cards[0] and "two/targeted" in cards[4]
        assert "two/suggested" in cards[5]
        await pilot.press("2")  # the ΔW view: every run's latest norms in one table
        await play_to_end(pilot)
        table = app.views["dw"].table
        assert isinstance(table, DataTable) and table.row_count == 24
        # six arms fit 160 columns side by side once the trend and drift columns give way
        cells = [str(c) for c in table.get_row_at(20)]  # block 5, q
        assert not any(c.strip() in ("", "–") for c in cells), cells
        seen = [str(c.label) for c in table.columns.values()][2:]
        assert {"three/full ΔW", "two/targeted ΔW"} <= set(seen) and len(set(seen)) == 6 and app.views["dw"].pages == 1
