"""The launcher's settings checked before any process starts (issue 21, items 10 and 25): one line for
a malformed --rdzv-endpoint, an unknown --rdzv-backend, a backend without an endpoint, --detach."""

from __future__ import annotations

import re

from engine.core.errors import FreezeTuiError

RDZV_BACKENDS = ("c10d", "static", "etcd", "etcd-v2")  # torch.distributed.elastic's own


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
    if endpoint is not None:
        check_endpoint(endpoint)


def check_endpoint(endpoint: str) -> None:
    """HOST:PORT (or [IPv6]:PORT) with a port in 1-65535; a bare HOST takes torch's default port."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(.*))?", endpoint)
    port = match.group(2) if match else None
    if not match or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise FreezeTuiError(
            f"--rdzv-endpoint {endpoint!r} is not HOST:PORT with a port in 1-65535; e.g. --rdzv-endpoint node0:29500"
        )
