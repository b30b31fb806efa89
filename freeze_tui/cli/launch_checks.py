"""The launcher's settings checked before any process starts (issue 21, items 10 and 25): one line for
a malformed --rdzv-endpoint, a host that does not resolve, an unknown --rdzv-backend, a backend
without an endpoint, a join timeout that is not positive, --detach."""

from __future__ import annotations

import math
import socket

from engine.core.errors import FreezeTuiError
from engine.dist.world import endpoint_parts

RDZV_BACKENDS = ("c10d", "static", "etcd", "etcd-v2")  # torch.distributed.elastic's own
JOIN_TIMEOUT_S = 300.0  # torch's own default is 600 s of silence


def check_launch(launch: dict, *, detach: bool) -> None:
    if detach:
        raise FreezeTuiError(
            "--detach starts one background process and cannot start several (--nproc-per-node); "
            "run with --headless (under nohup or tmux) and follow it with `freeze-tui watch LOG`"
        )
    backend, endpoint = launch.get("rdzv_backend"), launch.get("rdzv_endpoint")
    if backend not in RDZV_BACKENDS:
        raise FreezeTuiError(f"--rdzv-backend {backend!r} is not one of {', '.join(RDZV_BACKENDS)}")
    if endpoint is None and backend != "c10d":
        raise FreezeTuiError(f"--rdzv-backend {backend} needs --rdzv-endpoint HOST:PORT (the same on every node)")
    join = launch.get("join_timeout", JOIN_TIMEOUT_S)
    if not 0 < join < math.inf:
        raise FreezeTuiError(f"--join-timeout must be a positive number of seconds, got {join:g}")
    if endpoint is not None:
        check_endpoint(endpoint)
        check_host(endpoint)


def check_endpoint(endpoint: str) -> None:
    """HOST:PORT (or [IPv6]:PORT) with a port in 1-65535; a bare HOST takes torch's default port."""
    endpoint_parts(endpoint)


def check_host(endpoint: str) -> None:
    """The endpoint's host must resolve: torch would otherwise retry it in silence until it times out."""
    host, port = endpoint_parts(endpoint)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise FreezeTuiError(
            f"--rdzv-endpoint {endpoint!r}: the host {host!r} cannot be resolved ({why}); check the name, "
            "or give the address of the node that hosts the rendezvous"
        ) from None
