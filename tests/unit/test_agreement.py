"""The ranks' agreement on one run (issue 21, item 4): which difference is named, and how."""

from __future__ import annotations

import pytest

from engine.dist.agreement import DATA, FAILED, SettingsDiffer, check_same_run, first_difference, run_identity
from engine.run.config import RunConfig


def test_identical_identities_agree():
    one = run_identity(RunConfig())
    assert first_difference([one, dict(one), dict(one)]) is None


def test_the_first_rank_that_differs_is_named_with_both_values():
    base = run_identity(RunConfig(max_steps=2))
    other = run_identity(RunConfig(max_steps=3))
    assert first_difference([base, base, other]) == (
        2,
        "ranks were started with different settings: --max-steps is 2 on rank 0 but 3 on rank 2; "
        "start every node (and process) with the same settings",
    )


def test_paths_that_differ_per_node_do_not_count_but_content_does(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "t.txt").write_text("the same words")
    (b / "t.txt").write_text("the same words")
    same = [run_identity(RunConfig(data=(str(a),), log="x.jsonl", threads=1)), run_identity(RunConfig(data=(str(b),)))]
    assert first_difference(same) is None
    (b / "t.txt").write_text("other words")
    rank, message = first_difference([same[0], run_identity(RunConfig(data=(str(b),)))]) or (None, "")
    assert rank == 1 and message.startswith(f"{DATA} differs between rank 0 and rank 1 (content ")


def test_a_rank_that_cannot_read_its_settings_is_named_on_every_rank(tmp_path):
    missing = run_identity(RunConfig(data=(str(tmp_path / "nope"),)))
    assert FAILED in missing
    with pytest.raises(SettingsDiffer) as info:
        check_same_run([run_identity(RunConfig()), missing])
    assert info.value.rank == 1 and "does not exist" in str(info.value)
