"""Typed run configuration with validation. No torch: the CLI validates before anything heavy loads."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import FreezeTuiError

DEFAULT_ARMS = (("full", "full"), ("targeted", "targeted"))
DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("fp32", "bf16", "fp16")
ON_NAN = ("stop-arm", "stop-run", "continue")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; written whole into the `run_start` event."""

    model: str | None = None
    """Hugging Face name or local directory; None = the embedded demo."""
    data: tuple[str, ...] = ()
    """Text files or folders (*.txt, *.md, recursive); empty = the demo corpus."""
    arms: tuple[tuple[str, str], ...] = DEFAULT_ARMS
    """(name, freeze spec) per arm; every arm starts from the same weights and sees the same batches."""
    epochs: int = 3
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = no limit)."""
    batch_size: int = 8
    block_size: int = 128
    lr: float | None = None
    """Peak learning rate; None = 1e-3 for the demo model, 5e-5 otherwise."""
    weight_decay: float = 0.0
    warmup: int = 0
    """Linear warm-up steps, then linear decay to 0 at the last step."""
    grad_clip: float = 1.0
    """Max gradient norm per arm (0 = off)."""
    seed: int = 0
    device: str = "auto"
    dtype: str = "fp32"
    val_fraction: float = 0.1
    samples: int = 4
    sample_tokens: int = 32
    prompt: str | None = None
    """Generation prompt; None = the start of the first validation block."""
    common_k: int = 100
    norm_every: int = 1
    """Compute ||W_t - W_{t-1}||_F every this many steps (0 = never)."""
    dropout: str = "same"
    """'same': every arm gets the same dropout masks per step; 'off': eval-mode dropout."""
    on_nan: str = "stop-arm"
    trust_remote_code: bool = False
    log: str | None = None
    overwrite: bool = False
    save: str | None = None
    monitor: bool = True
    """False = bare loop without ΔW norms or samples (benchmarks only)."""
    extra: dict = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Raise FreezeTuiError with one clear line for the first bad value."""
        _positive("--epochs", self.epochs)
        _positive("--batch-size", self.batch_size)
        _positive("--block-size", self.block_size)
        _non_negative("--max-steps", self.max_steps)
        _non_negative("--warmup", self.warmup)
        _non_negative("--norm-every", self.norm_every)
        _non_negative("--samples", self.samples)
        _positive("--sample-tokens", self.sample_tokens)
        _positive("--common-k", self.common_k)
        if self.lr is not None and not 0 < self.lr < math.inf:
            raise FreezeTuiError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise FreezeTuiError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise FreezeTuiError("--weight-decay and --grad-clip must not be negative")
        if not DEVICES.match(self.device):
            raise FreezeTuiError(f"--device {self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        _choice("--dtype", self.dtype, DTYPES)
        _choice("--on-nan", self.on_nan, ON_NAN)
        _choice("--dropout", self.dropout, ("same", "off"))
        self._validate_arms()
        return self

    def _validate_arms(self) -> None:
        if not self.arms:
            raise FreezeTuiError("no arms: pass at least one --arm NAME=SPEC")
        seen: set[str] = set()
        for name, spec in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
                raise FreezeTuiError(f"arm name {name!r} must be 1-32 letters, digits, '_', '.' or '-'")
            if name in seen:
                raise FreezeTuiError(f"two arms are named {name!r}; give each --arm a different NAME")
            if not spec.strip():
                raise FreezeTuiError(f"arm {name!r} has an empty spec; use e.g. --arm {name}=full")
            seen.add(name)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["arms"] = [list(a) for a in self.arms]
        out["data"] = list(self.data)
        return out

    def default_log_path(self, now: str) -> Path:
        name = Path(self.model).name if self.model else "demo"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "run"
        return Path("runs") / f"{now}-{name}.jsonl"


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
