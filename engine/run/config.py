"""Typed run configuration with validation. No torch: the CLI validates before anything heavy loads."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.errors import FreezeTuiError
from engine.plans.memory import parse_size
from engine.plans.spec import DEFAULT_ARMS

DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("fp32", "bf16", "fp16")
ON_NAN = ("stop-arm", "stop-run", "continue")
DROPOUT = ("same", "off")
MAX_LR = 10.0  # far above any useful AdamW rate; 1e39 is inf in fp32 and fails mid-run
MAX_SEED = 2**32 - 1  # seeds are multiplied into torch generator seeds, which hold 64 bits


def setting(default, help: str, *, flag: str | None = None, metavar: str | None = None, cli: bool = True, aliases=()):
    """A RunConfig field and its command-line option in one place: `freeze_tui.cli.run_options` builds
    each option of `freeze-tui run` from the field's name, type, default and this help text."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "cli": cli, "aliases": tuple(aliases)}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; written whole into the `run_start` event. Each field is also an option
    of `freeze-tui run` (`--max-steps` for max_steps) with the help text given here."""

    model: str | None = setting(
        None, "Hugging Face name or local dir (default: the embedded demo).", metavar="NAME|PATH"
    )
    data: tuple[str, ...] = setting(
        (), "Text file or folder (*.txt, *.md, recursive); repeatable. Default: the demo corpus.", metavar="PATH"
    )
    retain_data: tuple[str, ...] = setting(
        (),
        "Text from the model's original domain (files or folders, like --data); repeatable. Every arm's loss "
        "on a fixed set of its blocks, at step 0 and each validation, measures forgetting. Default: none "
        "(the demo: held-out standard-library docstrings).",
        metavar="PATH",
    )
    arms: tuple[tuple[str, str], ...] = setting(
        DEFAULT_ARMS,
        "An arm and its freeze spec; repeatable. Every arm starts from the same weights and sees "
        "the same batches. Default: full=full, targeted=targeted.",
        flag="--arm",
        metavar="NAME=SPEC",
    )
    epochs: int = setting(3, "Passes over the training blocks.")
    max_steps: int = setting(0, "Stop after this many optimizer steps (0 = no limit).")
    batch_size: int = setting(8, "Blocks per optimizer step (the same batch for every arm).")
    block_size: int = setting(128, "Tokens per block (at most the model's context).")
    lr: float | None = setting(None, "Peak learning rate (default: 1e-3 for the demo model, 5e-5 otherwise).")
    weight_decay: float = setting(0.0, "AdamW weight decay of matrices (biases and norms never decay).")
    warmup: int = setting(0, "Linear warm-up steps, then linear decay to 0 at the last step.")
    grad_clip: float = setting(1.0, "Max gradient norm per arm (0 = off).")
    seed: int = setting(0, "Seed of the data split, batch order, dropout masks and samples.")
    seeds: int = setting(
        1,
        "Replicates: run the whole paired experiment N times (seeds s, s+1, ... for batch order, dropout "
        "and samples; the same split and S) into one log, for intervals across seeds.",
        metavar="N",
    )
    device: str = setting(
        "auto",
        "auto (every visible GPU, else cpu), cpu, cuda, cuda:N, mps, or a comma list such as cuda:0,cuda:1 "
        "(arms are placed round-robin over it).",
    )
    memory_limit: str | None = setting(
        None, "Refuse a plan needing more than SIZE per device (e.g. 24GB; default: its free memory).", metavar="SIZE"
    )
    dtype: str = setting("fp32", "fp32, bf16 or fp16 (autocast; weights stay fp32).")
    threads: int = setting(
        0,
        "Torch CPU threads (0 = OMP_NUM_THREADS if set, else the physical cores the load average leaves "
        "free, at least 1: oversubscribed threads make step times slow and unsteady).",
    )
    val_fraction: float = setting(0.1, "Share of the blocks held out for the validation loss.")
    samples: int = setting(4, "Generated samples per prompt and arm before training and after each epoch (0 = none).")
    equivalence_margin: float = setting(
        5.0,
        "Points of r within which the FLOP model's prediction 'agrees' with the measured interval (an "
        "equivalence test: agrees / differs / undecided); `report --margin` re-reads a log with another.",
    )
    sample_prompts: int = setting(
        8,
        "Prompts for samples: starts of distinct validation blocks, each with the same --samples seeds "
        "(p's interval is over prompts: 5 or more give one).",
    )
    sample_tokens: int = setting(32, "Tokens generated per sample.")
    prompt: str | None = setting(None, "Generation prompt (default: the start of the first validation block).")
    common_k: int = setting(100, "Size of the common-token set S (the most frequent training tokens).")
    norm_every: int = setting(1, "Compute ||W_t - W_{t-1}||_F every N steps (0 = never).", metavar="N")
    dropout: str = setting("same", "same (every arm gets the same dropout masks per step) or off (eval mode).")
    on_nan: str = setting("stop-arm", "What a non-finite loss does: stop-arm, stop-run or continue.")
    trust_remote_code: bool = setting(False, "Allow the model's own Python code (off by default).")
    log: str | None = setting(
        None,
        "Run log path (default: runs/<time>-<name>.jsonl). Also --log-path (under torchrun, whose own "
        "parser takes --log for its --log-dir).",
        metavar="PATH",
        aliases=("--log-path",),
    )
    overwrite: bool = setting(False, "Replace an existing --log file.")
    save: str | None = setting(None, "Save every arm's final weights (safetensors) under DIR/<arm>.", metavar="DIR")
    shards: int = setting(
        1,
        "Distributed runs: ranks per arm. K > 1 shards each arm with FSDP2 over K ranks, each a slice of "
        "the batch; the world is arms x replicas x shards processes (torchrun or --nproc-per-node).",
        metavar="K",
    )
    arm_roles: str = setting(
        "",
        "Study roles of the arms, NAME=method|random|full comma separated (`freeze-tui study` sets it); "
        "run_end then says whether each method arm beats the random ones.",
        metavar="NAME=ROLE,...",
    )
    monitor: bool = setting(True, "False: bare loop without ΔW norms or samples (benchmarks only).", cli=False)
    full_demo: bool = setting(
        False,
        "The embedded demo at the study's full size (3 epochs, 366 steps, 8 prompts x 4 samples: 20-60 min "
        "on a 2-core CPU). Without it a demo on CPU stops after 60 steps, samples 5 prompts x 2 and "
        "validates on 32 blocks.",
    )
    diverge_k: float = setting(
        3.0,
        "Alert when an arm's loss diverges: its mean over a block of 20 steps above both its own best block "
        "and the baseline's by more than K times its spread in the block (a toast, a bell, --notify).",
        metavar="K",
    )
    checkpoint_every: str | None = setting(
        None,
        "Write a checkpoint every N steps (e.g. 500) or every so long (90s, 30m, 2h) to <log stem>.ckpt/ "
        "beside the log; `run --resume LOG` continues from the newest. Default: none.",
        metavar="N|TIME",
    )
    keep_checkpoints: int = setting(2, "Checkpoints kept (the newest K; older ones are deleted).", metavar="K")
    peak_tflops: float | None = setting(
        None,
        "Dense peak TFLOP/s of one device at --dtype, for MFU (default: a table of known GPUs by name; none on CPU).",
        metavar="TFLOPS",
    )
    compile: bool = setting(
        False, "torch.compile every arm's model for its training steps, with the same options for every arm."
    )
    activation_checkpointing: bool = setting(
        False,
        "Recompute each block's activations in backward instead of keeping them (every arm alike; "
        "less memory, about a third more compute).",
    )
    replicas: int = setting(
        1,
        "Distributed runs: data-parallel replicas per arm. R > 1 trains each arm over R ranks (FSDP2's "
        "replication; HSDP with --shards), each a slice of the batch; the world is arms x replicas x shards.",
        metavar="R",
    )
    val_blocks: int = setting(
        0,
        "Measure validation loss, E[S] and forgetting on at most N validation blocks and N retain blocks, "
        "spread evenly over each (0 = every validation block and up to 64 retain blocks). Training is unchanged.",
        metavar="N",
    )

    def validate(self) -> RunConfig:
        """Raise FreezeTuiError with one clear line for the first bad value."""
        _positive("--epochs", self.epochs)
        _positive("--batch-size", self.batch_size)
        if self.block_size < 2:  # a block of one token has no next token to predict: every loss is NaN
            raise FreezeTuiError(f"--block-size must be at least 2, got {self.block_size}")
        _non_negative("--max-steps", self.max_steps)
        _non_negative("--warmup", self.warmup)
        _non_negative("--norm-every", self.norm_every)
        _non_negative("--samples", self.samples)
        _positive("--sample-tokens", self.sample_tokens)
        _positive("--sample-prompts", self.sample_prompts)
        _non_negative("--threads", self.threads)
        if not 0 < self.equivalence_margin < 100:
            raise FreezeTuiError(f"--equivalence-margin is in points of r, in (0, 100); got {self.equivalence_margin}")
        _positive("--seeds", self.seeds)
        if not 0 < self.diverge_k < math.inf:
            raise FreezeTuiError(f"--diverge-k must be a positive number, got {self.diverge_k}")
        _positive("--common-k", self.common_k)
        _positive("--shards", self.shards)
        _positive("--replicas", self.replicas)
        if self.batch_size % (self.shards * self.replicas):
            over = f"--shards {self.shards}"
            over = over if self.replicas == 1 else f"--replicas {self.replicas} x {over}"
            raise FreezeTuiError(
                f"--batch-size {self.batch_size} must split evenly over {over} "
                "(each rank of an arm takes an equal slice of every batch)"
            )
        if self.lr is not None and not 0 < self.lr <= MAX_LR:
            raise FreezeTuiError(f"--lr must be a positive number up to {MAX_LR:g}, got {self.lr}")
        if not 0 <= self.seed <= MAX_SEED:
            raise FreezeTuiError(f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}")
        if not 0 <= self.val_fraction < 1:
            raise FreezeTuiError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        for flag, value in (("--weight-decay", self.weight_decay), ("--grad-clip", self.grad_clip)):
            if not 0 <= value < math.inf:  # NaN too: a NaN clip silently turns clipping off
                raise FreezeTuiError(f"{flag} must be a non-negative number, got {value}")
        device_list(self.device)
        if self.memory_limit is not None:
            parse_size(self.memory_limit)
        _choice("--dtype", self.dtype, DTYPES)
        _choice("--on-nan", self.on_nan, ON_NAN)
        _choice("--dropout", self.dropout, DROPOUT)
        if self.peak_tflops is not None and not 0 < self.peak_tflops < math.inf:
            raise FreezeTuiError(
                f"--peak-tflops must be a positive number (e.g. 989 for an H100), got {self.peak_tflops}"
            )
        self._validate_arms()
        if self.checkpoint_every is not None:
            from engine.run.every import parse_every

            parse_every(self.checkpoint_every)
        _positive("--keep-checkpoints", self.keep_checkpoints)
        _non_negative("--val-blocks", self.val_blocks)
        return self

    def _validate_arms(self) -> None:
        if not self.arms:
            raise FreezeTuiError("no arms: pass at least one --arm NAME=SPEC")
        seen: set[str] = set()
        for name, spec in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
                raise FreezeTuiError(f"arm name {name!r} must be 1-32 letters, digits, '_', '.' or '-'")
            if name.startswith("-") or not name.strip("."):  # `..` is a path out of --save; `-x` reads as an option
                raise FreezeTuiError(
                    f"arm name {name!r} must not start with '-' or be only dots; use letters, e.g. --arm a{name}=full"
                )
            if name in seen:
                raise FreezeTuiError(f"two arms are named {name!r}; give each --arm a different NAME")
            if not spec.strip():
                raise FreezeTuiError(f"arm {name!r} has an empty spec; use e.g. --arm {name}=full")
            seen.add(name)
        from engine.log.study import parse_roles

        unknown = sorted(set(parse_roles(self.arm_roles)) - seen)
        if unknown:
            raise FreezeTuiError(f"--arm-roles names {', '.join(unknown)}, which is not an arm; name arms from --arm")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["arms"] = [list(a) for a in self.arms]
        out["data"] = list(self.data)
        out["retain_data"] = list(self.retain_data)
        return out

    def default_log_path(self, now: str) -> Path:
        name = Path(self.model).name if self.model else "demo"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "run"
        return Path("runs") / f"{now}-{name}.jsonl"


def device_list(text: str) -> list[str]:
    """`cuda:0,cuda:1` -> ['cuda:0', 'cuda:1']; `auto` stays alone. One clear line for a bad list."""
    parts = [p.strip() for p in str(text).split(",")]
    for part in parts:
        if not DEVICES.match(part):
            which = f"--device {text!r}" + (f": {part!r}" if len(parts) > 1 else "")
            raise FreezeTuiError(
                f"{which} is not one of auto, cpu, cuda, cuda:N, mps; give one device or a comma list "
                "such as cuda:0,cuda:1"
            )
    if len(parts) > 1 and "auto" in parts:
        raise FreezeTuiError(f"--device {text!r}: auto already means every visible GPU; list devices or say auto")
    return parts


def parse_arm(text: str) -> tuple[str, str]:
    """`NAME=SPEC`; a bare preset such as `targeted` names itself."""
    name, sep, spec = text.partition("=")
    if not sep:
        name, spec = text, text
    name, spec = name.strip(), spec.strip()
    if not name or not spec:
        raise FreezeTuiError(f"--arm {text!r} must look like NAME=SPEC, e.g. --arm targeted=targeted")
    return name, spec


def _positive(flag: str, value: int) -> None:
    if value <= 0:
        raise FreezeTuiError(f"{flag} must be at least 1, got {value}")


def _non_negative(flag: str, value: int) -> None:
    if value < 0:
        raise FreezeTuiError(f"{flag} must not be negative, got {value}")


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise FreezeTuiError(f"{flag} {value!r} is not one of {', '.join(allowed)}")
