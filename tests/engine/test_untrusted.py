"""Hostile and untrusted content (issue 6): text from a log, a model or data is shown literally and
safely; weights load only as tensors; no pickle; no model code unless asked; nothing evaluated.

A view of the terminal is safe when the bytes it writes hold no ESC or other control character
(except newlines) coming from the content, and Rich markup in the content is printed as typed.
"""

from __future__ import annotations

import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.log.runlog import LogWriter, read_events
from engine.log.state import RunState
from engine.run.config import RunConfig
from freeze_tui.cli.headless import print_summary, run_headless
from freeze_tui.draw.report import markdown_report
from freeze_tui.draw.safe_text import clean

ROOT = Path(__file__).resolve().parents[2]
MARKUP = "[bold red]x[/]"
EVIL = f"{MARKUP} \x1b[2J\x1b]0;title\x07 nul\x00 bs\x08 cr\r del\x7f csi\x9b31m bidi\u202e tab\t end"
HUGE = "A" * 50_000 + "\x1b[31m" + MARKUP + "B" * 50_000  # one 100 kB line
ARMS = ("full", f"[/]{MARKUP}", "arm\x1b[2J")


def hostile_events(finished: bool = True) -> list[ev.Event]:
    arm_info = [ev.ArmRecord(name=a, spec=f"+attn {EVIL}", trainable=10, total=100, flop_ratio=0.5) for a in ARMS]
    events = [
        ev.Header(producer=f"freeze-tui {EVIL}", run_id=EVIL),
        ev.RunStart(
            config={"device": EVIL, "epochs": EVIL, "prompt": EVIL, "trust_remote_code": False, "name": EVIL},
            model={"name": EVIL, "n_params": 1234, "n_blocks": 2, "arch": EVIL},
            data={"source": EVIL, "n_tokens": 100, "n_unique": 10, "n_train_batches": 3},
            common_tokens=[[1, EVIL], [2, HUGE]],
            arms=arm_info,
        ),
        ev.Sample(phase="pre", arm="*", prompt=EVIL, text=HUGE, tokens=[[EVIL, True], [HUGE, False]], p=0.5),
    ]
    for step in range(3):
        events.append(
            ev.Step(step=step, epoch=0, arms={a: ev.ArmStep(loss=3.0 - step / 10, dt=0.1, lr=1e-3) for a in ARMS})
        )
    events += [
        ev.Warning(message=EVIL, arm=ARMS[1]),
        ev.Warning(message=HUGE),
        ev.Error(message=EVIL, arm=ARMS[2], fatal=False),
        ev.EpochEnd(
            epoch=0,
            arms={a: ev.ArmEpoch(loss_mean=2.9, loss_var=0.01, val_loss=3.0, t_epoch=0.3, t_total=0.3) for a in ARMS},
        ),
        ev.Sample(phase="epoch", arm=ARMS[1], prompt=EVIL, text=EVIL, tokens=[[EVIL, True]], p=1.0, epoch=0),
        ev.Error(message=HUGE, fatal=True),
    ]
    if finished:
        events.append(ev.RunEnd(status="failed", summary={"arms": {a: {"T": 0.3} for a in ARMS}}))
    return [ev.stamped(e, i, 1.0 + i) for i, e in enumerate(events)]


@pytest.fixture
def hostile_log(tmp_path) -> Path:
    path = tmp_path / "hostile.jsonl"
    writer = LogWriter(path)
    for e in hostile_events():
        writer.write(e)
    writer.close()
    return path


def control_chars(text: str) -> set[str]:
    """Every character a terminal could act on: C0 (but newline), DEL, C1, bidi overrides."""
    return {
        ch
        for ch in text
        if (ord(ch) < 0x20 and ch != "\n")
        or 0x7F <= ord(ch) <= 0x9F
        or 0x202A <= ord(ch) <= 0x202E
        or 0x2066 <= ord(ch) <= 0x2069
    }


def test_the_hostile_log_round_trips_unchanged(hostile_log):
    events = list(read_events(hostile_log))
    assert events[1].model["name"] == EVIL and events[-2].message == HUGE
    assert RunState().apply_all(events).arms.keys() == set(ARMS)


