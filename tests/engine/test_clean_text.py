"""CR and CRLF line ends are read as LF, so a line-ending byte never becomes a common token."""

from __future__ import annotations

import pytest

from engine.core.textfiles import normalise_newlines, normalise_stream, read_corpus

transformers = pytest.importorskip("transformers")


def test_cr_crlf_and_lf_lines_become_lf_and_are_counted(tmp_path):
    text, crlf, lone = normalise_newlines("one\rtwo\r\nthree\nfour\r\r\n")
    assert text == "one\ntwo\nthree\nfour\n\n" and (crlf, lone) == (2, 2)
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfold\rmac\rlines\r")
    (tmp_path / "b.txt").write_bytes(b"dos\r\nlines\r\n")
    corpus = read_corpus((str(tmp_path),))
    assert (corpus.crlf, corpus.lone_cr) == (2, 3)
    # files are read in pieces: a CR that ends one piece and the LF that starts the next are one line end
    assert "".join(normalise_stream(["old\r", "\nmac\r", "lines\r"])) == "old\nmac\nlines\n"
    assert "".join(normalise_stream(["a\r\n", "b"])) == "a\nb"


def test_a_cr_only_text_puts_no_cr_in_s(tmp_path):
    from engine.demo import DEMO_MODEL_DIR
    from engine.train.data import tokenize_corpus

    tokenizer = transformers.AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    lines = [f"line {i} of an old text" for i in range(400)]
    path = tmp_path / "mac.txt"
    path.write_bytes("\r".join(lines).encode())
    kw = dict(block_size=32, batch_size=2, val_fraction=0.1, seed=0, common_k=20)
    clean = tokenize_corpus(read_corpus((str(path),)), tokenizer, **kw)
    assert not any("\r" in tokenizer.decode([t]) for t in clean.common)
    from engine.train.data import common_token_ids

    raw_ids = tokenizer(path.read_bytes().decode(), add_special_tokens=False)["input_ids"]
    raw = common_token_ids(raw_ids, 20)
    assert any("\r" in tokenizer.decode([t]) for t in raw)  # what reading without normalising did
