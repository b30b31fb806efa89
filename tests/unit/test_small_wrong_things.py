"""Issue 20's small wrong things: sizes in their unit, exit codes, labels that say what a number is."""

from __future__ import annotations

from engine.run.config import RunConfig


def test_the_tokenizing_line_gives_the_corpus_size_in_its_unit(tmp_path):
    from engine.train.session import RunSession

    session = RunSession(RunConfig(), tmp_path / "r.jsonl", producer="test")
    session._tokenizing(0, 512_000)
    assert session.activity.startswith("tokenizing the corpus (512.0 kB): 0 %")
    session._tokenizing(10, 2_500_000)
    assert "(2.5 MB)" in session.activity
