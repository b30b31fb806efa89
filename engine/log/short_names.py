"""Short, distinct, stable names for the runs of merged logs, and the settings that differ between them. Pure.

Merged runs whose arm names clash have their arms named `<run>/<arm>`. Run names come from log file
names (`demo-full-targeted-lora`), long and alike, so on a card or legend every arm read
`demo-full-targeted-…`. `short_names` gives each run the shortest whole-word part of its name that no
other run's name contains (`lora`, `reverse`, `study`); where some name has none that fits (one name
inside another, or only long parts differ) every run gets a letter (`A`, `B`, …) and the Run view's
legend says which run each letter is. The result depends only on the set of names (not their order),
except for letters, which follow the order given.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence, Set

WIDTH = 10  # the longest short name; past it, letters
_WORD = re.compile(r"[^-_./\s]+")  # words of a run name: separated by - _ . / and spaces


def _windows(name: str) -> list[str]:
    """Every run of whole words of `name`, with the separators between them: shortest first, then leftmost."""
    spans = [m.span() for m in _WORD.finditer(name)]
    found: dict[str, tuple[int, int]] = {}
    for i, (start, _) in enumerate(spans):
        for _, end in spans[i:]:
            found.setdefault(name[start:end], (end - start, start))
    return sorted(found, key=lambda w: found[w])


def _contains(name: str, window: str) -> bool:
    """Whether `window` occurs in `name` as whole words."""
    return window in _windows(name)


def _unique_part(i: int, names: Sequence[str]) -> str | None:
    """The shortest run of whole words of names[i] that no other name holds as whole words."""
    others = [n for k, n in enumerate(names) if k != i]
    return next((w for w in _windows(names[i]) if not any(_contains(o, w) for o in others)), None)


def letters(n: int) -> list[str]:
    """A, B, …, Z, AA, AB, …: spreadsheet column names, n of them."""
    out = []
    for k in range(n):
        label, k1 = "", k + 1
        while k1:
            k1, rest = divmod(k1 - 1, 26)
            label = string.ascii_uppercase[rest] + label
        out.append(label)
    return out


def short_names(names: Sequence[str], width: int = WIDTH) -> list[str]:
    """Distinct names of at most `width` characters for distinct run names (see the module's docstring).
    Names that are already short and distinct stay as they are."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ: {names}")
    if all(0 < len(n) <= width for n in names):
        return names
    parts = [_unique_part(i, names) for i in range(len(names))]
    if all(p is not None and len(p) <= width for p in parts):
        return [str(p) for p in parts]
    return letters(len(names))


def settings_diff(configs: Sequence[Mapping], skip: Set[str] = frozenset()) -> dict[str, list]:
    """The settings whose values differ between runs: {key: [value of each run, None where it has none]},
    in the order the keys first occur. A key some runs lack (logs of an older version) counts only where
    the runs that have it disagree: its value in the others is not known."""
    keys = list(dict.fromkeys(k for c in configs for k in c if k not in skip))
    diff = {k: [c.get(k) for c in configs] for k in keys}
    return {k: values for k, values in diff.items() if len({repr(c[k]) for c in configs if k in c}) > 1}
