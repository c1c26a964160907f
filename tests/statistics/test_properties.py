"""Property tests: invariances every agreement statistic must have, on random ratings (hypothesis)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from annotations.statistics import (
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_kappa_matrix,
    percent_agreement,
    ratings_table_from_matrix,
)
from annotations.statistics.ratings import MISSING, RatingsTable
from annotations.statistics.resampled import krippendorff_alpha_batch

SCALE = ["a", "b", "c", "d"]


@st.composite
def ratings_matrices(
    draw: st.DrawFn, *, allow_missing: bool = True, min_raters: int = 2
) -> list[list[str | None]]:
    n_raters = draw(st.integers(min_raters, 5))
    n_items = draw(st.integers(3, 25))
    value = st.sampled_from(SCALE)
    cell = st.one_of(st.none(), value) if allow_missing else value
    return [[draw(cell) for _ in range(n_items)] for _ in range(n_raters)]


def _table(
    matrix: list[list[str | None]], categories: list[str] = SCALE, level: str = "nominal"
) -> RatingsTable:
    return ratings_table_from_matrix(matrix, categories=categories, level=level)  # type: ignore[arg-type]


def _same(first: float, second: float) -> bool:
    return (math.isnan(first) and math.isnan(second)) or abs(first - second) < 1e-9


@given(st.lists(st.sampled_from(SCALE), min_size=3, max_size=30), st.integers(2, 6))
def test_perfect_agreement_gives_one(values: list[str], n_raters: int) -> None:
    table = _table([list(values) for _ in range(n_raters)])
    assert percent_agreement(table).mean_over_items == 1.0
    if len(set(values)) >= 2:
        assert fleiss_kappa(table).kappa == pytest.approx(1.0)
        assert krippendorff_alpha(table, "nominal").alpha == pytest.approx(1.0)
        assert cohen_kappa(table.with_raters(table.raters[:2])).kappa == pytest.approx(1.0)
    else:
        assert math.isnan(fleiss_kappa(table).kappa)
        assert fleiss_kappa(table).reason


@settings(max_examples=60)
@given(ratings_matrices(), st.permutations(SCALE))
def test_relabelling_categories_changes_nothing_for_nominal(
    matrix: list[list[str | None]], relabelled: list[str]
) -> None:
    mapping = dict(zip(SCALE, relabelled, strict=True))
    renamed = [[None if v is None else mapping[v] for v in row] for row in matrix]
    original, permuted = _table(matrix), _table(renamed, categories=relabelled)
    assert _same(fleiss_kappa(original).kappa, fleiss_kappa(permuted).kappa)
    assert _same(krippendorff_alpha(original).alpha, krippendorff_alpha(permuted).alpha)
    assert _same(percent_agreement(original).pairable_values, percent_agreement(permuted).pairable_values)
    first, second = original.with_raters(original.raters[:2]), permuted.with_raters(permuted.raters[:2])
    assert _same(cohen_kappa(first).kappa, cohen_kappa(second).kappa)


@settings(max_examples=60)
@given(ratings_matrices(), st.randoms(use_true_random=False))
def test_rater_order_does_not_matter(matrix: list[list[str | None]], random: object) -> None:
    order = list(range(len(matrix)))
    random.shuffle(order)  # type: ignore[attr-defined]
    original, shuffled = _table(matrix), _table([matrix[i] for i in order])
    assert _same(fleiss_kappa(original).kappa, fleiss_kappa(shuffled).kappa)
    assert _same(fleiss_kappa(original).se, fleiss_kappa(shuffled).se)
    assert _same(krippendorff_alpha(original).alpha, krippendorff_alpha(shuffled).alpha)
    assert _same(pairwise_kappa_matrix(original).mean_kappa, pairwise_kappa_matrix(shuffled).mean_kappa)
    swapped = original.with_raters(list(reversed(original.raters[:2])))
    assert _same(cohen_kappa(original.with_raters(original.raters[:2])).kappa, cohen_kappa(swapped).kappa)


@settings(max_examples=60)
@given(ratings_matrices())
def test_an_item_nobody_rated_changes_nothing(matrix: list[list[str | None]]) -> None:
    """Missing ratings: an extra item without any rating must not move any statistic."""
    padded = [[*row, None] for row in matrix]
    original, with_empty_item = _table(matrix), _table(padded)
    assert _same(fleiss_kappa(original).kappa, fleiss_kappa(with_empty_item).kappa)
    assert _same(krippendorff_alpha(original).alpha, krippendorff_alpha(with_empty_item).alpha)
    assert _same(
        percent_agreement(original).mean_over_items, percent_agreement(with_empty_item).mean_over_items
    )


@settings(max_examples=60)
@given(ratings_matrices(), st.sampled_from(["nominal", "ordinal", "interval", "ratio"]))
def test_the_bootstrap_alpha_equals_the_krippendorff_package(
    matrix: list[list[str | None]], level: str
) -> None:
    numeric_scale = ["1", "2", "3", "4"]
    numeric = [[None if v is None else str(SCALE.index(v) + 1) for v in row] for row in matrix]
    table = _table(numeric, categories=numeric_scale, level=level)
    package = krippendorff_alpha(table).alpha
    values = table.numeric_categories() if level in ("interval", "ratio") else np.arange(4.0)
    counts = table.category_counts()
    with np.errstate(divide="ignore", invalid="ignore"):
        own = float(krippendorff_alpha_batch(counts, level, values, np.ones((1, table.n_items)))[0])  # type: ignore[arg-type]
    assert _same(round(package, 9), round(own, 9)) or (math.isnan(package) and math.isnan(own))


@settings(max_examples=60)
@given(ratings_matrices(allow_missing=False))
def test_fleiss_kappa_with_complete_data_equals_statsmodels(matrix: list[list[str | None]]) -> None:
    table = _table(matrix)
    ours = fleiss_kappa(table).kappa
    with np.errstate(divide="ignore", invalid="ignore"):
        reference = float(statsmodels_fleiss_kappa(table.category_counts(), method="fleiss"))
    assert _same(ours, reference) or (math.isnan(ours) and not math.isfinite(reference))


def test_missing_ratings_are_left_out_not_counted_as_a_category() -> None:
    table = _table([["a", "b", None, "a"], ["a", "b", "c", None]])
    assert int((table.codes == MISSING).sum()) == 2
    result = cohen_kappa(table)
    assert result.n_items == 2
    assert result.kappa == pytest.approx(1.0)


def test_fleiss_1971_diagnoses_per_category_kappas() -> None:
    """Fleiss (1971) psychiatric diagnoses, 30 subjects x 6 raters (statsmodels' copy of the data):
    kappa 0.430 and per-category 0.245, 0.245, 0.520, 0.471, 0.566 as published by Fleiss (1971).
    (The z values are not checked here: no reference printout of them is in ../shared/stats.)"""
    tests_folder = Path(sys.modules["statsmodels"].__file__ or "").parent / "stats" / "tests"
    sys.path.insert(0, str(tests_folder))
    try:
        from test_inter_rater import diagnoses
    finally:
        sys.path.remove(str(tests_folder))
    result = fleiss_kappa(ratings_table_from_matrix(np.asarray(diagnoses).T.tolist()))
    assert result.complete
    assert result.kappa == pytest.approx(0.430, abs=5e-4)
    assert result.z > 0
    kappas = [c.kappa for c in result.per_category]
    assert kappas == pytest.approx([0.245, 0.245, 0.520, 0.471, 0.566], abs=5e-4)
