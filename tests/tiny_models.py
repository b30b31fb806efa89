"""Tiny random causal LMs of several families, saved like a real model directory.

``make_tiny_model(tmp_path, "llama")`` writes config, safetensors weights and a small
byte-level BPE tokenizer (no pad token, like GPT-2's) and returns the directory, so
tests go through the real ``from_pretrained`` path. Nothing is downloaded.

The tokenizer (``<eos>`` = 0, printable ASCII, merges that make each of ``WORDS``
one token after a space) has 240 entries and the models 256 embedding rows:
transformers gives some families (qwen2) an extra pad token, which must still be a
valid id. Characters outside ASCII are dropped.
"""

from __future__ import annotations

import string
from pathlib import Path

VOCAB = 256
TOKENIZER_SIZE = 240
EOS = "<eos>"
# WORDS[2:] are plain words for test corpora; WORDS[:2] stay special for old callers.
WORDS = ["<unk>", EOS] + [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "or",
    "at",
    "an",
    "which",
    "not",
    "have",
    "but",
    "can",
    "one",
    "all",
    "has",
    "their",
    "more",
    "will",
    "other",
    "been",
    "when",
    "there",
    "also",
    "would",
    "into",
    "its",
    "only",
    "some",
    "time",
    "these",
    "may",
    "first",
    "such",
    "than",
    "two",
    "new",
    "over",
    "most",
    "out",
]
_TRAIN_TEXT = " ".join(w for i, w in enumerate(WORDS[2:]) for _ in range(60 - i)) + " " + string.printable
_COMMON = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=None)


# family -> (config class name, config kwargs). 4 blocks, width 32, 4 heads.
FAMILIES = {
    "gpt2": ("GPT2Config", dict(n_layer=4, n_embd=32, n_head=4, n_positions=64)),
    "gpt_neo": (
        "GPTNeoConfig",
        dict(
            num_layers=4,
            hidden_size=32,
            num_heads=4,
            max_position_embeddings=64,
            attention_types=[[["global", "local"], 2]],
            window_size=16,
        ),
    ),
    "gpt_neox": (
        "GPTNeoXConfig",
        dict(
            num_hidden_layers=4, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64
        ),
    ),
    "opt": (
        "OPTConfig",
        dict(
            num_hidden_layers=4,
            hidden_size=32,
            num_attention_heads=4,
            ffn_dim=64,
            word_embed_proj_dim=32,
            max_position_embeddings=64,
        ),
    ),
    "llama": (
        "LlamaConfig",
        dict(
            num_hidden_layers=4,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
    ),
    "mistral": (
        "MistralConfig",
        dict(
            num_hidden_layers=4,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=1,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
    ),
    "qwen2": (
        "Qwen2Config",
        dict(
            num_hidden_layers=4,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
    ),
    "gptj": ("GPTJConfig", dict(n_layer=4, n_embd=32, n_head=4, rotary_dim=4, n_positions=64)),
    "phi": (
        "PhiConfig",
        dict(
            num_hidden_layers=4, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64
        ),
    ),
    "falcon": ("FalconConfig", dict(num_hidden_layers=4, hidden_size=32, num_attention_heads=4)),
    "bloom": ("BloomConfig", dict(n_layer=4, hidden_size=32, n_head=4)),
}


def make_config(family: str, **overrides):
    """The tiny config of a family, with keyword overrides (e.g. n_layer=6)."""
    import transformers

    cls_name, kwargs = FAMILIES[family]
    return getattr(transformers, cls_name)(**{**_COMMON, **kwargs, **overrides})


def make_tokenizer():
    """A deterministic byte-level BPE fast tokenizer with eos (id 0) but no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_SIZE, special_tokens=[EOS], show_progress=False)
    tok.train_from_iterator([_TRAIN_TEXT], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)


def make_tiny_model(tmp_path: Path, family: str, *, with_tokenizer: bool = True, seed: int = 0, **overrides) -> Path:
    """Build a random tiny model of ``family``, save it (and a tokenizer) to tmp_path/family."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(family, **overrides))
    out = Path(tmp_path) / family
    model.save_pretrained(out)
    if with_tokenizer:
        make_tokenizer().save_pretrained(out)
    return out
