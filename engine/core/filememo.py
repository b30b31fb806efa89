"""What was learnt about a file (its content hash, that it is valid text), remembered under its stat
identity (path, size, inode, mtime and ctime in nanoseconds), as git's index and ccache do: a later
run skips re-reading an unchanged multi-GB corpus. Any write changes mtime/ctime and so the key. No torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """$FREEZE_TUI_CACHE, else $XDG_CACHE_HOME/freeze-tui, else ~/.cache/freeze-tui."""
    if os.environ.get("FREEZE_TUI_CACHE"):
        return Path(os.environ["FREEZE_TUI_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "freeze-tui"


def _entry(path: Path, kind: str) -> Path | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    ident = f"{kind}\0{Path(path).resolve()}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
    return cache_dir() / "files" / hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()


def recall(path: Path, kind: str) -> str | None:
    entry = _entry(path, kind)
    try:
        return entry.read_text() if entry is not None else None
    except OSError:
        return None


def remember(path: Path, kind: str, value: str) -> None:
    """Best effort: a cache that cannot be written only costs the next run a re-read."""
    entry = _entry(path, kind)
    if entry is None:
        return
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}")
        tmp.write_text(value)
        os.replace(tmp, entry)
