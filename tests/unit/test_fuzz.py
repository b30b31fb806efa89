"""Property tests of the log reader (issue 6): whatever bytes a log holds, the only exception that
escapes `read_events` and `LogFollower.poll` is LogError (a FreezeTuiError: one clear line, exit 2),
and whatever decodes folds into RunState, and renders as a report, without raising.

(The spec parser's properties live in test_spec.py.)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.errors import FreezeTuiError, LogError
from engine.log.events import EVENT_TYPES, encode, from_dict, to_dict
from engine.log.runlog import LogFollower, read_events
from engine.log.state import RunState
from engine.log.summary import arm_rows, summarize
from freeze_tui.draw.report import markdown_report
from tests.synthetic_log import synthetic_events

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALE = float(os.environ.get("FREEZE_TUI_FUZZ_SCALE", "1"))  # e.g. 20 for a long hunt


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


HEADER = b'{"kind":"header","seq":0,"t":1.0,"schema":1,"producer":"freeze-tui 0.1.0","run_id":"x"}\n'
# A small real run, as dicts: the base that mutations start from (so they reach the reducer's corners).
BASE = [to_dict(e) for e in synthetic_events(steps=6, arms=("full", "targeted"), n_blocks=2, epochs=2, norm_every=2)]


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def read_all(path: Path) -> list:
    """Events up to the first unreadable line (what a viewer shows before it reports the error)."""
    out = []
    try:
        for event in read_events(path):
            out.append(event)
    except LogError as exc:
        assert isinstance(exc, FreezeTuiError) and str(exc) and "\n" not in str(exc)
    return out


def fold_and_render(events: list) -> None:
    state = RunState().apply_all(events)
    arm_rows(state)
    summarize(state)
    markdown_report(state, "fuzz.jsonl")
    state.total_steps, state.elapsed, state.p_pre()
    for name in state.arms:
        state.arm_time(name), state.saving(name), state.p_post(name), state.tokens_per_s(name)


# -- strategies ---------------------------------------------------------------------------------------------
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def dumps(obj) -> bytes:
    """Like our writer: compact, kind first (so the typed fast paths are hit), NaN/inf allowed (invalid)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated_event(draw) -> bytes:
    base = dict(draw(st.sampled_from(BASE)))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop", "nested", "kind"]))
        keys = list(base)
        if action == "set":
            base[draw(st.sampled_from(keys + ["extra"]))] = draw(json_value)
        elif action == "drop" and len(keys) > 1:
            base.pop(draw(st.sampled_from(keys[1:])))
        elif action == "nested":
            containers = [k for k, v in base.items() if isinstance(v, dict) and v]
            if containers:
                key = draw(st.sampled_from(containers))
                inner = dict(base[key])
                sub = draw(st.sampled_from(list(inner)))
                inner[sub] = draw(json_value)
                base[key] = inner
        else:
            base["kind"] = draw(st.sampled_from([*EVENT_TYPES, "bogus", 3, None]))
    if "kind" in base:  # keep kind first, as the writer does
        base = {"kind": base.pop("kind"), **base}
    return dumps(base)


garbage_line = st.one_of(
    st.binary(max_size=60), st.text(max_size=40).map(lambda s: s.encode("utf-8", "replace")), json_value.map(dumps)
)
log_body = st.lists(st.one_of(mutated_event(), mutated_event(), garbage_line), max_size=25)


def assemble(lines: list[bytes], cut: int | None, header: bytes = HEADER) -> bytes:
    data = header + b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
    return data if cut is None else data[: len(header) + cut]


# -- properties -----------------------------------------------------------------------------------------------
@settings(max_examples=examples(600), **SETTINGS)
@given(st.one_of(st.binary(max_size=400), st.binary(max_size=400).map(lambda b: HEADER + b)))
def test_random_bytes_only_raise_log_error(workdir, data):
    path = workdir / "bytes.jsonl"
    path.write_bytes(data)
    fold_and_render(read_all(path))


