"""Reading training text: find the files, read and check them. No torch: the CLI checks paths with this
before anything heavy loads."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import FreezeTuiError
from engine.core.filememo import recall, remember

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Corpus:
    documents: tuple[str, ...]  # text held in memory (the demo's)
    source: str  # human description: file names or the demo corpus
    files: tuple[Path, ...] = ()  # checked text files, one document each, read in a stream when tokenized
    crlf: int = 0  # CRLF line ends turned into LF while reading
    lone_cr: int = 0  # old-Mac CR-only line ends turned into LF


def normalise_newlines(text: str) -> tuple[str, int, int]:
    """Text with CRLF and lone CR line ends as LF, and how many of each there were. A CR is a
    line-ending byte, not language: kept, it becomes one of the commonest tokens and the model
    spends its training learning it."""
    crlf = text.count("\r\n")
    lone = text.count("\r") - crlf
    if not crlf and not lone:
        return text, 0, 0
    return text.replace("\r\n", "\n").replace("\r", "\n"), crlf, lone


def find_text_files(paths: tuple[str, ...]) -> list[Path]:
    """Files named directly, plus *.txt / *.md found recursively in folders (sorted, so runs repeat).
    Only regular files are corpora: a device (/dev/zero never ends), a FIFO or a pipe (/dev/stdin: the
    check would consume it) is refused with its name and why."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise FreezeTuiError(f"data path {raw} does not exist; pass text files or folders with --data")
        if p.is_dir():
            found = sorted(_folder_files(p))
            if not found:
                raise FreezeTuiError(f"data folder {raw} has no .txt or .md files; put text files in it or pass files")
            files.extend(found)
        else:
            files.append(_regular(p))
    return files


def check_retain_data(paths: tuple[str, ...]) -> None:
    """--retain-data's paths, checked like --data's before anything loads; errors name --retain-data."""
    for raw in paths:
        if not Path(raw).expanduser().exists():
            raise FreezeTuiError(
                f"--retain-data path {raw} does not exist; pass text files or folders of the model's own text"
            )
    try:
        files = find_text_files(paths)
        has_text = [check_text_file(f) for f in files]  # every file is checked, as --data's are
    except FreezeTuiError as exc:
        raise FreezeTuiError(f"--retain-data: {exc}") from None
    if files and not any(has_text):
        raise FreezeTuiError(f"the retain data ({', '.join(paths)}) holds no text; pass non-empty text files")


def _folder_files(folder: Path) -> list[Path]:
    def unreadable(exc: OSError) -> None:
        raise FreezeTuiError(
            f"data folder {folder}: cannot read {exc.filename} ({exc.strerror}); fix its permissions or pass "
            "other --data paths"
        )

    found = []
    for parent, _, names in os.walk(folder, onerror=unreadable):
        found += [_regular(Path(parent) / n) for n in names if Path(n).suffix.lower() in TEXT_SUFFIXES]
    return found


def _regular(path: Path) -> Path:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise FreezeTuiError(f"cannot read data file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        what = "a FIFO or pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) else "a special file"
        raise FreezeTuiError(f"data file {path} is {what}, not a regular file; save the text to a file and pass that")
    return path


CHECK_CHUNK = 1 << 20


def check_text_file(path: Path) -> bool:
    """Stream through `path` as read_text_file reads it (UTF-8, no NUL bytes) in bounded memory; True
    when it holds any non-blank text. Raises FreezeTuiError naming the file and the fix. The verdict on
    an unchanged file is remembered (engine.core.filememo): a second run does not re-read GBs."""
    known = recall(path, "text")
    if known:
        return known == "text"
    has_text = _check_text_file(path)
    remember(path, "text", "text" if has_text else "blank")
    return has_text


def _check_text_file(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset, has_text = 0, False
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHECK_CHUNK):
                _check_chunk(path, decoder, chunk, offset)
                has_text = has_text or bool(chunk.strip())
                offset += len(chunk)
            _check_chunk(path, decoder, b"", offset, final=True)
    except OSError as exc:
        raise FreezeTuiError(f"cannot read data file {path}: {exc.strerror}") from None
    return has_text


def _check_chunk(path: Path, decoder, chunk: bytes, offset: int, final: bool = False) -> None:
    if b"\x00" in chunk:
        raise FreezeTuiError(f"data file {path} looks binary (it has NUL bytes); pass UTF-8 text files")
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError as exc:
        where = offset + exc.start
        raise FreezeTuiError(
            f"data file {path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {where}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


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
    """The user's text files (checked now, read later in a stream), or the demo fine-tuning text when no
    paths are given. Blank files are left out, as they add nothing."""
    if not paths:
        from engine.demo.corpus import finetune_source, finetune_text

        return Corpus((finetune_text(),), finetune_source())
    files = find_text_files(paths)
    kept = tuple(f for f in files if check_text_file(f))
    if not kept:
        raise FreezeTuiError(f"the data ({', '.join(paths)}) holds no text; pass non-empty text files")
    names = ", ".join(f.name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    ends = [count_line_ends(f) for f in kept]
    return Corpus((), names, kept, crlf=sum(c for c, _ in ends), lone_cr=sum(r for _, r in ends))


def count_line_ends(path: Path) -> tuple[int, int]:
    """(CRLF, lone CR) line ends in a file, read in blocks (a CR byte is never inside a UTF-8 sequence)."""
    crlf = lone = 0
    carry = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            block = carry + block
            carry = b"\r" if block.endswith(b"\r") else b""  # its LF may start the next block
            block = block[: len(block) - len(carry)]
            n_crlf = block.count(b"\r\n")
            crlf, lone = crlf + n_crlf, lone + block.count(b"\r") - n_crlf
    return crlf, lone + len(carry)


def normalise_stream(pieces: Iterable[str]) -> Iterator[str]:
    """`normalise_newlines` over a text read in pieces: a CR ending one piece waits for the next."""
    held = ""
    for piece in pieces:
        text = held + piece
        held = "\r" if text.endswith("\r") else ""
        yield text[: len(text) - len(held)].replace("\r\n", "\n").replace("\r", "\n")
    if held:
        yield "\n"
