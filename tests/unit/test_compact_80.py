"""80x24 with 3-5 arms: one-line r intervals, the scatter's y = x named without a legend, cards that keep T."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from engine.log.comparisons import live_interval
from engine.log.runlog import read_events
from engine.log.state import RunState
from freeze_tui.app.widgets.arm_card import arm_card_text
from freeze_tui.app.widgets.loss_view import scatter_xlabel
from freeze_tui.app.widgets.time_view import r_interval_text, time_renderable


def plain_text(renderable, width: int) -> str:
    console = Console(width=width, color_system=None)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


LORA = Path(__file__).resolve().parents[2] / "sample_runs" / "demo-full-targeted-lora.jsonl"


def test_time_view_compact_fits_80_columns_one_line_per_arm():
    state = RunState().apply_all(read_events(LORA))
    intervals = {name: live_interval(state, name) for name in state.arms}
    assert r_interval_text(state, "targeted", intervals["targeted"], compact=True).plain == "37.4–39.8 % ?"
    text = plain_text(time_renderable(state, intervals=intervals, compact=True), width=80)
    lines = text.splitlines()
    table = lines[1 : next(i for i, line in enumerate(lines) if line.startswith("r 95 %: r's interval"))]
    assert [line.split()[0] for line in table] == ["full", "targeted", "lora"]  # no interval wrapped onto more lines
    assert "≈ / ≠ / ?" in text


def test_narrow_scatter_names_the_diagonal_in_its_x_label():
    assert scatter_xlabel("full", 20) == "L_full; ╱ y = x"
    assert scatter_xlabel("full", 40) == "L_full; line: y = x"
    assert scatter_xlabel("demo-run/full", 13) == "line: y = x" and scatter_xlabel("full", 8) == "╱ y = x"


def test_tiny_cards_keep_loss_and_t_whole():
    state = RunState().apply_all(read_events(LORA))
    lines = arm_card_text(state, "targeted", 14, compact=True).plain.splitlines()
    assert lines[1].startswith("L 4.952") and lines[2].startswith("T 4m 01s")
