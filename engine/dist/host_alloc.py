"""A rank's host allocator: glibc's malloc returns large freed buffers to the system (issue 22).

glibc serves a request above its mmap threshold with its own mapping, unmapped on free; but each time
such a block is freed it raises the threshold to that size (up to 32 MiB). FSDP2 gathers a block's
weights and gradients into buffers of tens of MB and frees them every step, so after the first free the
same-size buffers come from the heap, where freed memory stays resident: a 2-rank run of a 124 M GPT-2
kept growing by about 1.3 GB (bench.host_memory). Setting the threshold (mallopt M_MMAP_THRESHOLD) to
glibc's own starting value, 128 KiB, turns that adjustment off: buffers above it are mapped and unmapped
as at the start (measured: peak 1.7 GB per rank instead of 3.0 GB; 2.1 GB with 4 MiB). The price is a
page fault per page of each such buffer on every use; a GPU rank makes few large host allocations. A user's own MALLOC_MMAP_THRESHOLD_ is left alone;
other C libraries (musl, macOS) have nothing to set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 128 * 2**10
DEFAULT_ENV = "FREEZE_TUI_GLIBC_MALLOC"  # =1: glibc's own adjustment, as before (bench.host_memory compares)


def fix_mmap_threshold(size: int = THRESHOLD) -> bool:
    """True when the threshold was set (glibc, no MALLOC_MMAP_THRESHOLD_ of the user's, not opted out)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if os.environ.get(DEFAULT_ENV, "").strip() not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):  # not glibc
        return False
