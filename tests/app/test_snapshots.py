"""SVG snapshots of the main views at 80x24 and 160x50, after replaying the synthetic log to its end.

Everything shown comes from the log's own clock (fixed times), so snapshots do not depend on
when they are taken. Update with `pytest tests/app/test_snapshots.py --snapshot-update` and look
at the SVGs in __snapshots__ before committing them.
"""

import pytest

from engine.log.sources import ReplaySource
from freeze_tui.app import FreezeApp
from tests.app.helpers import play_to_end, quiet

VIEWS = {"loss": "1", "dw": "2", "samples": "3", "time": "4", "plan": "5", "log": "6"}
SIZES = {"small": (80, 24), "large": (160, 50)}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", VIEWS)
def test_view_snapshot(snap_compare, log_path, view, size):
    async def show_view(pilot):
        await play_to_end(pilot)
        await pilot.press(VIEWS[view])
        await play_to_end(pilot)

    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=show_view)