def test_report_shows_hostile_text_literally(hostile_log):
    text = clean(markdown_report(RunState().apply_all(read_events(hostile_log)), "hostile.jsonl"))
    assert not control_chars(text)
    assert MARKUP in text and "␛[2J" in text and "␛]0;title␇" in text
    result = subprocess.run(
        [sys.executable, "-m", "freeze_tui", "report", str(hostile_log)], capture_output=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == b""
    out = result.stdout.decode("utf-8")  # strictly UTF-8
    assert not control_chars(out), sorted(control_chars(out))
    assert MARKUP in out and "Model: " + MARKUP in out


class ListSource:
    """The event-source protocol over a fixed list, in a few batches."""

    mode = "replay"
    failure = None

    def __init__(self, events: list[ev.Event]) -> None:
        self.batches = [events[:3], events[3:8], events[8:]]
        self.done = False

    def get_batch(self, timeout: float) -> list[ev.Event]:
        if self.batches:
            return self.batches.pop(0)
        self.done = True
        return []

    def stop(self) -> None:
        self.done = True


def console_output(fn) -> str:
    """What a colour-less console wrote: every ESC in it came from the content."""
    out = io.StringIO()
    fn(Console(file=out, width=160, color_system=None, highlight=False))
    return out.getvalue()


def test_headless_printer_shows_hostile_text_literally():
    codes = []
    text = console_output(lambda console: codes.append(run_headless(ListSource(hostile_events()), console)))
    assert codes == [1]
    assert not control_chars(text), sorted(control_chars(text))
    assert "warning: [[/][bold red]x[/]] [bold red]x[/] ␛[2J" in text  # arm name, then the message
    assert f"model {MARKUP}" in text and f"arm [/]{MARKUP} · spec +attn {MARKUP}" in text
    assert "error: " in text and text.count("A") < 1200 and len(text) < 20_000  # 100 kB lines are cut to 500
    assert "trust_remote_code ON" not in text


def test_headless_summary_of_a_hostile_state():
    state = RunState().apply_all(hostile_events())
    text = console_output(lambda console: print_summary(state, console))
    assert not control_chars(text)
    assert MARKUP[:10] in text  # arm names in a folded table column
    assert "The run failed" in text


def test_headless_header_says_when_remote_code_is_on():
    events = hostile_events()
    start = events[1]
    events[1] = ev.replaced(start, config={**start.config, "trust_remote_code": True})
    text = console_output(lambda console: run_headless(ListSource(events), console))
    assert "trust_remote_code ON" in text


# -- weights, pickle, remote code, eval: what the code base may never do -----------------------------------
def code_files() -> list[Path]:
    """The project's own Python (not the tests, not the virtual environment)."""
    files = [p for d in ("engine", "freeze_tui", "bench") for p in (ROOT / d).rglob("*.py")]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def calls(source: str, name: str) -> list[str]:
    """The argument text of every `name(` call in source (to its matching parenthesis)."""
    out = []
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", source):
        depth, i = 1, m.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        out.append(source[m.end() : i - 1])
    return out


def test_the_code_base_is_there():
    names = {p.name for p in code_files()}
    assert {"runlog.py", "models.py", "main.py", "headless.py"} <= names


def test_torch_load_only_with_weights_only():
    for path in code_files():
        for args in calls(path.read_text(), "torch.load"):
            assert re.search(r"weights_only\s*=\s*True", args), f"{path}: torch.load({args}) without weights_only=True"


def test_no_pickle_anywhere():
    banned = re.compile(
        r"^\s*(import|from)\s+(c?pickle|_pickle|dill|cloudpickle|joblib|marshal|shelve)\b|"
        r"__import__\(\s*['\"](c?pickle|marshal)",
        re.M,
    )
    for path in code_files():
        assert not banned.search(path.read_text()), f"{path} imports a pickle-like module"


def test_nothing_is_evaluated():
    """No eval/exec/compile of text anywhere (a log, a spec, a config is only ever parsed)."""
    for path in code_files():
        source = path.read_text()
        for name in ("eval", "exec", "compile", "__import__"):
            assert not calls(source, name), f"{path} calls {name}()"
        assert "literal_eval" not in source and "yaml.load(" not in source


def test_weights_are_written_and_shipped_as_safetensors():
    from engine.train.experiment import Experiment

    assert "safe_serialization=True" in inspect.getsource(Experiment.save)
    pickled = [
        p
        for d in ("engine", "freeze_tui")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
    ]
    assert not pickled


def test_trust_remote_code_is_off_unless_asked():
    from engine.train import models
    from freeze_tui.cli.main import plan, run

    assert RunConfig().trust_remote_code is False
    for fn in (models.load_model, models.load_layout, models.resolve_source, models.describe_plans):
        assert inspect.signature(fn).parameters["trust_remote_code"].default is False, fn.__name__
    for command in (run, plan):  # what the command line gives when the flag is not passed
        assert command.make_context(command.name, []).params["trust_remote_code"] is False
    for path in code_files():
        assert not re.search(r"trust_remote_code\s*=\s*True", path.read_text()), path


# -- the same, for real: a pickle bomb and a model that brings its own code -------------------------------
@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("untrusted"), "gpt2", n_layer=2)


class _Bomb:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_weights_file_is_never_unpickled(tiny_gpt2, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from engine.train.models import load_model

    model = tmp_path / "bomb"
    model.mkdir()
    for f in tiny_gpt2.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, model / f.name)
    marker = tmp_path / "EXECUTED"
    _Bomb.marker = str(marker)
    torch.save({**load_file(tiny_gpt2 / "model.safetensors"), "bomb": _Bomb()}, model / "pytorch_model.bin")
    with pytest.raises(FreezeTuiError, match="holds more than tensors") as err:
        load_model(str(model))
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_model_code_runs_only_when_asked(tiny_gpt2, tmp_path):
    import json

    from engine.train.models import load_model

    model = tmp_path / "remote"
    model.mkdir()
    marker = tmp_path / "EXECUTED"
    config = json.loads((tiny_gpt2 / "config.json").read_text())
    config.update(
        model_type="remote_test",
        auto_map={
            "AutoConfig": "configuration_remote.RemoteConfig",
            "AutoModelForCausalLM": "modeling_remote.RemoteModel",
        },
    )
    (model / "config.json").write_text(json.dumps(config))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (model / "configuration_remote.py").write_text(code)
    (model / "modeling_remote.py").write_text(code)
    with pytest.raises(FreezeTuiError, match="needs its own Python code; allow it with --trust-remote-code"):
        load_model(str(model))
    assert not marker.exists()
