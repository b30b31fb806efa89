"""The embedded demo model: ships in the package, loads offline, is really pretrained."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from engine.demo import DEMO_MODEL_DIR, DEMO_NAME, corpus

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORD = re.compile(r"[A-Za-z]+")


@pytest.fixture(scope="module")
def demo():
    """(model, tokenizer) loaded from the package folder with the Hub forced offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        model = transformers.AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR)
        tokenizer = transformers.AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def build_info():
    return json.loads((DEMO_MODEL_DIR / "BUILD.json").read_text())


def test_package_imports_no_torch():
    code = "import sys, engine.demo, engine.demo.corpus; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_files_ship():
    names = {p.name for p in DEMO_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "BUILD.json"} <= names
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir() if p.is_file())
    assert size <= 8.5e6, f"demo model is {size / 1e6:.1f} MB"
    assert DEMO_NAME


def test_corpora_are_different_english_texts():
    pre, ft = corpus.pretrain_text(), corpus.finetune_text()
    assert len(pre) > 1_000_000
    assert len(ft) > 100_000
    assert pre != ft
    assert corpus.pretrain_text() == pre  # deterministic (and cached)
    # Hardly any overlap: sampled 60-char windows of the fine-tuning text are not in pretraining.
    windows = [ft[i : i + 60] for i in range(0, len(ft) - 60, 2003)]
    assert sum(w in pre for w in windows) / len(windows) < 0.05
    assert "Language Reference" in corpus.finetune_source()
    assert "pydoc_data" in corpus.finetune_source()
    for text in (pre, ft):
        words = WORD.findall(text[:20000])
        assert len(words) > 2000


def test_loads_offline_as_gpt2(demo):
    model, tokenizer = demo
    assert model.config.model_type == "gpt2"
    assert model.config.n_layer >= 6
    assert len(model.transformer.h) == model.config.n_layer
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert len(tokenizer) == model.config.vocab_size
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.eos_token_id == model.config.eos_token_id
    text = "Return the number of items in the list."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text) / 2  # real BPE merges, not bytes


def _finetune_blocks(tokenizer, n_blocks: int = 8, block: int = 128):
    ids = tokenizer(corpus.finetune_text()[:200_000])["input_ids"]
    step = len(ids) // n_blocks
    return torch.tensor([ids[i * step : i * step + block] for i in range(n_blocks)])


def test_is_pretrained_on_english(demo):
    model, tokenizer = demo
    x = _finetune_blocks(tokenizer)
    with torch.no_grad():
        loss = float(model(input_ids=x, labels=x).loss)
    ln_v = math.log(model.config.vocab_size)
    assert loss < 0.75 * ln_v, f"loss {loss:.2f} vs ln V {ln_v:.2f}: not pretrained"


def test_generates_english_words(demo):
    model, tokenizer = demo
    known = {w.lower() for w in WORD.findall(corpus.pretrain_text())}
    torch.manual_seed(0)
    x = tokenizer("The function returns", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **x, max_new_tokens=40, do_sample=True, top_k=40, temperature=0.8, pad_token_id=tokenizer.eos_token_id
        )
    text = tokenizer.decode(out[0, x["input_ids"].shape[1] :], skip_special_tokens=True)
    tokens = text.split()
    assert len(tokens) >= 10, text
    words = [t.strip(".,;:()'\"`[]") for t in tokens]
    real = [w for w in words if w.isalpha() and w.lower() in known]
    assert len(real) / len(words) >= 0.6, text


def test_build_record(build_info):
    info = build_info
    for key in (
        "pretrain_corpus",
        "pretrain_chars",
        "pretrain_tokens",
        "finetune_corpus",
        "vocab_size",
        "config",
        "steps",
        "batch_size",
        "lr",
        "seed",
        "wall_seconds",
        "final_train_loss",
        "finetune_text_loss",
        "torch",
        "transformers",
    ):
        assert key in info, key
    assert info["config"]["n_layer"] >= 6
    assert info["finetune_text_loss"] < math.log(info["vocab_size"])
    assert info["final_train_loss"] < info["finetune_text_loss"] + 1.0
    assert "pydoc_data" in info["finetune_corpus"]


def test_finetune_text_ships_with_the_package_and_does_not_depend_on_this_python(monkeypatch):
    """The demo text is read from the shipped file, not from the running Python's pydoc_data (which
    differs between versions), so the demo and the recorded runs repeat on every Python."""
    import hashlib

    shipped = corpus.finetune_text()
    monkeypatch.setattr(corpus, "_topics", lambda: {"x": "another Python's topics"})
    assert corpus.finetune_text() == shipped
    assert hashlib.sha256(shipped.encode()).hexdigest().startswith("2a95af4ac93f5b71")
    assert "\r" not in shipped and len(shipped) == 465_048
