"""Parser for the freeze-spec language (README.md, "Freeze specs"). Pure: no torch.

    SPEC   := PRESET | RULE ("," RULE)*
    PRESET := full | targeted | reverse | attn-top:N
    ADAPTER := KIND ":" R ["/" ALPHA] ":" TARGET ("," TARGET)*      KIND := lora | dora (ADAPTER_KINDS)
    RULE   := ("+" | "-") TARGET ["@" ("step" | "epoch") N]
    TARGET := ROLE ["[" BLOCKS "]"] | "re:" REGEX
    BLOCKS := Python slice (6:  -2:  4:8  ::2) or comma list (0,3,5)

A preset may also stand in a rule list (``targeted,+mlp[-1:]@epoch 1``): it means
its rule. Presets need the block count L, so ``Spec.expand(L)`` turns them into
rules; everything else is checked here, before any model is loaded.

Commas inside ``[...]`` (and inside a regex's brackets) do not separate rules. The
schedule is the text after the last unescaped ``@`` (write ``\\@`` for a literal @
in a regex). A regex is matched with ``re.search`` against parameter names.
An adapter spec (``lora:``, ``dora:``) stands alone (no rules or presets beside it): low-rank adapters of
rank R (scale ALPHA / R, ALPHA defaults to R) on the matched weight matrices, everything
else frozen; what a kind means is ``engine.plans.kinds``' business, its form is parsed here.
Errors are ``SpecError``: ``bad spec '<text>' at <pos>: rule '<rule>': <what>``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from engine.core.errors import SpecError

__all__ = [
    "ROLES",
    "DEFAULT_ARMS",
    "Blocks",
    "Schedule",
    "Rule",
    "Preset",
    "Spec",
    "AdapterSpec",
    "ADAPTER_KINDS",
    "parse_spec",
    "spec_error",
    "blocks_text",
    "grid_targets",
]

ROLES = (
    "all",
    "embed",
    "pos",
    "head",
    "final_norm",
    "block",
    "attn",
    "attn.qkv",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "mlp",
    "norm",
)
DEFAULT_ARMS = (("full", "full"), ("targeted", "targeted"))
# the adapter form's spec prefixes, as messages spell them; engine.plans.kinds resolves each
ADAPTER_KINDS = {"lora": "LoRA", "dora": "DoRA"}
UNITS = ("step", "epoch")

_INT = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,9}", re.ASCII)
_LETTERS = string.ascii_letters
_TARGET = re.compile(r"([A-Za-z_.]*)(\[.*)?", re.DOTALL)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*", re.ASCII)
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True)
class Blocks:
    """A block selection: a slice (start/stop/step) or an explicit index list."""

    text: str
    indices: tuple[int, ...] | None = None
    start: int | None = None
    stop: int | None = None
    step: int | None = None

    def out_of_range(self, n_blocks: int) -> bool:
        """True when an index (or slice bound) lies outside a model of n_blocks."""
        if self.indices is not None:
            return any(not -n_blocks <= i < n_blocks for i in self.indices)
        return any(b is not None and not -n_blocks <= b <= n_blocks for b in (self.start, self.stop))

    def select(self, n_blocks: int) -> tuple[int, ...]:
        """The selected block indices, ascending, as Python indexing would pick them."""
        every = range(n_blocks)
        if self.indices is not None:
            return tuple(sorted({every[i] for i in self.indices}))
        return tuple(sorted(every[self.start : self.stop : self.step]))


@dataclass(frozen=True)
class Schedule:
    """Delay: the rule fires once the trainer's 0-based step (or epoch) counter reaches n."""

    at: str
    n: int

    def reached(self, step: int, epoch: int) -> bool:
        return (step if self.at == "step" else epoch) >= self.n

    def __str__(self) -> str:
        return f"@{self.at} {self.n}"


