"""Reading training text: find the files, read and check them. No torch: the CLI checks paths with this
before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import FreezeTuiError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Corpus:
    documents: tuple[str, ...]
    source: str  # human description: file names or the demo corpus


def find_text_files(paths: tuple[str, ...]) -> list[Path]:
    """Files named directly, plus *.txt / *.md found recursively in folders (sorted, so runs repeat)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise FreezeTuiError(f"data path {raw} does not exist; pass text files or folders with --data")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise FreezeTuiError(f"data folder {raw} has no .txt or .md files; put text files in it or pass files")
            files.extend(found)
        else:
            files.append(p)
    return files


def read_text_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FreezeTuiError(f"cannot read data file {path}: {exc.strerror}") from None
    if b"\x00" in raw[:65536]:
        raise FreezeTuiError(f"data file {path} looks binary (it has NUL bytes); pass UTF-8 text files")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FreezeTuiError(
            f"data file {path} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_corpus(paths: tuple[str, ...]) -> Corpus:
    """The user's text, or the demo fine-tuning text when no paths are given."""
    if not paths:
        from engine.demo.corpus import finetune_source, finetune_text

        return Corpus((finetune_text(),), finetune_source())
    files = find_text_files(paths)
    docs = tuple(d for d in (read_text_file(f) for f in files) if d.strip())
    if not docs:
        raise FreezeTuiError(f"the data ({', '.join(paths)}) holds no text; pass non-empty text files")
    names = ", ".join(f.name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return Corpus(docs, names)
