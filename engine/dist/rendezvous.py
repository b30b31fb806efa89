"""The rendezvous of a multi-node run, as `run --nproc-per-node ... --rdzv-endpoint HOST:PORT` sees it
(issue 21, item 10; torch where used): a port on this node held by another service is found before
the launch (torch would connect to it and wait in silence), and after a join timeout the nodes that
did arrive are counted from torch's own rendezvous state.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from datetime import timedelta

from engine.core.errors import FreezeTuiError
from engine.dist.world import endpoint_parts

PROBE_S = 3.0


def check_rendezvous_port(endpoint: str) -> None:
    """When the endpoint is on this node and its port is taken, what holds it must be a rendezvous
    store (another node's launcher on this machine), not another service."""
    host, port = endpoint_parts(endpoint)
    for family, kind, proto, _, address in _addresses(host, port):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return  # free here: this node's launcher will host the store
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # not an address of this node: the store is elsewhere
        if not _is_store(host, port):
            raise FreezeTuiError(
                f"--rdzv-endpoint {endpoint}: port {port} on this node is held by another service, not a "
                "freeze-tui/torch rendezvous; pick a free port (the same on every node)"
            )
        return


def _addresses(host: str, port: int) -> list:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []


def _is_store(host: str, port: int) -> bool:
    return _within(PROBE_S, lambda: _client(host, port).check(["freeze-tui-probe"])) is not None


def _client(host: str, port: int):
    import torch.distributed as dist

    return dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=PROBE_S))


def _within(seconds: float, call):
    """call()'s result (True for None), or None when it failed or did not return within `seconds`: a
    store client waits without end for the handshake of a service that does not answer."""
    result: list = []

    def run() -> None:
        with contextlib.suppress(Exception):
            value = call()
            result.append(True if value is None else value)

    thread = threading.Thread(target=run, name="freeze-tui-rendezvous-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


def nodes_arrived(endpoint: str, run_id: str) -> str:
    """How many nodes joined the rendezvous: this one (which gave up and left it) and those still in
    torch's rendezvous state; says so when the state cannot be read any more."""
    host, port = endpoint_parts(endpoint)

    def others() -> int:
        # torch's own state holder decodes its rendezvous state (no unpickling in our code: see
        # tests/engine/test_untrusted.py); a day-long keep-alive so that it drops no waiting node
        from torch.distributed.elastic.rendezvous import dynamic_rendezvous as dyn
        from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import C10dRendezvousBackend

        backend = C10dRendezvousBackend(_client(host, port), run_id)
        settings = dyn.RendezvousSettings(run_id, 1, 1, dyn.RendezvousTimeout(), timedelta(days=1), 1)
        holder = dyn._BackendRendezvousStateHolder(backend, settings, cache_duration=0)
        holder.sync()
        return len(set(holder.state.participants) | set(holder.state.wait_list))

    counted = _within(PROBE_S, others)
    if counted is None:
        return "1 (this node; the rendezvous could not be read for the others)"
    return str(1 + (0 if counted is True else counted))
