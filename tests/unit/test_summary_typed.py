"""The per-arm summary is built as ArmSummary values (issue 19): the partial records it takes over name
ArmSummary fields, and the module that builds it spells no summary key as a string."""

from __future__ import annotations

import ast
from pathlib import Path

from engine.log import events as ev
from engine.log.comparisons import TimeComparison
from engine.log.frontier import FrontierFields

ROOT = Path(__file__).resolve().parents[2]
FIELDS = set(ev.ArmSummary.__struct_fields__)


def test_partial_records_and_seed_means_name_summary_fields():
    for part in (TimeComparison, FrontierFields):
        assert set(part.__struct_fields__) <= FIELDS, part.__name__
    named = [name for mean in ev.SEED_MEANS for name in (mean.field, mean.interval)]
    assert set(named) <= FIELDS and len(set(named)) == len(named)


def test_the_summary_builder_spells_no_summary_key():
    tree = ast.parse((ROOT / "engine" / "log" / "summary.py").read_text(encoding="utf-8"))
    spelled = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in FIELDS]
    assert spelled == []
