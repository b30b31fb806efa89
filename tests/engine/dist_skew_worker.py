"""A torchrun worker started with other settings than its peers (tests only): on `SKEW_RANK` the value
after the flag `SKEW_FLAG` becomes `SKEW_VALUE`, as when two nodes are started with different settings."""

from __future__ import annotations

import os
import sys

from freeze_tui.cli.main import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if os.environ.get("RANK") == os.environ["SKEW_RANK"]:
        at = argv.index(os.environ["SKEW_FLAG"]) + 1
        argv[at] = os.environ["SKEW_VALUE"]
    main(argv)
