"""Docstrings and comments point only at documents that exist in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MENTION = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[A-Z][A-Z_-]*\.md)\b")  # README.md, docs/DECISIONS.md


def test_every_document_named_in_the_code_exists():
    sources = [p for folder in ("engine", "freeze_tui", "bench", "tests") for p in (ROOT / folder).rglob("*.py")]
    named = {(str(p.relative_to(ROOT)), name) for p in sources for name in MENTION.findall(p.read_text("utf-8"))}
    assert named, "the pattern finds nothing: fix it"
    docs = {str(p.relative_to(ROOT)) for p in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")]}

    def exists(src: str, name: str) -> bool:  # from the root, docs/, or beside the file that names it
        return name in docs or f"docs/{name}" in docs or (ROOT / src).parent.joinpath(name).is_file()

    assert [(src, name) for src, name in sorted(named) if not exists(src, name)] == []
