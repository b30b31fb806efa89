"""serve's guards (issue 21, items 5-8 and 24): token, Origin, session cap, size clamp, process groups,
URLs from the request's Host, errors told to the browser. An in-process aiohttp server with a stand-in
app command (a real session is tested in Chromium by test_serve_browser)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.core.errors import FreezeTuiError
from freeze_tui.cli.commands.serve_guard import MAX_SIZE, GuardedServer, clamp_size

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "sample_runs" / "demo-full-vs-targeted.jsonl"

# A stand-in app: prints its size and pid file, ignores SIGTERM, and leaves a grandchild in its group.
STANDIN = (
    "import os, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "open(os.environ['PIDS'], 'a').write(f'{os.getpid()} {kid.pid}\\n')\n"
    "size = (os.environ['COLUMNS'] + 'x' + os.environ['ROWS']).encode()\n"
    "sys.stdout.buffer.write(b'__GANGLION__\\nD' + len(size).to_bytes(4, 'big') + size)\n"
    "sys.stdout.flush()\n"
    "time.sleep(600)\n"
)


# a session's pipes are closed by its stop, in its loop: one left to garbage collection after the loop
# closed would be "Event loop is closed" here
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _server(tmp_path, check=lambda: None, max_sessions=2) -> GuardedServer:
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    os.environ["PIDS"] = str(tmp_path / "pids")
    return GuardedServer(
        f"{sys.executable} {script}", host="127.0.0.1", port=0, max_sessions=max_sessions, check=check, title="t"
    )


def _run(coro_fn, server):
    async def main():
        client = TestClient(TestServer(await server._make_app()))
        await client.start_server()
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waits for its parent only
        return f.read().split(") ")[1][0] != "Z"


def test_5_pages_and_sockets_need_the_token_and_the_same_origin(tmp_path):
    server = _server(tmp_path)

    async def probe(client):
        host = f"127.0.0.1:{client.port}"
        codes = [
            (await client.get("/")).status,
            (await client.get("/?token=wrong")).status,
            (await client.get(f"/?token={server.token}")).status,
            (await client.get("/ws/wrong", headers={"Origin": f"http://{host}"})).status,
            (await client.get(f"/ws/{server.token}", headers={"Origin": "http://evil.example"})).status,
            (await client.get(f"/ws/{server.token}", headers={"Origin": f"http://{host}.evil.example"})).status,
        ]
        ws = await client.ws_connect(f"/ws/{server.token}", headers={"Origin": f"http://{host}"})
        first = await ws.receive(timeout=30)
        await ws.close()
        return codes, first.data

    codes, first = _run(probe, server)
    assert codes == [403, 403, 200, 403, 403, 403]
    assert b"80x24" in first  # the session started: the right token and Origin get in


def test_7_sizes_are_clamped_sessions_capped_and_process_groups_killed(tmp_path):
    server = _server(tmp_path, max_sessions=2)

    async def probe(client):
        origin = {"Origin": f"http://127.0.0.1:{client.port}"}
        big = await client.ws_connect(f"/ws/{server.token}?width=5000&height=3000", headers=origin)
        small = await client.ws_connect(f"/ws/{server.token}?width=-5&height=abc", headers=origin)
        sizes = [(await big.receive(timeout=30)).data, (await small.receive(timeout=30)).data]
        third = await client.ws_connect(f"/ws/{server.token}", headers=origin)
        refused = (await third.receive(timeout=10)).data
        await big.close()
        await small.close()
        for _ in range(300):  # the server stops each session once its socket closed (a stop may take 4 x 3 s)
            if server.sessions == 0 and not server.services:
                break
            await asyncio.sleep(0.1)
        return sizes, refused

    sizes, refused = _run(probe, server)
    assert sizes[0].strip() == f"{MAX_SIZE[0]}x{MAX_SIZE[1]}".encode()
    assert sizes[1].strip() == b"20x24"
    assert b"2 sessions are open already" in refused
    pids = [int(p) for line in (tmp_path / "pids").read_text().split("\n") if line for p in line.split()]
    assert len(pids) == 4
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a session's process (or its child) outlived its socket"


@pytest.mark.parametrize(
    ("host", "websocket"),
    [("box.example:8000", "ws://box.example:8000/ws/"), ("[::1]:8000", "ws://[::1]:8000/ws/")],
)
def test_8_page_urls_follow_the_request_host(tmp_path, host, websocket):
    server = _server(tmp_path)

    async def probe(client):
        return await (await client.get(f"/?token={server.token}", headers={"Host": host})).text()

    page = _run(probe, server)
    assert f'data-session-websocket-url="{websocket}{server.token}"' in page
    assert "0.0.0.0" not in page and 'href="/static/css/xterm.css"' in page


def test_8_banner_names_this_machine_for_a_wildcard_bind_and_brackets_ipv6():
    from freeze_tui.cli.commands.serve import _shown_host, _url_host

    assert _shown_host("0.0.0.0") not in ("0.0.0.0", "")
    assert _url_host("::1") == "[::1]" and _url_host("127.0.0.1") == "127.0.0.1"


def test_24_a_log_gone_after_start_is_told_to_the_browser(tmp_path):
    def gone():
        raise FreezeTuiError("log run.jsonl does not exist")

    server = _server(tmp_path, check=gone)

    async def probe(client):
        ws = await client.ws_connect(f"/ws/{server.token}", headers={"Origin": f"http://127.0.0.1:{client.port}"})
        return (await ws.receive(timeout=10)).data

    assert b"run.jsonl does not exist" in _run(probe, server)
    assert not (tmp_path / "pids").exists()  # no app was started for it


def test_24_clamp_size_reads_junk_as_defaults():
    assert clamp_size("-80", "-1") == (20, 5)
    assert clamp_size(None, "1e9") == (80, 24)
    assert clamp_size("100000", 10**30) == MAX_SIZE


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freeze_tui", "serve", str(LOG), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_24_port_in_use_and_bad_host_are_one_line_without_a_banner():
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        result = _serve("--port", str(held.getsockname()[1]))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "is in use; pass another --port" in result.stderr
    result = _serve("--host", "no-such-host.invalid")
    assert result.returncode == 2 and result.stdout == "" and "--port" not in result.stderr
    assert result.stderr.count("\n") == 1 and "--host 'no-such-host.invalid'" in result.stderr


@pytest.mark.anyio
async def test_6_a_served_app_sends_screenshots_to_the_browser_and_writes_nothing(tmp_path, log_path, monkeypatch):
    from engine.log.sources import ReplaySource
    from freeze_tui.app.app import FreezeApp
    from tests.app.helpers import play_to_end, quiet

    shots = tmp_path / "shots"
    app = quiet(FreezeApp(ReplaySource(log_path, None), screenshot_dir=shots))
    delivered = []
    monkeypatch.setattr(FreezeApp, "is_web", property(lambda self: True))
    monkeypatch.setattr(app, "deliver_screenshot", lambda name=None, *a, **k: delivered.append(name))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        await pilot.press("ctrl+s", "S")
        await pilot.pause()
        messages = " ".join(str(n.message) for n in app._notifications)
    assert len(delivered) == 2 and all(name.endswith(".svg") for name in delivered)
    assert not shots.exists() and "sent to your browser" in messages and str(tmp_path) not in messages
