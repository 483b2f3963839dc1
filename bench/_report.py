"""How a benchmark reports: absolute figures, a ratio against a baseline from the same run, the
target and whether it was met. Printing only; nothing here measures."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One figure held against its target (``at_most``: lower is better, else higher is)."""

    label: str
    value: float
    target: float
    at_most: bool = True
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.target if self.at_most else self.value >= self.target

    def line(self) -> str:
        op = "<=" if self.at_most else ">="
        verdict = "MET" if self.met else "MISSED"
        return (f"  {self.label}: {self.value:.3g}{self.unit} "
                f"(target {op} {self.target:g}{self.unit}) -> {verdict}")


@dataclass
class Result:
    """What one benchmark found: its checks (and how long the whole benchmark took)."""

    name: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)

    def check(self, label: str, value: float, target: float, *, at_most: bool = True,
              unit: str = "") -> Check:
        """Record a check and print its line."""
        found = Check(label, value, target, at_most, unit)
        self.checks.append(found)
        print(found.line(), flush=True)
        return found


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def spread(values: Sequence[float]) -> str:
    """``median (min..max, n=...)`` in seconds."""
    return (f"median {secs(median(values))} (min {secs(min(values))}, max {secs(max(values))}, "
            f"n={len(values)})")


def heading(name: str, what: str) -> None:
    print(f"\n== {name}: {what}", flush=True)


def say(text: str) -> None:
    print(f"  {text}", flush=True)