@dataclass(frozen=True)
class Rule:
    """One ``+``/``-`` rule; exactly one of role/regex is set. pos: offset in the spec."""

    sign: str
    role: str | None
    regex: str | None
    blocks: Blocks | None
    schedule: Schedule | None
    text: str
    pos: int
    preset: str | None = None

    @property
    def trains(self) -> bool:
        return self.sign == "+"

    def describe(self) -> str:
        """How error messages name this rule."""
        origin = f" (from preset {self.preset!r})" if self.preset else ""
        return f"rule {self.text!r} at {self.pos}{origin}"


@dataclass(frozen=True)
class Preset:
    """A named plan; ``n`` is attn-top's block count."""

    name: str
    n: int | None
    text: str
    pos: int

    def expand(self, n_blocks: int) -> Rule:
        half = n_blocks // 2
        body = {
            "full": "+all",
            "targeted": f"+attn.qkv[{half}:]",
            "reverse": f"-attn[{half}:]",
            "attn-top": f"+attn[-{self.n}:]",
        }[self.name]
        rule = _parse_rule(body, 0, body)
        return Rule(rule.sign, rule.role, None, rule.blocks, None, body, self.pos, self.text)


@dataclass(frozen=True)
class AdapterSpec:
    """``KIND:R[/ALPHA]:TARGETS``: adapters of kind ``kind``, rank ``rank`` and scale alpha/rank on the targets."""

    kind: str
    rank: int
    alpha: float
    targets: tuple[Rule, ...]  # "+" rules, one per target, without schedules

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class Spec:
    """A parsed spec: its text and its items in order (rules and presets); for an adapter spec
    ``adapter`` is set and ``items`` are its targets as ``+`` rules."""

    text: str
    items: tuple[Rule | Preset, ...]
    adapter: AdapterSpec | None = None

    @property
    def preset(self) -> str | None:
        """The preset name when the whole spec is one preset."""
        only = self.items[0]
        return only.name if len(self.items) == 1 and isinstance(only, Preset) else None

    def expand(self, n_blocks: int) -> tuple[Rule, ...]:
        """The rules, presets replaced by their rule for a model of n_blocks blocks."""
        return tuple(i.expand(n_blocks) if isinstance(i, Preset) else i for i in self.items)


def spec_error(text: str, pos: int, what: str) -> SpecError:
    """The one format of spec errors, so every message reads the same."""
    return SpecError(f"bad spec {text!r} at {pos}: {what}")


def parse_spec(text: str) -> Spec:
    """Parse a spec string; raise SpecError (never anything else) on bad input."""
    if not text.strip():
        raise spec_error(
            text, 0, "empty spec (expected a preset: full, targeted, reverse, attn-top:N, or rules like +attn.qkv[6:])"
        )
    kind = next((k for k in ADAPTER_KINDS if text.lstrip().startswith(k)), None)
    if kind is not None:
        adapter = _parse_adapter(text, kind)
        return Spec(text, adapter.targets, adapter)
    return Spec(text, tuple(_parse_item(item, pos, text) for item, pos in _split(text)))


def _adapter_form(kind: str) -> str:
    return f"expected {kind}:R[/ALPHA]:TARGET[,TARGET...], e.g. {kind}:8:attn.qkv[6:] or {kind}:16/32:attn.q,attn.v"


def _parse_adapter(text: str, kind: str) -> AdapterSpec:
    name = ADAPTER_KINDS[kind]
    head = re.compile(rf"\s*{kind}:([^:]*):", re.ASCII).match(text)
    if head is None:
        raise spec_error(text, 0, f"cannot read this {name} spec ({_adapter_form(kind)})")
    rank, alpha = _adapter_numbers(head.group(1), head.start(1), text, kind)
    body = text[head.end() :]
    targets = tuple(_adapter_target(item, pos + head.end(), text, kind) for item, pos in _split(body))
    return AdapterSpec(kind, rank, alpha, targets)


def _adapter_numbers(part: str, pos: int, text: str, kind: str) -> tuple[int, float]:
    name, form = ADAPTER_KINDS[kind], _adapter_form(kind)
    rank_text, _, alpha_text = part.partition("/")
    if not _COUNT.fullmatch(rank_text.strip()) or int(rank_text) < 1:
        raise spec_error(text, pos, f"{name} rank {rank_text.strip()!r} must be a whole number >= 1 ({form})")
    if "/" not in part:
        return int(rank_text), float(int(rank_text))
    try:
        alpha = float(alpha_text)
    except ValueError:
        alpha = math.nan
    if not math.isfinite(alpha) or alpha <= 0:
        where = pos + len(rank_text) + 1
        raise spec_error(text, where, f"{name} alpha {alpha_text.strip()!r} must be a number > 0 ({form})")
    return int(rank_text), alpha


