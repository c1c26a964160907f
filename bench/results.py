"""The machine-readable result of one benchmark run, for `bench/run_all.py`.

Every benchmark script takes `--json PATH` and, when given, writes there one `Result` per figure
that the README's summary table reports: the figure the goal is about (a ratio against the
baseline measured in the same run, a latency, a wall time) and the numbers behind it. The runner
runs each script several times and reports medians, so a script keeps its own best-of-N logic for
the detailed tables and the runner judges the goal on the median of those per-run figures.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# A goal reads "<op> <number>", in the figure's unit: ">= 80" for a ratio in per cent, "< 20" ms.
GOAL_PATTERN = re.compile(r"^(>=|<=|<|>)\s*([0-9.]+)$")
OPERATORS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Result:
    """One reported figure. `key` is stable across runs (the runner groups by it); `goal` is None
    for context figures that have no target."""

    key: str
    workload: str
    value: float
    unit: str
    goal: str | None = None
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.goal is not None and not GOAL_PATTERN.match(self.goal):
            raise ValueError(f"goal {self.goal!r} is not '<op> <number>'")


def goal_met(goal: str, value: float) -> bool:
    match = GOAL_PATTERN.match(goal)
    if match is None:
        raise ValueError(f"goal {goal!r} is not '<op> <number>'")
    return bool(OPERATORS[match.group(1)](value, float(match.group(2))))


def write_results(path: str | Path | None, results: Iterable[Result]) -> None:
    """Write `results` as JSON to `path` (nothing when the script was not asked to)."""
    if path is None:
        return
    payload = [asdict(result) for result in results]
    Path(path).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def read_results(path: str | Path) -> list[Result]:
    return [Result(**entry) for entry in json.loads(Path(path).read_text(encoding="utf-8"))]
