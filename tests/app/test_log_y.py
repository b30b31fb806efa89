"""`l` on the Loss view: the loss curves on a log y axis, said in the title; the paired difference stays
linear and says so; `l` again: linear. Offered in the help of the Loss view only."""

import pytest

from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from freeze_tui.app.screens.help import HelpScreen
from tests.app.helpers import play_to_end, quiet, shown

pytestmark = pytest.mark.anyio


def _chart(app) -> str:
    return app.views["loss"].query_one("#loss-chart").render().plain


async def test_l_toggles_a_log_y_axis_for_the_loss_curves_only(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        assert "log y" not in _chart(app)
        await pilot.press("l")
        await play_to_end(pilot)
        assert app.chart.log_y and "loss per step (smoothing 0.90, log y" in _chart(app)
        assert _chart(app) == _chart(app)  # a rebuild with no new data draws the same (no log of the log)
        ticks = [line.split("┤")[0].strip() for line in _chart(app).splitlines() if "┤" in line]
        assert len(ticks) == 5 and all(float(t) > 1.0 for t in ticks), ticks  # labelled with the loss itself
        await pilot.press("d")
        await play_to_end(pilot)
        text = _chart(app)
        assert "targeted − full per step" in text and "linear y" in text and "log y" not in text
        await pilot.press("d", "l")
        await play_to_end(pilot)
        assert not app.chart.log_y and "log y" not in _chart(app)
        assert len([line for line in _chart(app).splitlines() if "┤" in line]) != 5  # plotext's own ticks again
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "linear ↔ log" in shown(app.screen.query_one("#help-text"))
