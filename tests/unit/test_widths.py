"""80 columns and wide terminals: the headless summary, `report` and `plan` break no word or number
across lines, stack one block per arm when narrow, and use a table when there is room."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from engine.log import events as ev
from engine.log.runlog import read_events
from engine.log.state import RunState
from engine.log.summary import arm_rows
from engine.plans.describe import describe_layout
from engine.plans.plan_record import PlanGrid
from freeze_tui.cli.headless import epoch_plan, print_summary
from freeze_tui.draw.plan_grid import render_grid, render_plans
from freeze_tui.draw.report import pack_fields, report_renderable, table_cells
from tests.layouts import gpt2_layout
from tests.synthetic_log import synthetic_events

# the two re-recorded runs (the LoRA run predates their sampling)
SAMPLES = [
    Path(__file__).resolve().parents[2] / "sample_runs" / name
    for name in ("demo-full-targeted-reverse.jsonl", "demo-full-vs-targeted.jsonl")
]
LATE = "+attn.qkv[6:],+mlp[6:]@step 0"


def render(renderable_or_fn, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, highlight=False)
    if callable(renderable_or_fn):
        renderable_or_fn(console)
    else:
        console.print(renderable_or_fn)
    lines = console.export_text().splitlines()
    assert all(len(line) <= width for line in lines)
    return lines


def assert_unsplit(lines: list[str], texts) -> None:
    """Every word and number of `texts` stands whole on one line."""
    for word in {w for text in texts for w in str(text).split()}:
        assert any(word in line for line in lines), f"{word!r} is split or missing:\n" + "\n".join(lines)


def states():
    runs = [RunState().apply_all(read_events(p)) for p in SAMPLES]
    long_names = list(synthetic_events(steps=40, arms=("full", "targeted-late-unfreeze", "reverse-top-four")))
    return [*runs, RunState().apply_all(long_names)]


@pytest.mark.parametrize("width", [80, 160])
def test_headless_summary_breaks_no_word_or_number(width):
    for state in states():
        lines = render(lambda console, s=state: print_summary(s, console), width)
        assert_unsplit(lines, [c for row in arm_rows(state) for c in table_cells(row, intervals=False)])
        assert_unsplit(lines, ["The run finished."])


def test_a_narrow_terminal_gets_one_block_per_arm_and_a_wide_one_a_table():
    state = RunState().apply_all(read_events(SAMPLES[0]))
    narrow, wide = render(report_renderable(state), 80), render(report_renderable(state), 160)
    assert not any("│" in line for line in narrow) and "full" in narrow and "targeted" in narrow
    assert any(line.startswith("│ targeted") for line in wide)
    # p has no interval from 2 prompts (issue 18), r's interval is printed below the table
    assert any(line.startswith("targeted vs full: r ") and "], median step" in line for line in wide)


@pytest.mark.parametrize("width", [80, 160])
def test_plan_breaks_no_word_or_number(width):
    arms = [("full", "full"), ("targeted", "targeted"), ("late", LATE), ("reverse", "reverse")]
    desc = describe_layout("gpt2-small", "gpt2", gpt2_layout(), arms, block_size=128)
    lines = render(render_plans(desc), width)
    assert_unsplit(lines, [LATE, "10,630,656", "124,439,808 parameters", "FLOP ratio", "(8.5 %)"])
    table = any(line.split()[:3] == ["arm", "spec", "trains"] for line in lines)
    assert table == (width == 160)


def test_a_spec_wider_than_the_terminal_breaks_after_its_commas():
    spec = ",".join(f"+re:transformer\\.h\\.{i}\\.attn\\.c_attn\\.weight" for i in range(4))
    lines = [t.plain for t in pack_fields([("spec", spec), ("trains", "8.5 %")], 60, indent=2, split=",")]
    assert all(len(line) <= 60 for line in lines) and len(lines) >= 4
    assert_unsplit(lines, spec.split(","))


def test_a_deep_grid_comes_in_slices_with_whole_block_numbers():
    grid = PlanGrid(blocks=80, roles=["attn.qkv"], cells=[["train"]] * 80)
    lines = render(render_grid(grid, 80), 80)
    rulers = [line.split() for line in lines if line.startswith(" ")]
    assert [int(n) for ruler in rulers for n in ruler] == list(range(0, 80, 5))
    assert sum(line.count("■") for line in lines if line.startswith("attn.qkv")) == 80


def test_progress_totals_honour_max_steps():
    events = list(synthetic_events(steps=120, epochs=2))  # 60 steps per epoch
    events[1] = ev.replaced(events[1], config={**events[1].config, "max_steps": 90})
    state = RunState().apply_all(e for e in events if not (e.kind == "step" and e.step >= 1))
    assert epoch_plan(state) == (60, 2)
    state.apply_all(e for e in events if e.kind == "step" and 1 <= e.step <= 61)
    assert epoch_plan(state) == (30, 2)  # the second epoch runs 30 steps, not 60


@pytest.mark.parametrize("width", [80, 160])
def test_report_as_text_shows_hostile_text_literally(width):
    from tests.engine.test_untrusted import control_chars, hostile_events

    text = "\n".join(render(report_renderable(RunState().apply_all(hostile_events()), "x"), width))
    assert not control_chars(text) and "[bold red]x[/]" in text
