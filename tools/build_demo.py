"""Build the embedded demo model: ``python -m tools.build_demo [--steps N] [--out DIR]``.

1. Train a byte-level BPE tokenizer (GPT-2 style, one special token ``<|endoftext|>``)
   on :func:`engine.demo.corpus.pretrain_text` (standard-library docstrings).
2. Pretrain a small GPT-2 (``GPT2LMHeadModel``, tied embeddings) on that text from
   scratch: AdamW, linear warmup + cosine decay, fixed seed, fixed data order, one
   CPU thread (so the result does not depend on the machine's core count).
3. Save weights (safetensors), config, tokenizer and ``BUILD.json`` (how it was made,
   final losses, loss on the fine-tuning text, a sample) into ``engine/demo/model/``.

The fine-tuning text (the Language Reference in ``pydoc_data``) is never trained on
here; it is only evaluated, to record the starting loss of the demo study.
"""

from __future__ import annotations

import os

# One thread everywhere, before tokenizers / torch are imported.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import inspect
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

from engine.demo import (
    DEMO_MODEL_DIR,
    DEMO_NAME,
    corpus,
)

EOT = "<|endoftext|>"

# Everything that determines the result. Changing any of it changes the model.
RECIPE = {
    "seed": 1234,
    "vocab_size": 4096,
    "tokenizer_min_frequency": 2,
    "n_layer": 6,
    "n_embd": 128,
    "n_head": 4,
    "n_positions": 256,
    "activation_function": "gelu_pytorch_tanh",  # GPT-2's tanh GELU, one fused kernel
    # Most steps on short blocks (cheaper attention, more updates), the last quarter on
    # full-length blocks so every position embedding is trained. Same tokens per step.
    "block_size": 128,
    "batch_size": 8,
    "long_block_size": 256,
    "long_batch_size": 4,
    "long_from": 0.75,
    "steps": 1800,
    "lr": 3e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 100,
    "weight_decay": 0.1,
    "betas": (0.9, 0.95),
    "grad_clip": 1.0,
    "val_fraction": 0.02,
    "threads": 1,
}

PROMPTS = ["The function returns", "If the", "This module provides"]


def log(msg: str) -> None:
    print(msg, flush=True)


def train_tokenizer(text: str, vocab_size: int, min_frequency: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    tok.train_from_iterator(paragraphs, trainer=trainer, length=len(paragraphs))
    return tok


def wrap_tokenizer(tok, n_positions: int):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        model_max_length=n_positions,
        clean_up_tokenization_spaces=False,
    )  # no pad token, exactly like gpt2: loading code must handle that


def heldout_pretrain_text(recipe: dict = RECIPE) -> str:
    """The pretraining text's held-out tail: build() trains on all but the last `val_fraction` of the
    tokens, so the text from the first paragraph break inside that tail was never trained on. Needs the
    shipped tokenizer (the one build() trained on the same text) and Python 3.11's standard library."""
    from tokenizers import Tokenizer

    text = corpus.pretrain_text()
    encoding = Tokenizer.from_file(str(DEMO_MODEL_DIR / "tokenizer.json")).encode(text)
    n_val = int(len(encoding.ids) * recipe["val_fraction"])
    start = encoding.offsets[len(encoding.ids) - n_val][0]
    return text[text.index("\n\n", start) + 2 :]


def lr_at(step: int, r: dict) -> float:
    if step < r["warmup_steps"]:
        return r["lr"] * (step + 1) / r["warmup_steps"]
    progress = (step - r["warmup_steps"]) / max(1, r["steps"] - r["warmup_steps"])
    floor = r["lr"] * r["min_lr_ratio"]
    return floor + (r["lr"] - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def eval_loss(model, ids, block: int, batch: int, max_blocks: int | None = None) -> float:
    """Mean next-token loss over consecutive non-overlapping blocks of ``ids``."""
    import torch

    n = (len(ids) - 1) // block
    if max_blocks is not None:
        n = min(n, max_blocks)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch):
            rows = [ids[(start + i) * block : (start + i) * block + block] for i in range(min(batch, n - start))]
            x = torch.stack(rows)
            loss = model(input_ids=x, labels=x).loss
            k = x.numel() - x.shape[0]
            total += float(loss) * k
            count += k
    model.train()
    return total / max(1, count)


