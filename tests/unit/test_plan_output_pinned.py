"""`plan` prints what it printed before its description was typed (engine.plans.plan_record): the
`--json` bytes and the text, for the demo with freeze, LoRA, DoRA and scheduled arms, --shards and
--replicas, --gpus, checkpoints, and a plan that does not fit on two devices. The expected outputs
under tests/data/golden/plan-*.{json,txt} were recorded from main at 46d7b9d; a meant change re-records
them with FREEZE_TUI_UPDATE_GOLDEN=1 and says why in its commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.log.events import ArmRecord
from engine.plans.plan_record import PlanArm
from freeze_tui.cli.main import main

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden"
UPDATE = os.environ.get("FREEZE_TUI_UPDATE_GOLDEN") == "1"
ARMS = ["--arm", "full=full", "--arm", "lo=lora:4:attn.qkv,mlp", "--arm", "do=dora:2/8:attn.o"]
ARMS += ["--arm", "s=-all,+mlp[2:]@step 10"]
CASES = {
    "plan-arms.json": ["--json", *ARMS, "--device", "cpu", "--memory-limit", "1GB", "--shards", "2"]
    + ["--replicas", "2", "--gpus", "8", "--checkpoint-every", "50", "--log", "runs/pinned.jsonl"],
    "plan-arms.txt": [*ARMS, "--device", "cpu", "--memory-limit", "1GB", "--shards", "2", "--gpus", "8"]
    + ["--checkpoint-every", "5m", "--log", "runs/pinned.jsonl"],
    "plan-misfit.json": ["--json", "--device", "cpu,cpu", "--memory-limit", "1kB", "--dtype", "bf16"],
    "plan-misfit.txt": ["--device", "cpu,cpu", "--memory-limit", "1kB", "--dtype", "bf16", "--batch-size", "2"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_plan_output_is_unchanged(case, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as ended:
        main(["plan", *CASES[case]])
    out, err = capsys.readouterr()
    assert ended.value.code == 0 and err == ""
    if UPDATE:
        (GOLDEN / case).write_text(out, encoding="utf-8")
    assert out == (GOLDEN / case).read_text(encoding="utf-8")


def test_a_plan_arm_has_the_fields_of_the_run_start_record_in_their_order():
    """`plan --json` prints an arm's run_start record (an adapter kind's own field included) then its
    plan: a kind that adds its field to ArmRecord adds it to PlanArm too, in the same place."""
    shared = [name for name in PlanArm.__struct_fields__ if name in ArmRecord.__struct_fields__]
    assert set(ArmRecord.__struct_fields__) - {"init_checksum"} <= set(shared)
    assert shared == [name for name in ArmRecord.__struct_fields__ if name in shared]
