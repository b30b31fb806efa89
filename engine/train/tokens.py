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
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.core.errors import FreezeTuiError
from engine.core.filememo import cache_dir, recall, remember
from engine.core.textfiles import Corpus, normalise_stream

FORMAT = "freeze-tui-tokens-1"  # bump when the file layout or the tokenization rule changes
CHUNK = 1 << 20  # characters tokenized per call: bounds the tokenizer's per-call memory
COUNT_CHUNK = 1 << 22  # tokens counted per numpy call: bounds the counting memory
BATCH = min(8, os.cpu_count() or 1)  # chunks per tokenizer call (a fast tokenizer encodes a batch in parallel)
PROGRESS_EVERY_S = 1.0

Progress = Callable[[int, int, bool], None]  # (bytes done, bytes in all, kept in the cache)


def token_dtype(tokenizer) -> np.dtype:
    return np.dtype(np.uint16) if len(tokenizer) <= 1 << 16 else np.dtype(np.uint32)


def corpus_tokens(corpus: Corpus, tokenizer, progress: Progress | None = None) -> np.ndarray:
    """Every document's token ids followed by the tokenizer's EOS (when it has one), as one read-only
    memory-mapped array; from the cache when the same text was tokenized the same way before.

    An entry is used only when it checks out (its meta, the file's size, the counts, every id below the
    vocabulary size); anything else is a miss, named in a warning, and the text is tokenized again. A
    cache that cannot be written serves this run from a temporary file that is gone when the run ends."""
    folder = cache_dir() / "tokens"
    key = cache_key(corpus, tokenizer)
    found = _load(folder, key, tokenizer)
    if found is not None:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _new_file(folder, ".probe-").unlink()  # can we write here at all? (not after tokenizing for minutes)
    except OSError as exc:
        warnings.warn(
            f"the token cache {folder} cannot be written ({exc.strerror or exc}); the tokens of this run are not kept",
            stacklevel=2,
        )
        return _uncached(corpus, tokenizer, progress)
    try:
        read = _write_tokens(corpus, tokenizer, folder, progress)  # the key of the bytes read
    except OSError as exc:  # a full disk: say so once, do not tokenize all over again elsewhere
        raise FreezeTuiError(
            f"cannot write the token file in {folder}: {exc.strerror or exc}; free some space there "
            "or point FREEZE_TUI_CACHE at another disk"
        ) from None
    if read != key:
        warnings.warn(
            "the data changed while it was tokenized; this run trains on the text as it was read", stacklevel=2
        )
    key = read
    found = _load(folder, key, tokenizer)
    if found is None:  # just written, so only a broken disk gets here
        raise FreezeTuiError(f"the token file just written to {folder} does not read back; check that disk")
    return found


def _uncached(corpus: Corpus, tokenizer, progress: Progress | None) -> np.ndarray:
    """Tokenize into a private temporary folder, map the file, then delete the folder: the open mapping keeps
    the data until the run ends, and nothing is left behind (POSIX; elsewhere the folder stays)."""
    folder = Path(tempfile.mkdtemp(prefix="freeze-tui-tokens-"))
    try:
        key = _write_tokens(corpus, tokenizer, folder, progress, cached=False)
        found = _load(folder, key, tokenizer)
        if found is None:
            raise FreezeTuiError(f"the token file just written to {folder} does not read back; check that disk")
        return found  # its counts file goes with the folder: token_counts counts again
    except OSError as exc:
        raise FreezeTuiError(
            f"cannot write the token file in {folder}: {exc.strerror or exc}; free some space"
        ) from None
    finally:
        if os.name == "posix":
            shutil.rmtree(folder, ignore_errors=True)


def _load(folder: Path, key: str, tokenizer) -> np.ndarray | None:
    """The entry `key` as a memmap if it is whole and consistent; None on a miss (a warning names a bad entry)."""
    path, meta = folder / f"{key}.bin", folder / f"{key}.json"
    if not meta.exists() and not path.exists():
        return None
    try:
        ids = _checked(path, meta, tokenizer)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"token cache entry {path} is not usable ({exc}); tokenizing again", stacklevel=2)
        return None
    return ids


