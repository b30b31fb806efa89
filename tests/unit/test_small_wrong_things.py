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


def test_a_killed_background_run_exits_with_a_documented_code(tmp_path, monkeypatch, capsys):
    """`run --detach` whose background process is killed (SIGKILL: Popen says -9) exits 1, not 247."""
    import signal
    import subprocess
    import sys

    from freeze_tui.cli import detach

    script = "import sys, time; open(sys.argv[1], 'w').write('{\"kind\":\"run_start\"}\\n'); time.sleep(60)"

    started: list[subprocess.Popen] = []

    def start(argv, log_path, out_path, overwrite, append=False):  # a stand-in run: its log begins, then it waits
        started.append(subprocess.Popen([sys.executable, "-c", script, str(log_path)]))
        return started[0]

    def viewer(path):  # the run is killed while it is watched
        started[0].send_signal(signal.SIGKILL)
        started[0].wait()

    monkeypatch.setattr(detach, "_start", start)
    code = detach.detach_run(RunConfig(), tmp_path / "r.jsonl", ["run"], viewer=viewer)
    assert code == 1
    assert "killed by SIGKILL" in capsys.readouterr().err
    assert detach.background_code(-int(signal.SIGTERM)) == 130 and detach.background_code(2) == 2


def test_the_time_view_says_when_its_r_interval_was_computed():
    from engine.log import events as ev
    from engine.log.state import RunState
    from freeze_tui.app.widgets.time_view import interval_as_of

    state = RunState().apply_all(
        [ev.RunStart(t=0.0, arms=[ev.ArmRecord(name="full")]), ev.Step(t=1.0, step=11, epoch=0)]
    )
    assert interval_as_of(state, 11) == "as of step 12 (recomputed at each epoch end)"  # during epoch 1
    assert "epoch end" not in interval_as_of(state, -1)
    state.apply(ev.RunEnd(t=2.0, status="finished"))
    assert interval_as_of(state, 11) == "over the whole run"
