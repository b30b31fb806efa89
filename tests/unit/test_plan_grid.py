"""Plan grid drawing and the torch-free boundary of the plan modules."""

import subprocess
import sys

from rich.console import Console

from engine.plans.describe import describe_layout, plan_grid
from engine.plans.freeze import resolve_plan
from engine.plans.plan_record import PlanGrid
from freeze_tui.app.widgets.plan_view import grid_renderable
from freeze_tui.draw.plan_grid import render_grid, render_plans
from tests.layouts import gpt2_layout


def plain(renderable, width=100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_grid_of_targeted_on_gpt2_small():
    layout = gpt2_layout()
    grid = plan_grid(resolve_plan("t", "targeted,+mlp[-1:]@epoch 1,+re:h\\.0\\.attn\\.c_attn\\.weight", layout), layout)
    assert grid.blocks == 12 and grid.roles == ["attn.qkv", "attn.o", "mlp", "norm"]
    assert [row[0] for row in grid.cells] == ["partial"] + ["frozen"] * 5 + ["train"] * 6
    assert grid.cells[11][2] == "later" and grid.tied == ["embed", "head"]
    lines = plain(render_grid(grid)).splitlines()
    assert lines[0].split() == ["0", "5", "10"]
    assert lines[1] == "attn.qkv  ◐·····■■■■■■"
    assert lines[3] == "mlp       ···········◷"
    assert lines[5].startswith("embed ·  pos ·  head ·  final_norm ·  (embed = head: one tied tensor)")
    assert lines[6] == "■ train  · frozen  ◐ partial  ◷ later"


def test_small_grids_number_every_block_and_skip_absent_roles():
    grid = PlanGrid(
        blocks=3,
        roles=["attn.q", "mlp"],
        cells=[["train", "absent"]] * 3,
        other={"embed": "train", "pos": "absent", "head": "frozen", "final_norm": "frozen"},
    )
    lines = plain(render_grid(grid)).splitlines()
    assert lines[0].strip() == "012" and lines[1] == "attn.q  ■■■" and lines[2].rstrip() == "mlp"
    assert lines[3] == "embed ■  head ·  final_norm ·"


def test_unknown_cells_do_not_crash():
    """A cell state this version does not know draws as "?"; a log's grid that is no PlanGrid (a cell
    that is no word, a row shorter than the roles) is said to be unreadable, not drawn."""
    assert "?" in plain(render_grid(PlanGrid(blocks=1, roles=["mlp"], cells=[["someday"]])))
    assert PlanGrid.read({"blocks": 1, "roles": ["mlp"], "cells": [[True]], "other": {}}) is None
    for bad in (
        {"blocks": 1, "roles": ["mlp"], "cells": [[True]]},
        {"blocks": 1, "roles": ["mlp", "norm"], "cells": [["train"]]},
    ):
        assert "could not be read" in plain(grid_renderable(bad))
    assert "■" in plain(grid_renderable({"blocks": 1, "roles": ["mlp"], "cells": [["train"]]}))


def test_render_plans_table():
    arms = [("full", "full"), ("t", "targeted"), ("r", "reverse")]
    desc = describe_layout("gpt2-small", "gpt2", gpt2_layout(), arms, block_size=128)
    text = plain(render_plans(desc), width=120)
    assert "model gpt2-small (gpt2): 124,439,808 parameters, 12 blocks" in text
    assert "10,630,656 (8.5 %)" in text and "0.58" in text and "42.3 %" in text
    assert "0.96   3.8 %" in text  # r_pred to a tenth of a point, not a whole (truncated or rounded) one


def test_plan_modules_do_not_import_torch():
    code = (
        "import sys, engine.plans.spec, engine.plans.roles, engine.plans.freeze, engine.plans.flops, "
        "freeze_tui.draw.plan_grid, "
        "engine.plans.describe, engine.train.models; assert 'torch' not in sys.modules "
        "and 'transformers' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