def sample(model, tokenizer, prompt: str, greedy: bool, seed: int, max_new_tokens: int = 40) -> str:
    import torch

    torch.manual_seed(seed)
    x = tokenizer(prompt, return_tensors="pt")
    kwargs = (
        {"do_sample": False, "repetition_penalty": 1.3}
        if greedy
        else {"do_sample": True, "top_k": 40, "temperature": 0.8}
    )
    model.eval()
    with torch.no_grad():
        out = model.generate(
            **x,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.eos_token_id,
            **kwargs,
        )
    model.train()
    return tokenizer.decode(out[0], skip_special_tokens=True)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def build(out_dir: Path, recipe: dict) -> dict:
    import tokenizers
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    r = recipe
    t_start = time.time()
    torch.set_num_threads(r["threads"])
    torch.manual_seed(r["seed"])

    # ---- data ---------------------------------------------------------------------
    log("reading corpora from the standard library ...")
    pre_text = corpus.pretrain_text()
    ft_text = corpus.finetune_text()
    log(f"  pretrain: {corpus.pretrain_source()}: {len(pre_text):,} chars")
    log(f"  finetune: {corpus.finetune_source()}: {len(ft_text):,} chars")

    log(f"training byte-level BPE tokenizer (vocab {r['vocab_size']}) ...")
    t0 = time.time()
    tok = train_tokenizer(pre_text, r["vocab_size"], r["tokenizer_min_frequency"])
    tokenizer = wrap_tokenizer(tok, r["n_positions"])
    eot_id = tok.token_to_id(EOT)
    log(f"  done in {time.time() - t0:.1f}s, vocab {tok.get_vocab_size()}, {EOT} = {eot_id}")

    pre_ids = torch.tensor(tok.encode(pre_text).ids, dtype=torch.long)
    ft_ids = torch.tensor(tok.encode(ft_text).ids, dtype=torch.long)
    n_val = int(len(pre_ids) * r["val_fraction"])
    train_ids, val_ids = pre_ids[: len(pre_ids) - n_val], pre_ids[len(pre_ids) - n_val :]
    log(
        f"  pretrain tokens {len(pre_ids):,} ({len(pre_text) / len(pre_ids):.2f} chars/token; "
        f"train {len(train_ids):,}, held out {len(val_ids):,}); finetune tokens {len(ft_ids):,}"
    )

    # ---- model --------------------------------------------------------------------
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=r["n_positions"],
        n_embd=r["n_embd"],
        n_layer=r["n_layer"],
        n_head=r["n_head"],
        activation_function=r["activation_function"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: GPT-2, {r['n_layer']} blocks x {r['n_embd']} wide, {n_params:,} parameters")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": r["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=r["lr"],
        betas=r["betas"],
    )

    gen = torch.Generator().manual_seed(r["seed"])
    long_from = int(r["steps"] * r["long_from"])
    losses: list[float] = []
    t_train = time.time()
    model.train()
    for step in range(r["steps"]):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, r)
        if step < long_from:
            block, batch = r["block_size"], r["batch_size"]
        else:
            block, batch = r["long_block_size"], r["long_batch_size"]
        starts = torch.randint(0, len(train_ids) - block, (batch,), generator=gen)
        x = torch.stack([train_ids[s : s + block] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if step % 50 == 0 or step == r["steps"] - 1:
            el = time.time() - t_train
            recent = sum(losses[-50:]) / len(losses[-50:])
            eta = el / (step + 1) * (r["steps"] - step - 1)
            log(f"step {step:5d}/{r['steps']}  loss {recent:.3f}  lr {lr_at(step, r):.2e}  {el:6.0f}s  eta {eta:4.0f}s")
    train_seconds = time.time() - t_train
    final_train = sum(losses[-50:]) / len(losses[-50:])

    # ---- evaluate -----------------------------------------------------------------
    log("evaluating ...")
    block = r["long_block_size"]
    val_loss = eval_loss(model, val_ids, block, 16)
    ft_loss = eval_loss(model, ft_ids, block, 16)
    ft_loss_128 = eval_loss(model, ft_ids, 128, 16, max_blocks=64)
    log(
        f"  held-out pretrain loss {val_loss:.3f}; finetune-text loss {ft_loss:.3f} "
        f"(ln V = {math.log(config.vocab_size):.3f})"
    )
    samples = []
    for i, prompt in enumerate(PROMPTS):
        for greedy in (True, False):
            text = sample(model, tokenizer, prompt, greedy, r["seed"] + i)
            samples.append({"prompt": prompt, "mode": "greedy" if greedy else "top_k=40,T=0.8", "text": text})
            log(f"  [{samples[-1]['mode']}] {text!r}")

    # ---- save ---------------------------------------------------------------------
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.generation_config.pad_token_id = None
    save_kwargs: dict = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        save_kwargs["safe_serialization"] = True
    model.save_pretrained(out_dir, **save_kwargs)
    tokenizer.save_pretrained(out_dir)
    # A class name every transformers version (4.x and 5.x) maps to "load tokenizer.json as is".
    tc_path = out_dir / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc_path.write_text(json.dumps(tc, indent=2, sort_keys=True) + "\n")

    info = {
        "name": DEMO_NAME,
        "built_by": "python -m tools.build_demo",
        "pretrain_corpus": corpus.pretrain_source(),
        "pretrain_chars": len(pre_text),
        "pretrain_tokens": len(pre_ids),
        "pretrain_train_tokens": len(train_ids),
        "pretrain_heldout_tokens": len(val_ids),
        "finetune_corpus": corpus.finetune_source(),
        "finetune_chars": len(ft_text),
        "finetune_tokens": len(ft_ids),
        "tokenizer": f"byte-level BPE (tokenizers {tokenizers.__version__}), special token {EOT} = bos/eos, no pad",
        "vocab_size": config.vocab_size,
        "n_params": n_params,
        "config": {
            k: config.to_dict()[k]
            for k in (
                "model_type",
                "vocab_size",
                "n_positions",
                "n_embd",
                "n_layer",
                "n_head",
                "activation_function",
                "tie_word_embeddings",
            )
        },
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in r.items()},
        "steps": r["steps"],
        "batch_size": r["batch_size"],
        "block_size": r["block_size"],
        "long_block_size": r["long_block_size"],
        "long_batch_size": r["long_batch_size"],
        "tokens_seen": long_from * r["batch_size"] * r["block_size"]
        + (r["steps"] - long_from) * r["long_batch_size"] * r["long_block_size"],
        "eval_block_size": block,
        "lr": r["lr"],
        "schedule": f"linear warmup {r['warmup_steps']} steps, cosine decay to {r['min_lr_ratio']} x lr; AdamW",
        "seed": r["seed"],
        "threads": r["threads"],
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": None,  # filled below
        "final_train_loss": round(final_train, 4),
        "heldout_pretrain_loss": round(val_loss, 4),
        "finetune_text_loss": round(ft_loss, 4),
        "finetune_text_loss_block128_first64": round(ft_loss_128, 4),
        "ln_vocab": round(math.log(config.vocab_size), 4),
        "samples": samples,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "size_bytes": None,  # filled below
    }
    info["wall_seconds"] = round(time.time() - t_start, 1)
    (out_dir / "BUILD.json").write_text(json.dumps(info, indent=2) + "\n")
    info["size_bytes"] = dir_size(out_dir)
    (out_dir / "BUILD.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"saved {out_dir} ({info['size_bytes'] / 1e6:.2f} MB) in {info['wall_seconds']:.0f}s")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.build_demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEMO_MODEL_DIR, help="output folder (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's step count (for trials)")
    ap.add_argument(
        "--write-finetune-text",
        action="store_true",
        help="only (re)write engine/demo/finetune.txt.gz from this Python's pydoc_data (use Python 3.11)",
    )
    ap.add_argument(
        "--write-retain-text",
        action="store_true",
        help="only (re)write engine/demo/retain.txt.gz, the held-out tail of the pretraining text (use Python 3.11)",
    )
    args = ap.parse_args(argv)
    if args.write_finetune_text:
        corpus.write_finetune_text(corpus.topics_text())
        return 0
    if args.write_retain_text:
        corpus.write_retain_text(heldout_pretrain_text())
        return 0
    recipe = dict(RECIPE)
    if args.steps is not None:
        recipe["steps"] = args.steps
        recipe["warmup_steps"] = min(recipe["warmup_steps"], max(1, args.steps // 10))
    build(args.out, recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
