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


def test_an_epoch_record_takes_over_the_measures_and_an_unmeasured_arm_writes_as_before():
    totals = {"loss_mean": 2.5, "loss_var": 0.1, "t_epoch": 1.0, "t_total": 2.0}
    measures = ev.ArmMeasures(val_loss=2.0, val_batches=[2.0], expected_s=0.4, expected_s_batches=[0.4])
    measured = ev.epoch_record(**totals, measures=measures)
    assert (measured.val_loss, measured.val_batches, measured.expected_s) == (2.0, [2.0], 0.4)
    assert measured.retain_loss is ev.UNSET  # no retain set: not written
    stopped = ev.encode(ev.EpochEnd(epoch=1, arms={"a": ev.epoch_record(**totals)}))
    assert stopped == (
        b'{"kind":"epoch_end","seq":0,"t":0.0,"epoch":1,"arms":{"a":{"loss_mean":2.5,"loss_var":0.1,'
        b'"val_loss":null,"val_batches":[],"t_epoch":1.0,"t_total":2.0}}}'
    )
