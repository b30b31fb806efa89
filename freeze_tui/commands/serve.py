"""`freeze-tui serve LOG... [--watch]`: the same app in a web browser, through textual-serve.

Each browser tab starts its own `freeze-tui replay` (or `watch`) of the logs in a subprocess; nothing
is trained here. Binds 127.0.0.1 unless told otherwise: the page has no password.
"""

from __future__ import annotations

import shlex
import sys

import click

from engine.errors import FreezeTuiError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option("--watch", is_flag=True, help="Follow logs that runs are still writing.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 lets others in.")
def serve(logs: tuple[str, ...], watch: bool, port: int, host: str) -> int:
    """Serve the app for LOG(s) to a web browser (a teammate without SSH can look)."""
    command = serve_command(logs, watch)
    server = _server(command, host, port)
    click.echo(f"freeze-tui: serving {', '.join(logs)} at http://{_url_host(host)}:{port}")
    if host in LOOPBACK:
        click.echo("only this machine can connect (127.0.0.1); pass --host 0.0.0.0 to let others on your network in")
    else:
        click.echo(f"listening on {host}: anyone who can reach this port sees the run (no password)")
    try:
        server.serve()
    except OSError as exc:
        raise FreezeTuiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pass another --port") from None
    return 0


def serve_command(logs: tuple[str, ...], watch: bool) -> str:
    """The command every browser session runs (LOG or NAME=LOG, as replay and watch take them); the
    logs are checked here first, so a bad one is one line and exit 2 here, not an error in the browser."""
    from engine.log.runlog import read_events
    from freeze_tui.logs import named

    for path in named(logs)[0]:
        next(iter(read_events(path)))  # a missing, empty or foreign file fails now
    mode = ["watch"] if watch else ["replay"]
    return shlex.join([sys.executable, "-m", "freeze_tui", *mode, *logs])


def _server(command: str, host: str, port: int):
    if not 0 < port < 65536:
        raise FreezeTuiError(f"--port {port} is not a port number (1-65535)")
    try:
        from textual_serve.server import Server
    except ImportError:
        raise FreezeTuiError("serve needs textual-serve: pip install 'freeze-tui[serve]'") from None
    return Server(command, host=host, port=port, title="freeze-tui")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
