"""Config validation, corpus reading errors, S, batch order, the coalescing channel."""

import pytest

from engine.core.errors import FreezeTuiError
from engine.core.textfiles import find_text_files, read_corpus, read_text_file
from engine.log import events as ev
from engine.log.channel import Channel
from engine.run.config import RunConfig, parse_arm
from engine.train.data import batch_order, common_token_ids


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"epochs": 0}, "--epochs must be at least 1"),
        ({"batch_size": -1}, "--batch-size must be at least 1"),
        ({"block_size": 0}, "--block-size"),
        ({"lr": -1.0}, "--lr must be a positive"),
        ({"lr": 0.0}, "--lr must be a positive"),
        ({"lr": float("inf")}, "--lr must be a positive"),
        ({"device": "gpu"}, "--device 'gpu'"),
        ({"dtype": "fp8"}, "--dtype"),
        ({"val_fraction": 1.5}, "--val-fraction"),
        ({"arms": (("a", "full"), ("a", "targeted"))}, "two arms are named 'a'"),
        ({"arms": ()}, "no arms"),
        ({"on_nan": "explode"}, "--on-nan"),
    ],
)
def test_bad_config_values(kw, message):
    with pytest.raises(FreezeTuiError, match=message):
        RunConfig(**kw).validate()


def test_parse_arm():
    assert parse_arm("t=+attn.qkv[6:]") == ("t", "+attn.qkv[6:]")
    assert parse_arm("targeted") == ("targeted", "targeted")
    with pytest.raises(FreezeTuiError, match="NAME=SPEC"):
        parse_arm("x=")


def test_data_errors_name_the_file(tmp_path):
    with pytest.raises(FreezeTuiError, match="does not exist"):
        find_text_files((str(tmp_path / "nope.txt"),))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FreezeTuiError, match="no .txt or .md files"):
        find_text_files((str(tmp_path / "empty"),))
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"abc\x00def")
    with pytest.raises(FreezeTuiError, match="b.txt looks binary"):
        read_text_file(binary)
    latin = tmp_path / "l.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(FreezeTuiError, match="l.txt is not UTF-8"):
        read_text_file(latin)
    blank = tmp_path / "blank.txt"
    blank.write_text("   \n")
    with pytest.raises(FreezeTuiError, match="holds no text"):
        read_corpus((str(blank),))


def test_folders_are_read_recursively_in_order(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.md").write_text("b")
    (tmp_path / "d" / "sub" / "a.txt").write_text("a")
    (tmp_path / "d" / "skip.bin").write_bytes(b"\x00")
    files = find_text_files((str(tmp_path / "d"),))
    assert [f.name for f in files] == ["b.md", "a.txt"]


def test_common_tokens_on_a_hand_made_corpus():
    ids = [5, 5, 5, 7, 7, 9, 1, 1, 7, 3]
    assert common_token_ids(ids, 3) == [5, 7, 1]  # 5:3, 7:3 -> smaller id first; then 1:2
    assert common_token_ids(ids, 100) == [5, 7, 1, 3, 9]


def test_batch_order_repeats_with_the_seed_and_differs_by_epoch():
    a = batch_order(20, 4, seed=1, epoch=0)
    assert a == batch_order(20, 4, seed=1, epoch=0)
    assert a != batch_order(20, 4, seed=1, epoch=1)
    assert len(a) == 5 and sorted(i for b in a for i in b) == list(range(20))
    assert len(batch_order(10, 4, seed=0, epoch=0)) == 2  # the incomplete batch is dropped


def test_channel_coalesces_dw_first_and_counts_drops():
    ch = Channel(capacity=10)
    for i in range(6):
        ch.put(ev.Step(step=i))
        ch.put(ev.DW(step=i))
    got = ch.get_batch(0)
    assert len(got) <= 10 and ch.dropped == 12 - len(got)
    assert [e.step for e in got if e.kind == "step"] == list(range(6))  # steps kept while dw can go
    ch.put(ev.RunEnd())
    assert ch.get_batch(0)[-1].kind == "run_end" and ch.drained


def test_every_run_setting_is_documented_and_is_an_option():
    """RunConfig is the one source of run settings: each field has help text and (unless internal)
    an option of `freeze-tui run` with the same default."""
    import dataclasses

    from freeze_tui.cli.main import run
    from freeze_tui.cli.run_options import FIELDS, flag_of

    params = {p.name: p for p in run.params}
    for f in dataclasses.fields(RunConfig):
        assert f.metadata.get("help"), f"RunConfig.{f.name} has no help text"
        if f.name not in FIELDS:
            assert f.metadata.get("cli") is False, f.name
            continue
        assert flag_of(f.name) in params[f.name].opts
        if not params[f.name].multiple:
            assert params[f.name].default == f.default, f.name


def test_options_build_the_same_config_as_the_dataclass():
    from freeze_tui.cli.run_options import config_from

    cfg = config_from({"max_steps": 5, "arms": ("full", "t=+attn.qkv[3:]"), "data": (), "headless": True})
    assert cfg == RunConfig(max_steps=5, arms=(("full", "full"), ("t", "+attn.qkv[3:]")))
    assert config_from({"arms": ()}).arms == RunConfig().arms
