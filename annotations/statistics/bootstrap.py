"""Cluster (patient) bootstrap: resample patients with replacement, never single frames.

Frames of one patient are correlated, so resampling frames understates the variance. Each resample
draws as many patients as there are, with replacement, and every frame of a drawn patient enters the
statistic as often as its patient was drawn. Statistics therefore take a block of resamples as
item multiplicities (resamples x items; see :mod:`annotations.statistics.resampled`) instead of
copied data, which keeps 1,000 resamples of 10,000 items cheap. Intervals are percentile
intervals; resamples where the statistic is undefined (NaN, e.g. a resample with a single category)
are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from annotations.statistics.ratings import StatisticsInputError
from annotations.statistics.results import JsonResult

# A statistic of a block of resamples: (resamples x items) multiplicities -> one value per resample.
ResampledStatistic = Callable[[NDArray[np.float64]], NDArray[np.float64]]
# Resamples drawn and evaluated together; bounds memory to about BLOCK x items floats.
BLOCK = 250


@dataclass(frozen=True)
class BootstrapInterval(JsonResult):
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    n_resamples: int
    n_valid: int
    n_clusters: int
    level: float
    seed: int | None
    method: str = "percentile interval, patients (clusters) resampled with replacement"
    reason: str = ""


def cluster_labels(clusters: Sequence[object] | None, n_items: int) -> NDArray[np.intp]:
    """The cluster index of every item; without clusters every item is its own cluster."""
    if clusters is None:
        return np.arange(n_items)
    if len(clusters) != n_items:
        raise StatisticsInputError(f"{len(clusters)} cluster labels for {n_items} items.")
    _, cluster_of_item = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    return cluster_of_item.astype(np.intp)


def cluster_item_weights(
    clusters: Sequence[object] | None, n_items: int, n_resamples: int, seed: int | None
) -> tuple[NDArray[np.float64], int]:
    """n_resamples x n_items multiplicities of a patient bootstrap, and the number of patients.

    Without clusters every item is its own cluster (an ordinary bootstrap).
    """
    blocks = list(_resample_blocks(cluster_labels(clusters, n_items), n_resamples, seed, block=n_resamples))
    return blocks[0][0], blocks[0][1]


def _resample_blocks(
    cluster_of_item: NDArray[np.intp], n_resamples: int, seed: int | None, *, block: int = BLOCK
) -> Iterator[tuple[NDArray[np.float64], int]]:
    """Blocks of resamples (multiplicities per item) from one seeded generator, in order."""
    if n_resamples < 1:
        raise StatisticsInputError("The number of bootstrap resamples must be at least 1.")
    n_clusters = int(cluster_of_item.max()) + 1 if cluster_of_item.size else 0
    if n_clusters < 2:
        raise StatisticsInputError("A cluster bootstrap needs at least 2 patients (clusters).")
    generator = np.random.default_rng(seed)
    probabilities = np.full(n_clusters, 1.0 / n_clusters)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        draws = generator.multinomial(n_clusters, probabilities, size=size)
        yield draws[:, cluster_of_item].astype(np.float64), n_clusters


def percentile_interval(
    estimate: float,
    replicates: NDArray[np.float64],
    *,
    level: float,
    n_clusters: int,
    seed: int | None,
) -> BootstrapInterval:
    valid = replicates[np.isfinite(replicates)]
    n_resamples = int(replicates.size)
    if valid.size < 2:
        return BootstrapInterval(
            estimate, math.nan, math.nan, math.nan, n_resamples, int(valid.size), n_clusters, level, seed,
            reason="The statistic is undefined in (almost) every resample.",
        )  # fmt: skip
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    reason = "" if valid.size == n_resamples else f"{n_resamples - valid.size} resamples left out: undefined."
    return BootstrapInterval(
        estimate=estimate,
        ci_low=float(low),
        ci_high=float(high),
        se=float(valid.std(ddof=1)),
        n_resamples=n_resamples,
        n_valid=int(valid.size),
        n_clusters=n_clusters,
        level=level,
        seed=seed,
        reason=reason,
    )


def cluster_bootstrap(
    statistics: Mapping[str | tuple[str, ...], ResampledStatistic],
    *,
    clusters: Sequence[object] | None,
    n_items: int,
    n_resamples: int,
    seed: int | None,
    level: float = 0.95,
) -> dict[str, BootstrapInterval]:
    """Percentile CIs of several statistics over the same patient resamples.

    A key that is a tuple of names is a group: its function returns resamples x len(names) values in
    one go (ratios that share one matrix product), each column reported under its name.
    """
    if not 0.0 < level < 1.0:
        raise StatisticsInputError(f"The confidence level must be between 0 and 1, not {level}.")
    if n_resamples < 1:
        raise StatisticsInputError("The number of bootstrap resamples must be at least 1.")
    cluster_of_item = cluster_labels(clusters, n_items)
    groups = [((key,) if isinstance(key, str) else key, statistic) for key, statistic in statistics.items()]
    replicates: dict[str, list[NDArray[np.float64]]] = {name: [] for names, _ in groups for name in names}
    estimates: dict[str, float] = {}
    n_clusters = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for names, statistic in groups:
            values = np.asarray(statistic(np.ones((1, n_items))), dtype=np.float64).reshape(1, len(names))
            estimates.update({name: float(values[0, column]) for column, name in enumerate(names)})
        for block, n_clusters in _resample_blocks(cluster_of_item, n_resamples, seed):  # noqa: B007
            for names, statistic in groups:
                values = np.asarray(statistic(block), dtype=np.float64).reshape(len(block), len(names))
                for column, name in enumerate(names):
                    replicates[name].append(values[:, column])
    return {
        name: percentile_interval(
            estimates[name], np.concatenate(replicates[name]), level=level, n_clusters=n_clusters, seed=seed
        )
        for name in replicates
    }
