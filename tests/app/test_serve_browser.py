"""`freeze-tui serve` in a real headless Chromium: the page loads, the app runs, its header shows the run.

Chromium comes from the OS packages (.ci/run installs it); playwright drives it over CDP (its own
browser download is not used). Everything binds and connects to 127.0.0.1 only, and every wait is
bounded. Where no Chromium is installed the test skips, unless FREEZE_TUI_REQUIRE_BROWSER=1 (CI).
Set FREEZE_TUI_SCREENSHOT=PATH to keep the screenshot (docs/serve-screenshot.png is one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "sample_runs" / "demo-full-vs-targeted.jsonl"
RUN_ID = json.loads(LOG.read_text().split("\n", 1)[0])["run_id"]  # the app's header line shows it
CHROMIUM = os.environ.get("FREEZE_TUI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

# textual-serve keeps its xterm.js Terminal private: catch it when the page assigns `this.terminal`,
# then read the screen from the terminal's own buffer (it draws on a canvas, not in the DOM).
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.buffer.active) window.__term = value;
  },
});
window.__screenText = () => {
  const t = window.__term;
  if (!t) return "";
  const b = t.buffer.active, lines = [];
  for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l) lines.push(l.translateToString(true)); }
  return lines.join("\\n");
};
"""


def _local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"serve did not listen on 127.0.0.1:{port} within {seconds} s")


@pytest.fixture
def served():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "freeze_tui", "serve", str(LOG), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the app sessions it starts end with it
    )
    try:
        _wait_for_port(port, proc, 60)
        url = proc.stdout.readline().split(" at ", 1)[1].strip()  # the printed URL carries serve's token
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("FREEZE_TUI_REQUIRE_BROWSER") != "1",
    reason="no Chromium installed (apt-get install chromium)",
)
def test_served_page_shows_the_app_header_in_chromium(served, tmp_path):
    if os.environ.get("FREEZE_TUI_REQUIRE_BROWSER") != "1":
        pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "FREEZE_TUI_REQUIRE_BROWSER=1 but no chromium on PATH"
    url, _ = served
    shot = Path(os.environ.get("FREEZE_TUI_SCREENSHOT") or tmp_path / "served.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(CATCH_TERMINAL)
            # 127.0.0.1 only: the page's web-font link (fonts.googleapis.com) is refused, not fetched
            page.route("**/*", lambda route: route.continue_() if _local(route.request.url) else route.abort())
            page.goto(url, timeout=60_000)
            page.wait_for_function(f"() => window.__screenText().includes({RUN_ID!r})", timeout=120_000)
            text = page.evaluate("window.__screenText()")
            page.wait_for_timeout(1500)  # let the canvas paint the last frame for the screenshot
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert "freeze-tui" in text and RUN_ID in text
    assert "full" in text and "targeted" in text
    assert shot.stat().st_size > 10_000


def test_serve_refuses_a_bad_log_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "freeze_tui", "serve", str(tmp_path / "missing.jsonl")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr
