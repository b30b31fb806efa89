"""The random-weight GPT-2 shapes the GPU benches build (bench.gpu, bench.replicas_vs_shards): nothing
downloads, the tokenizer is the embedded demo's."""

from __future__ import annotations

from pathlib import Path

SHAPES = {"small": (12, 768, 12), "medium": (24, 1024, 16), "large": (36, 1280, 20)}  # layers, width, heads
TINY = {"tiny": (2, 64, 2)}


def gpt2(layers: int, width: int, heads: int, vocab: int = 50257, ctx: int = 1024):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    eos = vocab - 1
    config = GPT2Config(
        n_layer=layers,
        n_embd=width,
        n_head=heads,
        vocab_size=vocab,
        n_positions=ctx,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    return GPT2LMHeadModel(config)


def model_dir(root: Path, dims, ctx: int) -> Path:
    """A random-weight GPT-2-shaped model with the demo's tokenizer, saved like any local model."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from engine.demo import DEMO_MODEL_DIR

    logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    out = root / "gpt2-shaped"
    gpt2(*dims, vocab=len(tok), ctx=ctx).save_pretrained(out)
    tok.save_pretrained(out)
    return out