def _checked(path: Path, meta: Path, tokenizer) -> np.ndarray:
    info = json.loads(meta.read_text())
    n, dtype = info["n_tokens"], np.dtype(info["dtype"])
    if not isinstance(n, int) or n < 0 or dtype != token_dtype(tokenizer):
        raise ValueError(f"{meta.name} says {n!r} tokens of {dtype}")
    size = path.stat().st_size
    if size != n * dtype.itemsize:
        raise ValueError(f"{path.name} has {size} bytes, {meta.name} says {n} tokens of {dtype.itemsize} bytes")
    with open(path, "rb"):  # readable by us (a 0600 file of another user in a shared cache is not)
        pass
    if n == 0:
        return np.zeros(0, dtype=dtype)
    ids = np.memmap(path, dtype=dtype, mode="r", shape=(n,))
    vocab = len(tokenizer)
    top = max(int(ids[i : i + COUNT_CHUNK].max()) for i in range(0, n, COUNT_CHUNK))
    if top >= vocab:
        raise ValueError(f"{path.name} holds id {top}, the vocabulary has {vocab}")
    counts = np.load(path.with_suffix(".counts.npy"), allow_pickle=False)
    if counts.ndim != 1 or len(counts) > vocab or int(counts.sum()) != n or len(counts) <= top:
        raise ValueError(f"{path.with_suffix('.counts.npy').name} does not count {path.name}'s {n} tokens")
    return ids


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


def cache_key(corpus: Corpus, tokenizer, file_hashes: list[str] | None = None) -> str:
    """The key of the text, the tokenizer and the settings; `file_hashes` are those of the bytes read while
    tokenizing (a file may change between hashing it and reading it), else the files' hashes now."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(_settings(tokenizer)).encode())
    h.update(_tokenizer_identity(tokenizer))
    for text in corpus.documents:
        h.update(b"doc\0" + text.encode("utf-8", "surrogatepass"))
    for digest in file_hashes if file_hashes is not None else [file_hash(p) for p in corpus.files]:
        h.update(b"file\0" + digest.encode())
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


def _write_tokens(corpus: Corpus, tokenizer, folder: Path, progress: Progress | None, cached: bool = True) -> str:
    """Tokenize into `folder` and return the entry's key, made from the bytes that were tokenized, so a file
    that changed meanwhile is never stored under its other content's key. Every file of the entry is
    written to a temporary name and renamed, the meta last: a run killed or a disk filled on the way
    leaves no entry that looks whole. The files follow the umask, as any file the user writes."""
    dtype, sep, encode = token_dtype(tokenizer), tokenizer.eos_token_id, _encoder(tokenizer)
    total = sum(len(t) for t in corpus.documents) + sum(p.stat().st_size for p in corpus.files)
    report = _Reporter(progress, total, cached)
    hashes: list[str] = []
    n = 0
    temps: list[Path] = []
    try:
        tmp = _new_file(folder, ".tokens-")
        temps.append(tmp)
        with open(tmp, "wb") as out:
            for doc in _documents(corpus, report, hashes):
                for batch in _batches(doc):
                    for ids in encode(batch):
                        out.write(np.asarray(ids, dtype=dtype).tobytes())
                        n += len(ids)
                if sep is not None:
                    out.write(np.asarray([sep], dtype=dtype).tobytes())
                    n += 1
        counts = count_ids(np.memmap(tmp, dtype=dtype, mode="r", shape=(n,))) if n else np.zeros(0, np.int64)
        counts_tmp = _new_file(folder, ".counts-")
        temps.append(counts_tmp)
        with open(counts_tmp, "wb") as f:
            np.save(f, counts)
        meta_tmp = _new_file(folder, ".meta-")
        temps.append(meta_tmp)
        meta_tmp.write_text(json.dumps({"n_tokens": n, "dtype": dtype.name, "settings": _settings(tokenizer)}))
        key = cache_key(corpus, tokenizer, hashes)
        os.replace(tmp, folder / f"{key}.bin")
        os.replace(counts_tmp, folder / f"{key}.counts.npy")
        os.replace(meta_tmp, folder / f"{key}.json")
        return key
    except BaseException:
        for path in temps:
            path.unlink(missing_ok=True)
        raise


def _new_file(folder: Path, prefix: str) -> Path:
    """A new empty file with a random name, created with the umask's permissions (mkstemp's are 0600)."""
    while True:
        path = folder / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


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

    def __init__(self, progress: Progress | None, total: int, cached: bool = True) -> None:
        self.progress, self.total, self.done, self.last, self.cached = progress, total, 0, 0.0, cached

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.progress is not None and (now - self.last >= PROGRESS_EVERY_S or self.done >= self.total):
            self.last = now
            self.progress(self.done, self.total, self.cached)


def _documents(corpus: Corpus, report: _Reporter, hashes: list[str]) -> Iterator[Iterator[str]]:
    """Each non-blank document as a stream of text pieces (files are read in blocks, never whole); the
    hash of each file's bytes as read is appended to `hashes` once the file is read."""
    for text in corpus.documents:
        if text.strip():
            yield normalise_stream([text])
        report.add(len(text))
    for path in corpus.files:
        yield normalise_stream(_file_pieces(path, report, hashes))  # CRLF and lone CR read as LF (issue 10)


def _file_pieces(path: Path, report: _Reporter, hashes: list[str]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            report.add(len(block))
            yield decoder.decode(block)
        yield decoder.decode(b"", True)
    hashes.append(h.hexdigest())


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
