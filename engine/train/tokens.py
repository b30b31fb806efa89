"""The corpus as a token file: tokenized in a stream into a flat binary file of token ids (uint16 when
the vocabulary fits, else uint32, as nanoGPT's train.bin) and memory-mapped, so memory stays flat
whatever the corpus size. The file is cached under a key of the files' content, the tokenizer and
these settings: a second run on the same text starts at once. No torch here (numpy only).

Token ids are those of tokenizing each document whole: a document larger than CHUNK is cut only
after a newline that stands alone between two non-blank characters, where a byte-level BPE (GPT-2's
pre-tokenizer) splits anyway, so its ids do not change. The demo text is smaller than one chunk.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.filememo import cache_dir, recall, remember
from engine.textfiles import Corpus, normalise_stream

FORMAT = "freeze-tui-tokens-1"  # bump when the file layout or the tokenization rule changes
CHUNK = 1 << 20  # characters tokenized per call: bounds the tokenizer's per-call memory
COUNT_CHUNK = 1 << 22  # tokens counted per numpy call: bounds the counting memory
BATCH = min(8, os.cpu_count() or 1)  # chunks per tokenizer call (a fast tokenizer encodes a batch in parallel)
PROGRESS_EVERY_S = 1.0

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def token_dtype(tokenizer) -> np.dtype:
    return np.dtype(np.uint16) if len(tokenizer) <= 1 << 16 else np.dtype(np.uint32)


def corpus_tokens(corpus: Corpus, tokenizer, progress: Progress | None = None) -> np.ndarray:
    """Every document's token ids followed by the tokenizer's EOS (when it has one), as one read-only
    memory-mapped array; from the cache when the same text was tokenized the same way before."""
    key = cache_key(corpus, tokenizer)
    folder = cache_dir() / "tokens"
    path = folder / f"{key}.bin"
    meta = folder / f"{key}.json"
    if not (path.is_file() and meta.is_file()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_tokens(corpus, tokenizer, path, meta, progress)
        except OSError:  # no writable cache: a private temporary file serves this run only
            folder = Path(tempfile.mkdtemp(prefix="freeze-tui-tokens-"))
            path, meta = folder / "tokens.bin", folder / "tokens.json"
            _write_tokens(corpus, tokenizer, path, meta, progress)
    info = json.loads(meta.read_text())
    if info["n_tokens"] == 0:
        return np.zeros(0, dtype=info["dtype"])
    return np.memmap(path, dtype=info["dtype"], mode="r", shape=(info["n_tokens"],))


def token_counts(ids: np.ndarray) -> np.ndarray:
    """How often each id occurs in a token file, counted once when it was written (a .npy beside it);
    counted now for an array that is not such a file."""
    stored = Path(getattr(ids, "filename", "") or "").with_suffix(".counts.npy")
    if getattr(ids, "filename", None) and stored.is_file():
        return np.load(stored)
    return count_ids(ids)


def count_ids(ids: np.ndarray, size: int = 0) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    for start in range(0, len(ids), COUNT_CHUNK):
        part = np.bincount(ids[start : start + COUNT_CHUNK])
        if len(part) > len(out):
            out = np.pad(out, (0, len(part) - len(out)))
        out[: len(part)] += part
    return out


def cache_key(corpus: Corpus, tokenizer) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(_settings(tokenizer)).encode())
    h.update(_tokenizer_identity(tokenizer))
    for text in corpus.documents:
        h.update(b"doc\0" + text.encode("utf-8", "surrogatepass"))
    for path in corpus.files:
        h.update(b"file\0" + file_hash(path).encode())
    return h.hexdigest()


def file_hash(path: Path) -> str:
    """blake2b of the file's bytes (remembered for an unchanged file: hashing GBs takes seconds)."""
    known = recall(path, "blake2b")
    if known:
        return known
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    remember(path, "blake2b", h.hexdigest())
    return h.hexdigest()


