"""Shared test set-up: nothing reaches the network; torch uses one thread (2 shared cores); the token
cache (engine/train/tokens.py) of a test session, its subprocesses included, is a fresh temporary folder,
so tests never read or fill the user's ~/.cache/freeze-tui. Fixtures live in each folder's conftest.py."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["FREEZE_TUI_CACHE"] = tempfile.mkdtemp(prefix="freeze-tui-test-cache-")
atexit.register(shutil.rmtree, os.environ["FREEZE_TUI_CACHE"], True)
