"""`freeze-tui serve LOG... [--watch]`: the same app in a web browser, through textual-serve.

Each browser tab starts its own `freeze-tui replay` (or `watch`) of the logs in a subprocess; nothing
is trained here. Binds 127.0.0.1 unless told otherwise. The printed URL carries a random token that
every page and websocket needs; see serve_guard for the other guards (Origin, session cap, sizes).
"""

from __future__ import annotations

import shlex
import socket
import sys

import click

from engine.core.errors import FreezeTuiError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option("--watch", is_flag=True, help="Follow logs that runs are still writing.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 lets others in.")
@click.option(
    "--max-sessions", type=click.IntRange(1, 64), default=4, show_default=True, help="Browser tabs open at once."
)
def serve(logs: tuple[str, ...], watch: bool, port: int, host: str, max_sessions: int) -> int:
    """Serve the app for LOG(s) to a web browser (a teammate without SSH can look)."""
    command = serve_command(logs, watch)
    server = _server(command, host, port, max_sessions, lambda: check_logs(logs))
    check_bind(host, port)  # before the banner: a port in use is one error line, not a banner and then one
    url = f"http://{_url_host(_shown_host(host))}:{port}/?token={server.token}"
    click.echo(f"freeze-tui: serving {', '.join(logs)} at {url}")
    if host in LOOPBACK:
        click.echo("only this machine can connect (127.0.0.1); pass --host 0.0.0.0 to let others on your network in")
    else:
        click.echo(f"listening on {host}: anyone with this URL (its token) sees the run; keep it among your team")
    sys.stdout.flush()  # the URL is needed now, also when stdout is a pipe or a file
    try:
        server.serve()
    except OSError as exc:
        raise FreezeTuiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return 0


def serve_command(logs: tuple[str, ...], watch: bool) -> str:
    """The command every browser session runs (LOG or NAME=LOG, as replay and watch take them); the
    logs are checked here first, so a bad one is one line and exit 2 here, not an error in the browser."""
    check_logs(logs)
    mode = ["watch", "--read-only"] if watch else ["replay"]  # a browser viewer never stops the run
    return shlex.join([sys.executable, "-m", "freeze_tui", *mode, *logs])


def check_logs(logs: tuple[str, ...]) -> None:
    from engine.log.runlog import read_events
    from freeze_tui.cli.logs import named

    for path in named(logs)[0]:
        next(iter(read_events(path)))  # a missing, empty or foreign file fails now


def check_bind(host: str, port: int) -> None:
    """Can `host`:`port` be bound? One line naming the cause: an unknown host, an address that is not
    this machine's, a port in use or reserved."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise FreezeTuiError(f"--host {host!r} is not an address or a known host name ({exc}); try 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind(address)
        except OSError as exc:
            import errno

            if exc.errno == errno.EADDRINUSE:
                raise FreezeTuiError(f"port {port} on {host} is in use; pass another --port") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise FreezeTuiError(
                    f"--host {host} is not an address of this machine; pass 127.0.0.1, 0.0.0.0 or one of its addresses"
                ) from None
            raise FreezeTuiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _server(command: str, host: str, port: int, max_sessions: int, check):
    if not 0 < port < 65536:
        raise FreezeTuiError(f"--port {port} is not a port number (1-65535)")
    try:
        from freeze_tui.cli.commands.serve_guard import GuardedServer
    except ImportError:
        raise FreezeTuiError("serve needs textual-serve: pip install 'freeze-tui[serve]'") from None
    return GuardedServer(command, host=host, port=port, max_sessions=max_sessions, check=check, title="freeze-tui")


def _shown_host(host: str) -> str:
    """The host to print: a wildcard bind is reached through this machine's name, not 0.0.0.0 or ::."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
