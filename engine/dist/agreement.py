"""Every rank of a distributed run must run the same experiment (issue 21, item 4): before the mesh
forms, each rank's identity of the run -- the settings that change it, the data's content and the
model's -- goes to every rank, and a rank that differs from rank 0 is refused on every rank alike,
in one line that names the setting and both values. Nodes that mount the same files at other paths
agree: data and model are compared by content, not by path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from engine.core.errors import FreezeTuiError
from engine.run.config import RunConfig

# Settings that may differ between processes without changing the run: where the log and weights go,
# how many CPU threads a rank uses, a node's memory cap, its device (the index is the local rank's);
# the paths of the data and the model are compared by their content instead.
PER_PROCESS = ("log", "overwrite", "save", "threads", "memory_limit", "device", "data", "retain_data", "model")
DATA, RETAIN, MODEL = "the training data (--data)", "the retain data (--retain-data)", "the model (--model)"


class SettingsDiffer(FreezeTuiError):
    """Ranks were started with different settings, data or model (or one could not read its own):
    every rank refuses alike, naming `rank`, the first that differs from rank 0."""

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


FAILED = "!error"  # a rank whose own settings could not be read: every rank hears why, none waits for it


def run_identity(cfg: RunConfig) -> dict[str, str]:
    """{what: its value or content digest}, in the order the refusal names the first difference; a
    rank that cannot read its data or model says why (the others must not wait for it in a gather)."""
    try:
        return _identity(cfg)
    except FreezeTuiError as exc:
        return {FAILED: str(exc)}


def _identity(cfg: RunConfig) -> dict[str, str]:
    values = cfg.to_dict()
    out: dict[str, str] = {}
    for f in dataclasses.fields(RunConfig):
        if f.name not in PER_PROCESS:
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            out[flag] = json.dumps(values[f.name])
    out[DATA] = _files_digest(cfg.data) if cfg.data else "the demo corpus"
    out[RETAIN] = _files_digest(cfg.retain_data) if cfg.retain_data else "none"
    out[MODEL] = model_digest(cfg)
    return out


def first_difference(identities: list[dict[str, str]]) -> tuple[int, str] | None:
    """(rank, refusal) for the first rank that could not read its settings or whose identity differs
    from rank 0's, or None when all agree."""
    for rank, theirs in enumerate(identities):
        if FAILED in theirs:
            return rank, theirs[FAILED]
    reference = identities[0]
    for rank, theirs in enumerate(identities[1:], start=1):
        for what in [*reference, *(k for k in theirs if k not in reference)]:
            if reference.get(what) != theirs.get(what):
                return rank, _refusal(what, reference.get(what), theirs.get(what), rank)
    return None


def _refusal(what: str, ours: str | None, theirs: str | None, rank: int) -> str:
    fix = "start every node (and process) with the same settings"
    if what.startswith("--"):
        return (
            f"ranks were started with different settings: {what} is {ours} on rank 0 but {theirs} on rank {rank}; {fix}"
        )
    return (
        f"{what} differs between rank 0 and rank {rank} (content {str(ours)[:16]} vs {str(theirs)[:16]}); "
        "every node needs the same files"
    )


def _files_digest(paths: tuple[str, ...]) -> str:
    from engine.core.textfiles import find_text_files
    from engine.train.tokens import file_hash  # remembered per file: a multi-GB corpus is read once

    h = hashlib.blake2b(digest_size=12)
    for path in find_text_files(paths):
        h.update(file_hash(path).encode())
    return h.hexdigest()


def model_digest(cfg: RunConfig) -> str:
    """The model's config and, for a local directory, the content of its weight files."""
    from pathlib import Path

    from engine.train.models import resolve_source
    from engine.train.tokens import file_hash

    source = resolve_source(cfg.model, trust_remote_code=cfg.trust_remote_code)
    h = hashlib.blake2b(digest_size=12)
    config = {k: v for k, v in source.config.to_dict().items() if k != "_name_or_path"}  # a path, not content
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    if source.local:
        for weights in sorted(Path(source.path).glob("*.safetensors")) + sorted(Path(source.path).glob("*.bin")):
            h.update(weights.name.encode() + file_hash(weights).encode())
    else:
        h.update(source.name.encode())  # a hub name: its cached snapshot is the same everywhere
    return h.hexdigest()


def check_same_run(identities: list[dict[str, str]]) -> None:
    found = first_difference(identities)
    if found is not None:
        raise SettingsDiffer(found[1], rank=found[0])