@settings(max_examples=examples(500), **SETTINGS)
@given(log_body, st.one_of(st.none(), st.integers(0, 4000)))
def test_mutated_logs_only_raise_log_error_and_always_fold(workdir, lines, cut):
    path = workdir / "mutated.jsonl"
    path.write_bytes(assemble(lines, cut))
    events = read_all(path)
    assert events and events[0].kind == "header"
    fold_and_render(events)


@settings(max_examples=examples(200), **SETTINGS)
@given(st.lists(mutated_event(), max_size=20))
def test_valid_json_lines_of_any_content_fold(workdir, lines):
    """Lines that all decode (no cut, no garbage): every one reaches the reducer, nothing raises."""
    path = workdir / "decoded.jsonl"
    path.write_bytes(assemble(lines, None))
    fold_and_render(read_all(path))


@settings(max_examples=examples(300), **SETTINGS)
@given(log_body, st.lists(st.integers(1, 300), min_size=1, max_size=12))
def test_follower_poll_only_raises_log_error(workdir, lines, chunks):
    """A writer appends in arbitrary pieces (mid-line too); poll returns whole events or raises LogError."""
    data = assemble(lines, None)
    path = workdir / "follow.jsonl"
    path.write_bytes(b"")
    follower = LogFollower(path)
    state, pos = RunState(), 0
    try:
        with open(path, "ab") as f:
            for size in [*chunks, len(data)]:
                f.write(data[pos : pos + size])
                f.flush()
                pos += size
                try:
                    state.apply_all(follower.poll())
                except LogError as exc:
                    assert str(exc) and "\n" not in str(exc)
                    return
    finally:
        follower.close()
    markdown_report(state)


@settings(max_examples=examples(300), **SETTINGS)
@given(st.lists(st.sampled_from(BASE), max_size=30))
def test_reordered_real_events_fold(events):
    """Real events in any order, repeated or missing (a hand-edited log): the reducer copes."""
    decoded = [from_dict(d) for d in events]
    fold_and_render(decoded)


def test_the_base_log_is_what_the_writer_writes():
    """The mutations start from lines byte-identical to our writer's, so the fast paths are exercised."""
    for event in synthetic_events(steps=2, n_blocks=2, epochs=1):
        assert dumps(to_dict(event)) == encode(event) or any(
            isinstance(v, float) and (math.isnan(v) or math.isinf(v)) for v in to_dict(event).values()
        )
    assert issubclass(EVENT_TYPES["step"], msgspec.Struct)


def test_non_finite_numbers_the_writer_writes_read_back(workdir):
    """NaN/inf are written as null; every field that can hold one must read null back (a sample with no
    generated token has p = NaN: its log used to be unreadable from that line on)."""
    from engine.log import events as ev
    from engine.log.runlog import LogWriter

    nan, inf = math.nan, math.inf
    events = [
        ev.Header(),
        ev.RunStart(arms=[ev.ArmRecord(name="a", flop_ratio=inf, r_pred=nan)]),
        ev.Sample(p=nan),
        ev.Step(arms={"a": ev.ArmStep(loss=nan, dt=inf, lr=1e-3)}),
        ev.DW.of(0, {"a": ev.ArmDW({"h.0.attn.q": nan})}),
        ev.EpochEnd(arms={"a": ev.ArmEpoch(loss_mean=nan, val_loss=-inf)}),
        ev.RunEnd(summary={"arms": {"a": {"T": nan}}, "r": {"a": nan}}),
    ]
    path = workdir / "nonfinite.jsonl"
    path.unlink(missing_ok=True)
    writer = LogWriter(path)
    for i, e in enumerate(events):
        writer.write(ev.stamped(e, i, float(i)))
    writer.close()
    back = list(read_events(path))
    assert [e.kind for e in back] == [e.kind for e in events]
    assert back[2].p is None and back[3].arms["a"].loss is None
    fold_and_render(back)