def _adapter_target(item: str, pos: int, text: str, kind: str) -> Rule:
    name = ADAPTER_KINDS[kind]
    if not item:
        raise spec_error(text, pos, f"empty {name} target (a stray comma? {_adapter_form(kind)})")
    if item[0] in "+-" or _last_unescaped_at(item) >= 0:
        raise _rule_error(
            text, pos, item, f"a {name} target is a role or re:REGEX, without sign or schedule (the rest stays frozen)"
        )
    if item.startswith("re:"):
        return Rule("+", None, _check_regex(item[3:], pos, text, item), None, None, item, pos)
    role, blocks = _parse_target(item, pos, text, item)
    return Rule("+", role, None, blocks, None, item, pos)


def _split(text: str) -> list[tuple[str, int]]:
    """Split at top-level commas; return (stripped item, its offset) pairs."""
    items, depth, start, escaped = [], 0, 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            items.append((text[start:i], start))
            start = i + 1
    items.append((text[start:], start))
    return [(raw.strip(), pos + len(raw) - len(raw.lstrip())) for raw, pos in items]


def _parse_item(item: str, pos: int, text: str) -> Rule | Preset:
    if not item:
        raise spec_error(text, pos, "empty rule (a stray comma?)")
    if item[0] in "+-":
        return _parse_rule(item, pos, text)
    preset = _parse_preset(item, pos, text)
    if preset is not None:
        return preset
    if item.startswith("re:") or _role_part(item) in ROLES:
        raise _rule_error(text, pos, item, "missing sign: start the rule with + (train) or - (freeze)")
    what = f"unknown preset {item!r}" if _WORD.fullmatch(item) else "cannot read this"
    raise _rule_error(
        text,
        pos,
        item,
        f"{what} (expected one of: full, targeted, reverse, attn-top:N, or a rule starting with + or -)",
    )


def _parse_preset(item: str, pos: int, text: str) -> Preset | None:
    if item in ("full", "targeted", "reverse"):
        return Preset(item, None, item, pos)
    if not item.startswith("attn-top"):
        return None
    n = item[len("attn-top:") :] if item.startswith("attn-top:") else ""
    if not _COUNT.fullmatch(n) or int(n) < 1:
        raise _rule_error(text, pos, item, "attn-top needs a block count >= 1 (expected attn-top:N, e.g. attn-top:2)")
    return Preset("attn-top", int(n), item, pos)


def _rule_error(text: str, pos: int, item: str, what: str) -> SpecError:
    return spec_error(text, pos, f"rule {item!r}: {what}")


def _parse_rule(item: str, pos: int, text: str) -> Rule:
    body, schedule = _split_schedule(item[1:], pos, text, item)
    if body.startswith("re:"):
        regex = _check_regex(body[3:], pos, text, item)
        return Rule(item[0], None, regex, None, schedule, item, pos)
    role, blocks = _parse_target(body, pos, text, item)
    return Rule(item[0], role, None, blocks, schedule, item, pos)


def _split_schedule(body: str, pos: int, text: str, item: str) -> tuple[str, Schedule | None]:
    at = _last_unescaped_at(body)
    if at < 0:
        return body.strip(), None
    return body[:at].strip(), _parse_schedule(body[at + 1 :].strip(), pos, text, item)


def _last_unescaped_at(body: str) -> int:
    for i in range(len(body) - 1, -1, -1):
        if body[i] == "@" and (len(body[:i]) - len(body[:i].rstrip("\\"))) % 2 == 0:
            return i
    return -1


