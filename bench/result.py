"""One benchmark line: what was measured, against which target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    figure: str
    measured: float
    target: float
    unit: str = ""
    higher_is_better: bool = True
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    def line(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        verdict = "PASS" if self.passed else "FAIL"
        note = f"  ({self.note})" if self.note else ""
        return (
            f"{self.figure:<44} {self.measured:>12.4g} {self.unit:<8} target {op} {self.target:<10.4g} {verdict}{note}"
        )
