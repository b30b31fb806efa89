"""The system panel (issue 20): CPU %, RAM and the run's RSS through a fake psutil, carried by the
heartbeat, folded by RunState and shown in the header (wide) and the Time view (any width)."""

from __future__ import annotations

import types

from msgspec import UNSET
from rich.console import Console

from engine.core.activity import Activity
from engine.log import events as ev
from engine.log.state import RunState
from engine.run.heartbeat import HeartbeatThread
from engine.run.system import SystemSampler
from freeze_tui.app.activity import system_brief
from freeze_tui.app.widgets.header_bar import SourceView, progress_line
from freeze_tui.app.widgets.time_view import time_renderable
from tests.synthetic_log import synthetic_events

GIB = 2**30


class FakePsutil:
    """psutil's calls the sampler makes, with set answers; `broken` names calls that raise."""

    def __init__(self, broken: tuple[str, ...] = ()) -> None:
        self.broken, self.cpu_calls = broken, 0

    def _check(self, name: str) -> None:
        if name in self.broken:
            raise OSError(name)

    def cpu_percent(self, interval=None):
        self._check("cpu_percent")
        self.cpu_calls += 1
        return 87.46

    def cpu_count(self, logical=True):
        return 2

    def virtual_memory(self):
        self._check("virtual_memory")
        return types.SimpleNamespace(total=8 * GIB, available=5 * GIB)

    def Process(self):
        self._check("Process")
        return types.SimpleNamespace(memory_info=lambda: types.SimpleNamespace(rss=GIB + GIB // 4))


def test_the_sampler_reads_cpu_ram_and_rss_and_leaves_out_what_fails():
    fake = FakePsutil()
    sampler = SystemSampler(fake)
    assert fake.cpu_calls == 1  # primed: psutil's first cpu_percent only starts the interval
    assert sampler.read() == {
        "cpu_pct": 87.5,
        "cpu_count": 2,
        "ram_used": 3 * GIB,
        "ram_total": 8 * GIB,
        "rss": 1.25 * GIB,
    }
    partial = SystemSampler(FakePsutil(broken=("virtual_memory", "Process"))).read()
    assert partial == {"cpu_pct": 87.5, "cpu_count": 2}
    assert SystemSampler(FakePsutil(broken=("cpu_percent", "virtual_memory", "Process"))).read() == {}


def test_the_heartbeat_carries_the_readings_every_few_seconds():
    emitted: list = []
    beats = HeartbeatThread(Activity(), emitted.append)
    beats.beat()  # the first beat starts psutil's CPU interval: nothing to report yet
    beats.system, beats._system_due = SystemSampler(FakePsutil()), 0.0
    beats.beat()
    beats.beat()  # within GPU_EVERY_S of the last reading: none
    systems = [e.system for e in emitted if isinstance(e, ev.Heartbeat)]
    assert systems[0] is UNSET and systems[1]["ram_used"] == 3 * GIB and systems[2] is UNSET


def test_an_old_heartbeat_reads_and_reencodes_unchanged_and_a_new_one_round_trips():
    old = b'{"kind":"heartbeat","seq":3,"t":1.5,"phase":"step","seconds":0.5,"step":2,"epoch":0,"pid":7,"host":"h"'
    old += b',"gpus":[],"session":{}}'
    decoded = ev.decode(old)
    assert isinstance(decoded, ev.Heartbeat) and decoded.system is UNSET and ev.encode(decoded) == old
    new = ev.Heartbeat(seq=4, t=2.0, phase="step", system={"cpu_pct": 50.0, "rss": 10})
    assert ev.decode(ev.encode(new)) == new


def _state_with_readings(finished: bool = False) -> RunState:
    state = RunState().apply_all(synthetic_events(steps=20, finished=finished))
    system = {"cpu_pct": 87.5, "cpu_count": 2, "ram_used": 3 * GIB, "ram_total": 8 * GIB, "rss": 1.25 * GIB}
    state.apply(ev.Heartbeat(seq=state.n_events, t=state.t_last, phase="step", system=system))
    state.apply(ev.Heartbeat(seq=state.n_events, t=state.t_last, phase="step"))  # between readings: kept
    return state


def _plain(renderable, width: int = 200) -> str:
    console = Console(width=width, color_system=None)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def test_readings_are_folded_and_shown_compactly():
    state = _state_with_readings()
    assert system_brief(state) == "CPU 88 % · RAM 3.0/8.0 GiB · RSS 1.25 GiB"
    assert system_brief(RunState()) == ""
    src = SourceView(mode="watch")
    assert "CPU 88 % · RAM 3.0/8.0 GiB" in progress_line(state, src, width=160).plain
    assert "CPU" not in progress_line(state, src, width=80).plain  # 80 columns: the Time view's first line
    assert _plain(time_renderable(state), 80).splitlines()[0] == "system CPU 88 % · RAM 3.0/8.0 GiB · RSS 1.25 GiB"
    assert "CPU" not in _plain(time_renderable(RunState().apply_all(synthetic_events(steps=5))))
