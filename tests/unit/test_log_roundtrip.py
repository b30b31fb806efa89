"""Codec, writer, reader and follower of the JSONL run log."""

import math

import pytest

from engine.core.errors import FreezeTuiError, LogError
from engine.log import events as ev
from engine.log.runlog import LogFollower, LogWriter, read_events


def _events():
    return [
        ev.Header(seq=0, t=1.0, producer="freeze-tui 0.1.0", run_id="r1"),
        ev.RunStart(seq=1, t=1.1, config={"epochs": 1}, arms=[ev.ArmRecord(name="full", spec="full")]),
        ev.Step(seq=2, t=1.2, step=0, epoch=0, arms={"full": ev.ArmStep(loss=3.5, dt=0.1, lr=1e-3)}),
        ev.DW.of(0, {"full": ev.ArmDW({"h.0.attn.q": 0.25})}, seq=3, t=1.3),
        ev.Sample(seq=4, t=1.4, phase="pre", arm="*", prompt="[bold]x", text="\x1b[2J", tokens=[["a", True]], p=1.0),
        ev.Warning(seq=5, t=1.5, message="careful", arm="full"),
        ev.RunEnd(seq=6, t=1.6, status="finished", summary={"arms": {}}),
    ]


def test_round_trip(tmp_path):
    path = tmp_path / "run.jsonl"
    writer = LogWriter(path)
    for e in _events():
        writer.write(e)
    writer.close()
    assert list(read_events(path)) == _events()


def test_nan_is_written_as_null_and_read_back():
    line = ev.encode(ev.Step(step=1, arms={"full": ev.ArmStep(loss=math.nan, dt=0.1, lr=0.0)}))
    assert b"null" in line
    assert ev.decode(line).arms["full"].loss is None


def test_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / "run.jsonl"
    writer = LogWriter(path)
    for e in _events()[:3]:
        writer.write(e)
    writer.close()
    with open(path, "ab") as f:
        f.write(b'{"kind":"step","seq":3,"t":1.3,"st')
    assert [e.kind for e in read_events(path)] == ["header", "run_start", "step"]


def test_unknown_schema_is_refused(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_bytes(ev.encode(ev.Header(schema=2, producer="freeze-tui 9.0")) + b"\n")
    with pytest.raises(LogError, match="schema 2"):
        list(read_events(path))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\xff\xfe binary\n", "line 1: not valid JSON"),
        (b'{"kind": "step", "seq": 0}\n', "not a header"),
        (b'{"kind": "header", "schema": 1}\n{"kind": "step", "step": "x"}\n{"kind":"run_end"}\n', "line 2"),
        (b'{"kind": "header", "schema": 1}\n[1, 2]\n{"kind":"run_end"}\n', "line 2"),
    ],
)
def test_bad_logs_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(LogError, match=message):
        list(read_events(path))


def test_missing_log(tmp_path):
    with pytest.raises(LogError, match="does not exist"):
        list(read_events(tmp_path / "nope.jsonl"))


def test_writer_refuses_existing_log_unless_overwrite(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text("precious\n")
    with pytest.raises(FreezeTuiError, match="already exists"):
        LogWriter(path)
    assert path.read_text() == "precious\n"
    LogWriter(path, overwrite=True).close()
    assert path.read_text() == ""


def test_follower_sees_only_complete_lines(tmp_path):
    path = tmp_path / "run.jsonl"
    writer = LogWriter(path)
    follower = LogFollower(path)
    assert follower.poll() == []
    events = _events()
    writer.write(events[0])
    assert follower.poll() == [events[0]]
    line = ev.encode(events[1]) + b"\n"
    with open(path, "ab") as f:
        f.write(line[:10])
        f.flush()
        assert follower.poll() == []
        f.write(line[10:])
    assert follower.poll() == [events[1]]
