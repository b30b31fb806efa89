"""Where ctrl+s puts a screenshot: a writable, unsurprising folder that never dirties a git work tree.

--screenshot-dir, else $FREEZE_TUI_SCREENSHOTS, else next to the log (a run's own folder). A replay's
log is often a file of a repository (the project's sample_runs/): a screenshot written there would
show up in `git status`, so a replay of a log inside a git work tree (or any log in a folder this user
cannot write) saves to the current directory instead, or, when that is inside a work tree too (or not
writable), to ~/freeze-tui-screenshots. The toast says where.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV = "FREEZE_TUI_SCREENSHOTS"
HOME_FOLDER = "freeze-tui-screenshots"


def in_git_work_tree(folder: Path) -> bool:
    """Whether `folder` (or its nearest existing parent) is inside a git work tree (a `.git` above it)."""
    folder = folder.resolve()
    return any((p / ".git").exists() for p in (folder, *folder.parents))


def screenshot_folder(
    log_path: Path | None, replay: bool, given: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """The folder ctrl+s saves into (see the module's docstring); created when the first one is saved."""
    folder = (os.environ if env is None else env).get(ENV)
    if given:
        return Path(given)
    if folder:
        return Path(folder).expanduser()
    by_log = log_path.parent if log_path else Path(".")
    if _writable(by_log) and not (replay and in_git_work_tree(by_log)):
        return by_log
    if _writable(Path.cwd()) and not in_git_work_tree(Path.cwd()):
        return Path(".")
    return Path.home() / HOME_FOLDER


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)