def _parse_schedule(rest: str, pos: int, text: str, item: str) -> Schedule:
    unit = rest[: len(rest) - len(rest.lstrip(_LETTERS))]
    number = rest[len(unit) :].strip()
    if unit not in UNITS:
        what = f"unknown schedule unit {unit!r}" if unit else "missing schedule unit after '@'"
        raise _rule_error(text, pos, item, f"{what} (expected @step N or @epoch N)")
    if not number:
        raise _rule_error(text, pos, item, f"missing number after '@{unit}' (expected @{unit} N)")
    if not _COUNT.fullmatch(number):
        raise _rule_error(text, pos, item, f"@{unit} needs a whole number >= 0, got {number!r}")
    return Schedule(unit, int(number))


def _check_regex(regex: str, pos: int, text: str, item: str) -> str:
    if not regex:
        raise _rule_error(text, pos, item, "empty regex after 're:'")
    try:
        re.compile(regex)
    except (re.error, ValueError, OverflowError, RecursionError) as exc:
        raise _rule_error(text, pos, item, f"invalid regex: {exc}") from None
    return regex


def _role_part(body: str) -> str | None:
    match = _TARGET.fullmatch(body)
    return match.group(1) if match else None


def _parse_target(body: str, pos: int, text: str, item: str) -> tuple[str, Blocks | None]:
    match = _TARGET.fullmatch(body)
    role, bracket = match.groups() if match else (None, None)
    if not body:
        raise _rule_error(text, pos, item, "missing target after the sign (expected a role or re:REGEX)")
    if role is None or role not in ROLES:
        shown = role if role else body
        raise _rule_error(text, pos, item, f"unknown role {shown!r} (expected one of: {', '.join(ROLES)}, or re:REGEX)")
    if bracket is None:
        return role, None
    if not bracket.endswith("]"):
        raise _rule_error(text, pos, item, "expected the block list to end with ']'")
    return role, _parse_blocks(bracket[1:-1], pos, text, item)


def _parse_blocks(inner: str, pos: int, text: str, item: str) -> Blocks:
    spec = inner.strip()
    if ":" in spec:
        return _parse_slice(spec, pos, text, item)
    parts = [p.strip() for p in spec.split(",")]
    if not all(_INT.fullmatch(p) for p in parts):
        raise _rule_error(
            text,
            pos,
            item,
            f"bad block list [{inner}] (expected a slice like 6: or -2: or 4:8 or ::2, or indices like 0,3,5)",
        )
    return Blocks(spec, indices=tuple(int(p) for p in parts))


def _parse_slice(spec: str, pos: int, text: str, item: str) -> Blocks:
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) > 3 or not all(p == "" or _INT.fullmatch(p) for p in parts):
        raise _rule_error(
            text,
            pos,
            item,
            f"bad slice [{spec}] (expected start:stop or start:stop:step "
            "with whole numbers, e.g. 6: or -2: or 4:8 or ::2)",
        )
    start, stop, step = (int(p) if p else None for p in parts + [""] * (3 - len(parts)))
    if step == 0:
        raise _rule_error(text, pos, item, f"bad slice [{spec}]: step cannot be 0")
    return Blocks(spec, start=start, stop=stop, step=step)


def blocks_text(blocks) -> str:
    """The shortest block list naming exactly ``blocks`` (ascending ints): ``6:8`` for a run, else ``0,3,5``."""
    ordered = sorted(set(blocks))
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}:{ordered[-1] + 1}"
    return ",".join(str(b) for b in ordered)


def grid_targets(matrices: Iterable[tuple[int | None, str]], n_blocks: int) -> list[str]:
    """ROLE[blocks] targets, one per role in first-seen order, naming exactly the given cells; a role in
    every block needs no block list."""
    by_role: dict[str, set[int]] = {}
    outer: list[str] = []
    for block, role in matrices:
        if block is None:
            outer += [role] if role not in outer else []
        else:
            by_role.setdefault(role, set()).add(block)
    if not by_role and not outer:
        raise SpecError("no matrices chosen: a spec needs at least one (block, role)")
    every = set(range(n_blocks))
    inner = [role if blocks == every else f"{role}[{blocks_text(blocks)}]" for role, blocks in by_role.items()]
    return inner + outer
