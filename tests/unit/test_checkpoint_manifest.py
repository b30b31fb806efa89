"""The checkpoint manifest is a CheckpointManifest (issue 19): its bytes are those of the dict it replaced,
and a manifest that does not decode is refused in one line."""

from __future__ import annotations

import json

import pytest

from engine.core.errors import FreezeTuiError
from engine.run.checkpoints import MANIFEST, CheckpointManifest, problem, read_manifest, seal

SETTINGS = {"lr": 0.001, "model": "demo", "arms": [["full", None]], "seed": 0}
BASE = {"settings": SETTINGS, "settings_digest": "d" * 32, "model": "m" * 32, "data": "t" * 32}
WHERE = {"step": 20, "epoch": 1, "batch": 3, "replicate": 0, "after_seq": 41, "arm_names": ["full", "head"]}


@pytest.mark.parametrize("layout", [{}, {"world_size": 4, "shards": 2, "replicas": 1}])
def test_manifest_bytes_are_the_dicts(tmp_path, layout):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "a.bin").write_bytes(b"xyz")
    folder = seal(tmp_path, "step-000020", tmp, CheckpointManifest(**BASE, **WHERE, **layout))
    files = {"a.bin": "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282"}
    before = {**BASE, **WHERE, **layout, "format": 1, "files": files}
    assert (folder / MANIFEST).read_text() == json.dumps(before, indent=1, sort_keys=True)
    assert problem(folder) == ""
    manifest = read_manifest(folder)
    assert manifest.layout() == ((4, 2, 1) if layout else (1, 1, 1)) and manifest.after_seq == 41


def test_a_manifest_that_does_not_decode_is_refused(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 1, "files": {}, "after_seq": "x"}))
    assert problem(tmp_path) == f"{tmp_path / MANIFEST} is not a freeze-tui checkpoint manifest of format 1"
    with pytest.raises(FreezeTuiError, match="is not a freeze-tui checkpoint manifest"):
        read_manifest(tmp_path)
