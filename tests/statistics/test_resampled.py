"""The bootstrap's batched statistics equal the single-sample ones on resamples with repeated items."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.statistics import cohen_kappa, krippendorff_alpha, percent_agreement
from annotations.statistics.agreement import WeightKind, WeightLevels, fleiss_point, kappa_point
from annotations.statistics.bootstrap import ResampledStatistic, cluster_bootstrap
from annotations.statistics.ratings import RatingsTable
from annotations.statistics.resampled import (
    fleiss_kappa_batch,
    kappa_batch,
    krippendorff_alpha_batch,
    percent_agreement_batch,
)

SCALE = ("1", "2", "3", "4")


def _repeated(table: RatingsTable, multiplicity: np.ndarray) -> RatingsTable:
    """The table with item i repeated multiplicity[i] times: what a resample with those weights means."""
    index = np.repeat(np.arange(table.n_items), multiplicity.astype(int))
    return RatingsTable(
        items=tuple(str(i) for i in range(index.size)),
        raters=table.raters,
        categories=table.categories,
        codes=table.codes[:, index],
        level=table.level,
        categories_declared=True,
    )


def _close(first: float, second: float) -> bool:
    return (math.isnan(first) and math.isnan(second)) or abs(first - second) < 1e-9


@st.composite
def tables_and_resamples(draw: st.DrawFn) -> tuple[RatingsTable, np.ndarray]:
    n_raters = draw(st.integers(2, 4))
    n_items = draw(st.integers(3, 15))
    codes = np.array(
        [[draw(st.integers(-1, 3)) for _ in range(n_items)] for _ in range(n_raters)], dtype=np.int64
    )
    table = RatingsTable(
        items=tuple(str(i) for i in range(n_items)),
        raters=tuple(f"r{j}" for j in range(n_raters)),
        categories=SCALE,
        codes=codes,
        level=draw(st.sampled_from(["nominal", "ordinal", "interval", "ratio"])),
        categories_declared=True,
    )
    resamples = np.array(
        [[draw(st.integers(0, 3)) for _ in range(n_items)] for _ in range(draw(st.integers(1, 4)))],
        dtype=np.float64,
    )
    return table, resamples


@settings(max_examples=80, deadline=None)
@given(tables_and_resamples(), st.sampled_from(["unweighted", "linear", "quadratic"]))
def test_batched_statistics_equal_the_single_ones_on_repeated_items(
    drawn: tuple[RatingsTable, np.ndarray], weights: WeightKind
) -> None:
    table, resamples = drawn
    counts = table.category_counts()
    values = table.numeric_categories()
    with np.errstate(divide="ignore", invalid="ignore"):
        fleiss = fleiss_kappa_batch(counts, resamples)
        mean_over_items, pairable_values = percent_agreement_batch(counts, resamples)
        alpha = krippendorff_alpha_batch(counts, table.level, values, resamples)
        declared = kappa_batch(table.codes[0], table.codes[1], 4, resamples, weights=weights)
        observed = kappa_batch(
            table.codes[0],
            table.codes[1],
            4,
            resamples,
            weights=weights,
            weight_levels="observed",
        )
    for row, multiplicity in enumerate(resamples):
        if multiplicity.sum() == 0:
            continue
        repeated = _repeated(table, multiplicity)
        if np.any(repeated.codes >= 0):
            # the point estimate (fleiss_kappa itself also wants 2 pairable items for its SE)
            assert _close(fleiss[row], fleiss_point(repeated.category_counts())[0])
            agreement = percent_agreement(repeated)
            assert _close(mean_over_items[row], agreement.mean_over_items)
            assert _close(pairable_values[row], agreement.pairable_values)
            assert _close(alpha[row], krippendorff_alpha(repeated).alpha)
        pair = repeated.with_raters(repeated.raters[:2])
        levels: WeightLevels
        for batched, levels in ((declared, "declared"), (observed, "observed")):
            single = kappa_point(pair.codes[0], pair.codes[1], 4, weights=weights, weight_levels=levels)
            assert _close(batched[row], single)
            full = cohen_kappa(pair, weights=weights, weight_levels=levels)
            if full.n_items >= 2:
                assert _close(batched[row], full.kappa)


def test_cluster_bootstrap_interval_brackets_the_estimate_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    counts = np.zeros((300, 3))
    truth = rng.integers(0, 3, size=300)
    for _ in range(4):  # four raters, each right 70 % of the time
        calls = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 3, size=300))
        counts[np.arange(300), calls] += 1
    patients = [f"p{i // 10}" for i in range(300)]
    statistics: dict[str | tuple[str, ...], ResampledStatistic] = {
        "fleiss": partial(fleiss_kappa_batch, counts)
    }
    first = cluster_bootstrap(statistics, clusters=patients, n_items=300, n_resamples=400, seed=3)["fleiss"]
    again = cluster_bootstrap(statistics, clusters=patients, n_items=300, n_resamples=400, seed=3)["fleiss"]
    assert first == again
    assert first.ci_low < first.estimate < first.ci_high
    assert first.n_clusters == 30 and first.n_valid == 400


def test_large_scales_sum_contingency_tables_by_reduceat_to_the_same_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above the one-hot size limit the contingency tables are summed by reduceat instead."""
    from annotations.statistics import resampled

    rng = np.random.default_rng(9)
    codes = rng.integers(-1, 4, size=(2, 40)).astype(np.int64)
    resamples = rng.integers(0, 3, size=(5, 40)).astype(np.float64)
    one_hot = kappa_batch(codes[0], codes[1], 4, resamples, weights="linear")
    monkeypatch.setattr(resampled, "_MAX_ONE_HOT_CELLS", 0)
    reduced = kappa_batch(codes[0], codes[1], 4, resamples, weights="linear")
    assert np.allclose(one_hot, reduced, equal_nan=True)
    assert not np.all(np.isnan(one_hot))


def test_alpha_on_a_wide_scale_matches_the_package() -> None:
    """A 0-100 confidence scale: sparse coincidences give the package's interval alpha."""
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 101, size=200)
    codes = np.clip(truth + rng.integers(-5, 6, size=(4, 200)), 0, 100).astype(np.int64)
    codes[rng.random(codes.shape) < 0.1] = -1
    table = RatingsTable(
        items=tuple(str(i) for i in range(200)),
        raters=("a", "b", "c", "d"),
        categories=tuple(str(v) for v in range(101)),
        codes=codes,
        level="interval",
        categories_declared=True,
    )
    ones = np.ones((1, 200))
    batched = krippendorff_alpha_batch(table.category_counts(), "interval", table.numeric_categories(), ones)
    assert batched[0] == pytest.approx(krippendorff_alpha(table).alpha, abs=1e-9)
