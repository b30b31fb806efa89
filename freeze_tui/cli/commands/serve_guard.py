"""textual-serve's Server with the guards a shared machine needs (issue 21, items 5-8 and 24).

* A random token in the printed URL: the page is `/?token=T` and its websocket `/ws/T`; without the
  token nothing but the static assets (textual-serve's own JS/CSS) is served.
* The websocket checks Origin against Host: a page of another site cannot drive a session even when
  it guessed the port (browsers always send Origin on a websocket; a client without one needs the token).
* At most `max_sessions` sessions at once; terminal sizes are clamped, at start and on resize.
* Each session's app runs in its own process group, which is killed when the socket closes: a child
  that ignores SIGTERM or never reads its input does not outlive its tab.
* The page's URLs come from the request's Host header, so `--host 0.0.0.0` or an IPv6 address gives
  URLs a teammate's browser can use.
* A log that went away after start is told to the browser, not only to the server's console.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

MIN_SIZE, MAX_SIZE = (20, 5), (400, 150)  # cells: wider than any screen, far below 5000 x 3000
STOP_GRACE_S = 3.0

log = logging.getLogger("freeze-tui.serve")


def clamp_size(width: Any, height: Any) -> tuple[int, int]:
    """A terminal size from a browser, as ints inside MIN_SIZE..MAX_SIZE (junk reads as the default 80x24)."""

    def number(value: Any, default: int) -> int:
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            return default

    w, h = number(width, 80), number(height, 24)
    return min(max(w, MIN_SIZE[0]), MAX_SIZE[0]), min(max(h, MIN_SIZE[1]), MAX_SIZE[1])


def origin_matches(origin: str | None, host: str | None) -> bool:
    """Does the Origin header name the host:port the request was sent to? No Origin (not a browser): yes."""
    if origin is None:
        return True
    if not host:
        return False
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and rest.rstrip("/").lower() == host.lower()


class GroupAppService(AppService):
    """One session's app in its own process group; stop() ends the whole group, also when it hangs."""

    async def _open_app_process(self, width: int = 80, height: int = 24):
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        task, process = self._task, self._process
        if task is None:
            return
        self._task = None
        try:
            with contextlib.suppress(Exception):
                await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
                await asyncio.wait_for(self.send_meta({"type": "quit"}), STOP_GRACE_S)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
            task.cancel()  # its reading of the app's output ends here: the pipes are read to their end below
            with contextlib.suppress(BaseException):
                await task
            if process is not None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, sig)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(_group_ended(process), STOP_GRACE_S)
                        break
        finally:  # also when this stop is cancelled (the server shutting down): a pipe left open is closed
            # at garbage collection, after its loop is gone ("Event loop is closed")
            if self._stdin is not None:  # the last pipe: its transport closes with it, in this loop
                self._stdin.close()
                with contextlib.suppress(Exception):
                    await self._stdin.wait_closed()


async def _group_ended(process: asyncio.subprocess.Process) -> None:
    """The session's process has ended and so has every process that holds its output pipes (a child in
    its group): both pipes at their end, so their transports close in this loop, not at garbage collection
    after the loop is gone ("Event loop is closed")."""
    await process.wait()
    for pipe in (process.stdout, process.stderr):
        while pipe is not None and await pipe.read(1 << 16):
            pass


class GuardedServer(Server):
    def __init__(
        self, command: str, *, host: str, port: int, max_sessions: int, check: Callable[[], None], title: str
    ) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = secrets.token_urlsafe(16)
        self.max_sessions = max_sessions
        self.sessions = 0
        self.services: set[GroupAppService] = set()  # ended with the server too (their own process groups)
        self.check = check  # raises FreezeTuiError when the logs cannot be shown any more

    def initialize_logging(self) -> None:
        """Plain lines: textual-serve's handler prints tracebacks with every local variable."""
        logging.basicConfig(level="INFO", format="freeze-tui serve: %(message)s")

    async def on_startup(self, app: web.Application) -> None:
        """No banner here: `serve` printed the URL (with its token) once the port was bound."""

    async def _make_app(self) -> web.Application:
        import aiohttp_jinja2
        import jinja2

        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get("/ws/{token}", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),  # keys are random
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(*(service.stop() for service in list(self.services)), return_exceptions=True)

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def handle_index(self, request: web.Request) -> Any:
        import aiohttp_jinja2

        if not self._token_ok(request.query.get("token")):
            raise web.HTTPForbidden(text="freeze-tui serve: open the URL with the token that serve printed\n")
        scheme = "wss" if request.scheme == "https" else "ws"
        context = {
            "font_size": min(max(_int(request.query.get("fontsize"), 16), 6), 64),
            "app_websocket_url": f"{scheme}://{request.host}/ws/{self.token}",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not self._token_ok(request.match_info.get("token")):
            raise web.HTTPForbidden(text="wrong token\n")
        if not origin_matches(request.headers.get("Origin"), request.host):
            raise web.HTTPForbidden(text="this page may not open a freeze-tui session (Origin differs from Host)\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        if self.sessions >= self.max_sessions:
            await _tell(websocket, f"freeze-tui serve: {self.max_sessions} sessions are open already; close a tab")
            return websocket
        try:
            self.check()
        except Exception as exc:  # the log went away or became unreadable since serve started
            await _tell(websocket, f"freeze-tui serve: {exc}")
            return websocket
        width, height = clamp_size(request.query.get("width"), request.query.get("height"))
        self.sessions += 1
        service: GroupAppService | None = None
        try:
            service = GroupAppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,  # type: ignore[arg-type]  # as textual-serve passes it
                download_manager=self.download_manager,
                debug=False,
            )
            self.services.add(service)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.warning("a session ended with %s: %s", type(exc).__name__, exc)
        finally:
            self.sessions -= 1
            if service is not None:
                await service.stop()
                self.services.discard(service)
            with contextlib.suppress(Exception):
                await websocket.close()
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
        """textual-serve's loop, with sizes clamped and malformed messages ignored."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                kind, *rest = message.json()
                data = rest[0] if rest else None
            except (ValueError, TypeError):
                continue
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(*clamp_size(data.get("width"), data.get("height")))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


async def _tell(websocket: web.WebSocketResponse, text: str) -> None:
    """A line in the browser's terminal (it shows what the socket sends as terminal output), then close."""
    with contextlib.suppress(Exception):
        await websocket.send_bytes(text.encode() + b"\r\n")
        await websocket.close()
