"""Agreement and diagnostic-accuracy statistics for 20 readers x 10,000 cases: wall time per part.

    .venv/bin/python bench/stats_bench.py [--readers 20] [--cases 10000] [--bootstrap 200]

Synthetic ratings on a 3-level ordinal scale with 5 % missing ratings, 500 patients and a binary
reference; each reader is right with probability 0.8. Prints a markdown table (best of 3 runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from annotations.statistics.ratings import RatingsTable
from annotations.statistics.report import (
    ReportOptions,
    accuracy_section,
    agreement_section,
    ratings_report,
)

SCALE = ("benign", "uncertain", "neoplastic")


def synthetic_table(n_readers: int, n_cases: int, seed: int = 0) -> RatingsTable:
    rng = np.random.default_rng(seed)
    truth = rng.random(n_cases) < 0.35
    truth_code = np.where(truth, 2, 0)
    right = rng.random((n_readers, n_cases)) < 0.8
    codes = np.where(right, truth_code, rng.integers(0, 3, size=(n_readers, n_cases))).astype(np.int64)
    codes[rng.random((n_readers, n_cases)) < 0.05] = -1
    patients = tuple(f"p{index}" for index in rng.integers(0, 500, size=n_cases))
    return RatingsTable(
        items=tuple(str(i) for i in range(n_cases)),
        raters=(*tuple(f"reader{j}" for j in range(n_readers - 1)), "ai"),
        categories=SCALE,
        codes=codes,
        level="ordinal",
        categories_declared=True,
        references=tuple(SCALE[2] if t else SCALE[0] for t in truth),
        patients=patients,
    )


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    arguments = parser.parse_args()
    table = synthetic_table(arguments.readers, arguments.cases)
    plain = ReportOptions(weights="quadratic", positive="neoplastic", ai_rater="ai")
    with_bootstrap = ReportOptions(
        weights="quadratic", positive="neoplastic", ai_rater="ai", bootstrap=arguments.bootstrap, seed=1
    )
    rows = [
        (
            "agreement (percent, Cohen/weighted pairwise 190 pairs, Fleiss + per category, alpha x2, PABAK, "
            "readers vs AI)",
            best_of(3, lambda: agreement_section(table, plain)),
        ),
        (
            "accuracy (sens/spec/acc/PPV/NPV Wilson, F1, DeLong AUC, per patient; each reader, "
            "paired DeLong vs AI)",
            best_of(3, lambda: accuracy_section(table, plain)),
        ),
        (
            f"full report with patient bootstrap, {arguments.bootstrap} resamples (agreement + accuracy CIs)",
            best_of(1, lambda: ratings_report(table, with_bootstrap)),
        ),
    ]
    from bench.results import Result, write_results

    size = f"{arguments.readers} readers x {arguments.cases:,} cases"
    write_results(
        arguments.json,
        [
            Result(key="stats-agreement", workload=f"agreement statistics, {size}", value=rows[0][1],
                   unit="s", goal="< 1"),
            Result(key="stats-accuracy", workload=f"accuracy statistics with DeLong AUC, {size}",
                   value=rows[1][1], unit="s", goal="< 1"),
        ],
    )  # fmt: skip
    print(f"| {size} | seconds |")
    print("|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
