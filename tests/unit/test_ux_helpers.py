"""Pure helpers behind the app's keys and drawing: smoothing, decimation, modes, ΔW pages, the
Run view, the palette, screenshot names."""

import math
from pathlib import Path

from rich.console import Console
from rich.style import Style

from engine.log.state import RunState
from freeze_tui.app import modes
from freeze_tui.app.keys import free_name
from freeze_tui.app.widgets.run_view import run_tables
from freeze_tui.draw.colors import PLAIN, Palette, heat_style
from freeze_tui.draw.dw_cells import arm_page, dw_layout, dw_table
from freeze_tui.draw.series import SMOOTH_WEIGHTS, ema_weighted, envelope, next_weight, smoothed_points
from tests.synthetic_log import synthetic_events

NAN = math.nan


def plain_text(renderable) -> str:
    console = Console(width=160, color_system=None)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def test_tensorboard_smoothing_works_from_the_first_point():
    assert ema_weighted([4.0, 4.0, 4.0], 0.9) == [4.0, 4.0, 4.0]  # debiased: no pull towards 0
    out = ema_weighted([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and 0.0 < out[1] < 10.0  # the second point already moves it
    assert ema_weighted([1.0, 5.0], 0.0) == [1.0, 5.0]  # weight 0: raw
    out = ema_weighted([1.0, NAN, 3.0], 0.6)
    assert out[0] == 1.0 and math.isnan(out[1]) and 1.0 < out[2] < 3.0


def test_smoothing_weight_notches():
    assert next_weight(0.9, 1) == 0.95 and next_weight(0.99, 1) == 0.99
    assert next_weight(0.9, -1) == 0.8 and next_weight(0.0, -1) == 0.0
    assert SMOOTH_WEIGHTS[0] == 0.0 and SMOOTH_WEIGHTS[-1] == 0.99


def test_envelope_keeps_min_and_max_in_order():
    values = [1.0] * 1000
    values[500], values[501] = 9.0, -3.0
    idx, ys = envelope(values, 10)
    assert len(idx) <= 20 and 9.0 in ys and -3.0 in ys
    assert idx == sorted(idx) and ys[idx.index(500)] == 9.0
    idx, ys = envelope([1.0, NAN, 2.0], 10)  # short series come back whole, nan dropped
    assert idx == [0, 2] and ys == [1.0, 2.0]
    values[10] = NAN
    assert all(math.isfinite(y) for y in envelope(values, 10)[1])


def test_modes_and_labels():
    assert modes.mode_of("live", False, False) == "live"
    assert modes.mode_of("live", True, False) == "finished"
    assert modes.mode_of("watch", False, True) == "finished"
    assert modes.mode_of("replay", True, True) == "replay"
    assert modes.mode_label("replay", 20.0) == "REPLAY ×20" and modes.mode_label("replay") == "REPLAY ×max"
    assert modes.mode_label("finished") == "FINISHED" and modes.mode_label("watch") == "WATCH"
    assert modes.paused_label("watch") == "display paused (training continues)"
    assert modes.paused_label("replay") == "replay paused"


def test_keys_follow_mode_and_view():
    def texts(mode, view):
        return " | ".join(k.what for k in modes.keys_for(mode, view))

    assert "stop the run" in texts("live", "loss") and "stop the run" not in texts("replay", "loss")
    assert "stop the run" in texts("watch", "loss") and "pause the display" in texts("watch", "loss")  # issue 20
    assert "smoothing" in texts("replay", "loss") and "smoothing" not in texts("replay", "dw")
    assert "previous / next arms" in texts("finished", "dw")
    assert "pause" not in texts("finished", "loss")


def test_dw_pages_fit_80_columns():
    names = ["full", "targeted", "reverse"]
    assert dw_layout(160, names) == (3, 3)  # all of it, every arm
    assert dw_layout(80, names) == (2, 3)  # no trend, but the three side by side
    assert dw_layout(80, [*names, "lora", "suggested"]) == (1, 5)  # 80x24 with 5 arms: ΔW only
    assert dw_layout(20, names) == (1, 1)
    assert arm_page(names, 1, 2) == (["reverse"], 1, 2)
    assert arm_page(names, 2, 2) == (["full", "targeted"], 0, 2)  # wraps around
    state = RunState().apply_all(synthetic_events(steps=10, arms=("full", "targeted", "reverse")))
    table = dw_table(state, ["reverse"])
    assert table.columns == ["blk", "W", "reverse ΔW", "drift", "trend"] and len(table.rows[0]) == 5
    narrow = dw_table(state, names, parts=1)
    assert narrow.columns == ["blk", "W", "full ΔW", "targeted ΔW", "reverse ΔW"] and len(narrow.rows[0]) == 5


def test_run_tables_show_every_setting():
    state = RunState().apply_all(synthetic_events(steps=3))
    text = plain_text(run_tables(state, "/logs/run.jsonl"))
    for key in ("learning rate", "batch size", "block size (tokens)", "seed", "dtype", "device", "/logs/run.jsonl"):
        assert key in text
    assert "freeze-tui" in text and "UTC" in text and "demo-gpt2-tiny" in text
    assert "no run_start yet" in plain_text(run_tables(RunState()))
    state.arms["targeted"].device = "cuda:1"
    assert "targeted  on cuda:1" in plain_text(run_tables(state))


def test_palette_styles_and_plain_fallback():
    palette = Palette((Style(color="#569cff"), Style(color="#ff9f43")), {"heat-cold": Style(color="#000000")})
    assert palette.arm_rgb(0) == (86, 156, 255) and palette.arm_rgb(2) == (86, 156, 255)  # colours repeat
    assert palette.style("frozen") == PLAIN.style("frozen")  # not in the palette: plain attributes
    palette = Palette(named={"heat-cold": Style(color="#000000"), "heat-hot": Style(color="#ffffff")})
    assert heat_style(1.0, 1.0, 100.0, palette).color.triplet.red == 0
    assert heat_style(100.0, 1.0, 100.0, palette).color.triplet.red == 255
    assert heat_style(1.0, 1.0, 100.0).color is None  # PLAIN: no colour at all


def test_screenshot_names_never_collide(tmp_path: Path):
    first = free_name(tmp_path, "run/1")
    first.write_text("x")
    second = free_name(tmp_path, "run/1")
    assert second != first and second.name.endswith("-2.svg") and "/" not in second.name


def test_readme_key_table_is_the_one_key_table():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert modes.readme_key_table() in readme, "README.md's key table differs from modes.KEYS: paste readme_key_table()"


def test_bindings_tabs_and_help_come_from_the_one_table():
    from freeze_tui.app.keys import BINDINGS

    bound = [(b.key, b.action) for b in BINDINGS]  # type: ignore[union-attr]
    assert bound == [(b.keys, b.action) for k in modes.KEYS for b in k.binds]
    assert [(v.key, f"view('{v.name}')") for v in modes.VIEWS] == [kb for kb in bound if kb[1].startswith("view(")]
    assert modes.KEYS[0].keys == f"1-{len(modes.VIEWS)}" and "Run" in modes.KEYS[0].what
    assert modes.VIEW_ACTIONS == {
        "smooth": "loss",
        "weight": "loss",
        "axis": "loss",
        "zoom": "loss",
        "arms": "loss",
        "difference": "loss",
        "compare": "samples",
        "sample": "samples",
    } | {"arm_page": "dw", "log_y": "loss"}
    help_rows = [k.keys for k in modes.keys_for("replay", "dw")]  # the keys of every view first, then this view's
    assert help_rows == [f"1-{len(modes.VIEWS)}", "? F1", "p", "ctrl+s", "q", "< >", ", .", "e"] + [
        "↑ ↓ ← →",
        "PgUp PgDn Home End",
        "[ ]",
    ]


def test_long_series_are_smoothed_over_bucket_means_with_the_same_time_constant():
    values = [0.0] * 500 + [1.0] * 500
    full_idx, full = smoothed_points(values, 0.9, limit=10_000)
    idx, coarse = smoothed_points(values, 0.9, limit=100)  # buckets of 10 steps, weight 0.9 ** 10
    assert full_idx == list(range(1000)) and len(idx) == len(coarse) == 100
    for i, v in zip(idx, coarse):
        assert abs(v - full[i]) < 0.35  # the same curve, seen every 10 steps
    assert coarse[-1] > 0.99 and coarse[0] == 0.0