def _settings(tokenizer) -> dict:
    import tokenizers

    return {
        "format": FORMAT,
        "newlines": "lf",  # CR/CRLF read as LF: a cache written before that holds CR tokens
        "chunk": CHUNK,
        "eos": tokenizer.eos_token_id,
        "dtype": token_dtype(tokenizer).name,
        "class": type(tokenizer).__name__,
        "tokenizers": tokenizers.__version__,
    }


def _tokenizer_identity(tokenizer) -> bytes:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.to_str().encode()
    return json.dumps(sorted(tokenizer.get_vocab().items())).encode()


def _write_tokens(corpus: Corpus, tokenizer, path: Path, meta: Path, progress: Progress | None) -> None:
    """Write to a temporary file, then rename: a run killed while tokenizing leaves no half cache entry."""
    dtype, sep, encode = token_dtype(tokenizer), tokenizer.eos_token_id, _encoder(tokenizer)
    total = sum(len(t) for t in corpus.documents) + sum(p.stat().st_size for p in corpus.files)
    report = _Reporter(progress, total)
    n = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-")
    try:
        with os.fdopen(fd, "wb") as out:
            for doc in _documents(corpus, report):
                for batch in _batches(doc):
                    for ids in encode(batch):
                        out.write(np.asarray(ids, dtype=dtype).tobytes())
                        n += len(ids)
                if sep is not None:
                    out.write(np.asarray([sep], dtype=dtype).tobytes())
                    n += 1
        if n:
            np.save(path.with_suffix(".counts.npy"), count_ids(np.memmap(tmp, dtype=dtype, mode="r", shape=(n,))))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta.write_text(json.dumps({"n_tokens": n, "dtype": dtype.name, "settings": _settings(tokenizer)}))


def _encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """Ids of a batch of texts: straight from a fast tokenizer's backend (the same ids as calling the
    tokenizer, without the offsets and Python lists nothing here reads), else through the tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda batch: tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: tokenizers >= 0.21
    return lambda batch: [e.ids for e in encode_batch(batch, add_special_tokens=False)]


class _Reporter:
    """Calls progress(done, total) at most every PROGRESS_EVERY_S seconds, and once at the end."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done, self.last = progress, total, 0, 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.progress is not None and (now - self.last >= PROGRESS_EVERY_S or self.done >= self.total):
            self.last = now
            self.progress(self.done, self.total)


def _documents(corpus: Corpus, report: _Reporter) -> Iterator[Iterator[str]]:
    """Each non-blank document as a stream of text pieces (files are read in blocks, never whole)."""
    for text in corpus.documents:
        if text.strip():
            yield normalise_stream([text])
        report.add(len(text))
    for path in corpus.files:
        yield normalise_stream(_file_pieces(path, report))  # CRLF and lone CR read as LF (issue 10)


def _file_pieces(path: Path, report: _Reporter) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            report.add(len(block))
            yield decoder.decode(block)
        yield decoder.decode(b"", True)


def _batches(pieces: Iterator[str]) -> Iterator[list[str]]:
    """The document's text in chunks cut where tokenization splits anyway, BATCH chunks at a time."""
    batch, buffer = [], ""
    for piece in pieces:
        buffer += piece
        while len(buffer) > CHUNK:
            cut = _cut(buffer, len(buffer) - 1)
            if cut < 0:
                break
            batch.append(buffer[:cut])
            buffer = buffer[cut:]
            if len(batch) == BATCH:
                yield batch
                batch = []
        if len(buffer) > 16 * CHUNK:  # a huge text without a clean cut: cut at a newline anyway
            cut = buffer.rfind("\n") + 1 or len(buffer)
            batch.append(buffer[:cut])
            buffer = buffer[cut:]
    if buffer:
        batch.append(buffer)
    if batch:
        yield batch


def _cut(text: str, limit: int) -> int:
    """The last position <= limit just after a lone newline between two non-blank characters; -1 if none."""
    i = text.rfind("\n", 0, limit)
    while i > 0:
        if i + 1 < len(text) and not text[i - 1].isspace() and not text[i + 1].isspace():
            return i + 1
        i = text.rfind("\n", 0, i)
    return -1
