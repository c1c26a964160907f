"""MRMC comparison of two modalities for 10 readers x 1,000 cases: wall time per analysis.

    .venv/bin/python bench/mrmc_bench.py [--readers 10] [--cases 1000] [--repeats 5]

Synthetic study from a binormal model with reader, case and reader x case effects (as in the
Roe & Metz 1997 simulation model): 40 % of cases are positive, ratings are continuous (the worst
case for ranking: almost no ties) and modality 2 ("with AI") separates the classes slightly better.
Each analysis runs on a prebuilt :class:`studies.mrmc.MrmcData`; one row times building that from
long-form records as the management command does. Goal: under 1 s each on the project's 2-core
machine. Prints a markdown table (best of ``--repeats`` runs, so background load counts least).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studies.mrmc import MrmcData, mrmc_compare

GOAL_SECONDS = 1.0


def synthetic_records(n_readers: int, n_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n_cases) < 0.4
    case_effect = rng.normal(0.0, 0.7, n_cases)
    records: list[dict[str, Any]] = []
    for modality, separation in (("without_ai", 1.4), ("with_ai", 1.7)):
        for reader in range(n_readers):
            reader_shift = rng.normal(0.0, 0.3)
            latent = separation * truth + case_effect + reader_shift + rng.normal(0.0, 0.8, n_cases)
            ratings = 1.0 / (1.0 + np.exp(-latent))
            records.extend(
                {
                    "reader": f"reader-{reader + 1}",
                    "modality": modality,
                    "case": f"case-{case + 1}",
                    "truth": int(truth[case]),
                    "rating": float(ratings[case]),
                }
                for case in range(n_cases)
            )
    return records


def best_time(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    arguments = parser.parse_args()

    records = synthetic_records(arguments.readers, arguments.cases)
    study = MrmcData.from_records(records)
    analyses: list[tuple[str, Callable[[], object]]] = [
        ("build MrmcData from long-form records", lambda: MrmcData.from_records(records)),
        ("OR, jackknife covariance, empirical AUC", lambda: mrmc_compare(study, covariance="jackknife")),
        ("OR, DeLong covariance, empirical AUC", lambda: mrmc_compare(study, covariance="delong")),
        (
            "OR, unbiased (Gallas 2007) covariance, empirical AUC",
            lambda: mrmc_compare(study, covariance="unbiased"),
        ),
        ("DBM, jackknife pseudovalues, empirical AUC", lambda: mrmc_compare(study, method="dbm")),
        (
            "OR, jackknife, sensitivity (rating >= 0.5)",
            lambda: mrmc_compare(study, figure_of_merit="sensitivity", threshold=0.5),
        ),
        (
            "DBM, jackknife, specificity (rating >= 0.5)",
            lambda: mrmc_compare(study, method="dbm", figure_of_merit="specificity", threshold=0.5),
        ),
        ("end to end: records -> OR jackknife AUC", lambda: mrmc_compare(records)),
    ]
    result = mrmc_compare(study)
    print(
        f"{arguments.readers} readers x {arguments.cases} cases x 2 modalities "
        f"({len(records)} readings, {study.n_positive} positive); best of {arguments.repeats} runs"
    )
    print(
        f"check: effect {result.effect_label} = {result.effect:.4f}, RRRC F(1, {result.rrrc.df2:.2f}) = "
        f"{result.rrrc.statistic:.2f}, p = {result.rrrc.p_value:.3g}"
    )
    print()
    print("| analysis | seconds | goal | met |")
    print("|---|---|---|---|")
    timed: dict[str, float] = {}
    for name, work in analyses:
        seconds = timed[name] = best_time(work, arguments.repeats)
        print(
            f"| {name} | {seconds:.4f} | < {GOAL_SECONDS:g} s | {'yes' if seconds < GOAL_SECONDS else 'NO'} |"
        )

    from bench.results import Result, write_results

    size = f"{arguments.readers} readers x {arguments.cases} cases x 2 modalities"
    write_results(
        arguments.json,
        [
            Result(key="mrmc-or-auc", workload=f"MRMC Obuchowski-Rockette AUC (jackknife), {size}",
                   value=timed["OR, jackknife covariance, empirical AUC"], unit="s", goal="< 1"),
            Result(key="mrmc-slowest", workload=f"MRMC, slowest analysis of {len(analyses)}, {size}",
                   value=max(timed.values()), unit="s", goal="< 1"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
