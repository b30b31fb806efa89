"""Training text: read and check files, tokenize once, cut into blocks, split, order batches.

Reading is torch-free (the CLI checks paths before anything heavy loads); tensors are built lazily.
"""

from __future__ import annotations

from collections import Counter
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


def common_token_ids(token_ids, k: int) -> list[int]:
    """The k most frequent ids, most frequent first; ties broken by the smaller id (deterministic)."""
    counts = Counter(token_ids)
    return [tok for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


@dataclass
class TokenData:
    train: object  # LongTensor [n_train_blocks, block_size]
    val: object  # LongTensor [n_val_blocks, block_size]
    n_tokens: int
    n_unique: int
    common: list[int]

    def n_train_batches(self, batch_size: int) -> int:
        return len(self.train) // batch_size

    def n_val_batches(self, batch_size: int) -> int:
        return -(-len(self.val) // batch_size)


def tokenize_corpus(corpus: Corpus, tokenizer, *, block_size: int, batch_size: int,
                    val_fraction: float, seed: int, common_k: int) -> TokenData:
    """Tokenize once, cut into blocks, split train/validation with the seed; S from the training blocks."""
    import torch

    ids = _token_ids(corpus, tokenizer)
    n_blocks = len(ids) // block_size
    n_val = max(1, round(n_blocks * val_fraction)) if val_fraction > 0 and n_blocks > 1 else 0
    if n_blocks - n_val < batch_size:
        raise FreezeTuiError(
            f"the corpus has {len(ids)} tokens = {n_blocks - n_val} training blocks of {block_size}, "
            f"fewer than one batch of {batch_size}; add text or lower --batch-size/--block-size"
        )
    blocks = torch.tensor(ids[: n_blocks * block_size], dtype=torch.long).view(n_blocks, block_size)
    perm = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))
    val, train = blocks[perm[:n_val]], blocks[perm[n_val:]]
    return TokenData(train, val, len(ids), len(set(ids)), common_token_ids(train.flatten().tolist(), common_k))


def _token_ids(corpus: Corpus, tokenizer) -> list[int]:
    sep = tokenizer.eos_token_id
    ids: list[int] = []
    for doc in corpus.documents:
        ids.extend(tokenizer(doc, add_special_tokens=False, verbose=False)["input_ids"])
        if sep is not None:
            ids.append(sep)
    return ids


def batch_order(n_train: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Block indices of each batch of an epoch: a seeded shuffle, the same for every arm; the last
    incomplete batch is dropped so every step sees the same number of tokens."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_train, generator=gen).tolist()
    return [perm[i : i + batch_size] for i in range(0, n_train - batch_size + 1, batch_size)]
