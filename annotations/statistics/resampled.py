"""Agreement and accuracy statistics evaluated for many bootstrap resamples at once.

A resample is a row of item multiplicities ``W[b, i]`` (how often item ``i`` is drawn in resample
``b``; see :mod:`annotations.statistics.bootstrap`). Every statistic here is a ratio of sums over
items, so a whole block of resamples is a few matrix products instead of a Python loop: this is what
keeps a 1,000-resample patient bootstrap of 20 readers x 10,000 items to seconds. Each function is
the same estimator as its single-sample counterpart in :mod:`annotations.statistics.agreement`
(tests compare them on resamples with repeated items).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from annotations.statistics.agreement import WeightKind, WeightLevels, agreement_weights
from annotations.statistics.ratings import MeasurementLevel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# Up to this many table cells a contingency table is a product with one-hot cells (else reduceat).
_MAX_ONE_HOT_CELLS = 64


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0 (the statistic is undefined there)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)


def ratio_batch(numerator: FloatArray, denominator: FloatArray, resamples: FloatArray) -> FloatArray:
    """(W . numerator) / (W . denominator) per resample: sensitivity, specificity, accuracy, F1.

    numerator and denominator are items x measures (or one measure per item as a vector)."""
    return _divide(resamples @ numerator, resamples @ denominator)


def percent_agreement_batch(counts: FloatArray, resamples: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Percent agreement (mean over items, pairable values) per resample, from items x categories counts."""
    raters = counts.sum(axis=1)
    pairable = raters >= 2
    pairs = np.where(pairable, raters * (raters - 1), 1.0)
    agreeing = (counts * (counts - 1)).sum(axis=1)
    columns = np.column_stack(
        [
            pairable.astype(np.float64),
            np.where(pairable, agreeing / pairs, 0.0),
            np.where(pairable, agreeing / np.where(pairable, raters - 1, 1.0), 0.0),
            np.where(pairable, raters, 0.0),
        ]
    )
    sums = resamples @ columns
    return _divide(sums[:, 1], sums[:, 0]), _divide(sums[:, 2], sums[:, 3])


def fleiss_kappa_batch(counts: FloatArray, resamples: FloatArray) -> FloatArray:
    """Gwet's Fleiss-type kappa (unweighted, missing ratings allowed) per resample."""
    raters = counts.sum(axis=1)
    pairable = raters >= 2
    rated = raters >= 1
    agreeing = (counts * (counts - 1)).sum(axis=1)
    pa_items = np.where(pairable, agreeing / np.where(pairable, raters * (raters - 1), 1.0), 0.0)
    shares = np.where(rated[:, None], counts / np.where(rated, raters, 1.0)[:, None], 0.0)
    sums = resamples @ np.column_stack([pairable, pa_items, rated, shares]).astype(np.float64)
    pa = _divide(sums[:, 1], sums[:, 0])
    prevalence = sums[:, 3:] / np.where(sums[:, 2] > 0, sums[:, 2], 1.0)[:, None]
    pe = (prevalence**2).sum(axis=1)
    return np.where(1.0 - pe > 1e-12, (pa - pe) / np.where(1.0 - pe > 1e-12, 1.0 - pe, 1.0), np.nan)


def _coincidence_contributions(counts: FloatArray) -> sparse.csr_matrix:
    """items x (k*k) sparse: each pairable item's share of the coincidence matrix.

    An item with m ratings adds (n_c n_k - [c == k] n_c) / (m - 1) to cell (c, k). Only the categories
    an item was rated in take part, so an item has at most (raters)^2 entries whatever the scale's size.
    """
    n_items, k = counts.shape
    raters = counts.sum(axis=1)
    scale = np.where(raters >= 2, 1.0 / np.where(raters >= 2, raters - 1, 1.0), 0.0)
    rows, categories = np.nonzero(counts * (raters >= 2)[:, None])
    if rows.size == 0:
        return sparse.csr_matrix((n_items, k * k))
    width = np.bincount(rows, minlength=n_items)
    slot = np.arange(rows.size) - (np.cumsum(width) - width)[rows]
    padded_category = np.full((n_items, int(width.max())), -1)
    padded_category[rows, slot] = categories
    padded_count = np.zeros(padded_category.shape)
    padded_count[rows, slot] = counts[rows, categories]
    products = padded_count[:, :, None] * padded_count[:, None, :]
    diagonal = np.arange(padded_category.shape[1])
    products[:, diagonal, diagonal] -= padded_count
    products *= scale[:, None, None]
    first, second = padded_category[:, :, None], padded_category[:, None, :]
    valid = (first >= 0) & (second >= 0)
    items = np.broadcast_to(np.arange(n_items)[:, None, None], valid.shape)[valid]
    cells = (first * k + second)[valid]
    return sparse.csr_matrix((products[valid], (items, cells)), shape=(n_items, k * k))


def krippendorff_alpha_batch(
    counts: FloatArray, level: MeasurementLevel, values: FloatArray, resamples: FloatArray
) -> FloatArray:
    """Krippendorff's alpha per resample (alpha = 1 - D_o / D_e from the coincidence matrix)."""
    k = counts.shape[1]
    coincidences = np.asarray((_coincidence_contributions(counts).T @ resamples.T).T).reshape(-1, k, k)
    marginals = coincidences.sum(axis=2)
    total = marginals.sum(axis=1)
    if level == "ordinal":
        cumulative = np.concatenate([np.zeros((len(total), 1)), np.cumsum(marginals, axis=1)], axis=1)
        low = np.minimum.outer(np.arange(k), np.arange(k))
        high = np.maximum.outer(np.arange(k), np.arange(k))
        between = cumulative[:, high + 1] - cumulative[:, low]
        delta = (between - (marginals[:, :, None] + marginals[:, None, :]) / 2) ** 2
    else:
        if level == "nominal":
            fixed = 1.0 - np.eye(k)
        elif level == "interval":
            fixed = (values[:, None] - values[None, :]) ** 2
        else:
            sums = values[:, None] + values[None, :]
            fixed = np.where(
                sums == 0, 0.0, (values[:, None] - values[None, :]) / np.where(sums == 0, 1, sums)
            )
            fixed = fixed**2
        delta = np.broadcast_to(fixed, coincidences.shape)
    expected = np.einsum("bi,bij,bj->b", marginals, delta, marginals) / np.where(
        total > 1, total * (total - 1), 1.0
    )
    observed = (coincidences * delta).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)
    valid = (total > 1) & (expected > 0)
    return np.where(valid, 1.0 - observed / np.where(valid, expected, 1.0), np.nan)


def contingency_tables_batch(
    codes_a: IntArray, codes_b: IntArray, n_categories: int, resamples: FloatArray
) -> FloatArray:
    """resamples x k x k contingency tables of the items both raters rated."""
    both = np.flatnonzero((codes_a >= 0) & (codes_b >= 0))
    tables = np.zeros((resamples.shape[0], n_categories * n_categories))
    if both.size == 0:
        return tables.reshape(-1, n_categories, n_categories)
    cells = codes_a[both] * n_categories + codes_b[both]
    if n_categories * n_categories <= _MAX_ONE_HOT_CELLS:
        # Small scales: one matrix product with the items' one-hot cells, no copy of the resamples.
        one_hot = np.zeros((codes_a.size, n_categories * n_categories))
        one_hot[both, cells] = 1.0
        return (resamples @ one_hot).reshape(-1, n_categories, n_categories)
    order = np.argsort(cells, kind="stable")
    sorted_cells = cells[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    tables[:, sorted_cells[starts]] = np.add.reduceat(resamples[:, both[order]], starts, axis=1)
    return tables.reshape(-1, n_categories, n_categories)


def kappa_batch(
    codes_a: IntArray,
    codes_b: IntArray,
    n_categories: int,
    resamples: FloatArray,
    *,
    weights: WeightKind = "unweighted",
    weight_levels: WeightLevels = "declared",
) -> FloatArray:
    """Cohen's (weighted) kappa per resample, weights over the declared or the observed levels."""
    tables = contingency_tables_batch(codes_a, codes_b, n_categories, resamples)
    total = tables.sum(axis=(1, 2))
    proportions = tables / np.where(total > 0, total, 1.0)[:, None, None]
    rows, columns = proportions.sum(axis=2), proportions.sum(axis=1)
    if weights == "unweighted" or weight_levels == "declared":
        weight_matrix = np.broadcast_to(agreement_weights(weights, n_categories), tables.shape)
        enough_levels = np.ones(len(total), dtype=bool)
    else:
        used = (rows + columns) > 0
        positions = np.cumsum(used, axis=1) - 1.0
        span = used.sum(axis=1) - 1.0
        enough_levels = span >= 1
        distance = (
            np.abs(positions[:, :, None] - positions[:, None, :])
            / np.where(enough_levels, span, 1.0)[:, None, None]
        )
        weight_matrix = 1.0 - (distance if weights == "linear" else distance**2)
    observed = (weight_matrix * proportions).sum(axis=(1, 2))
    expected = np.einsum("bi,bij,bj->b", rows, weight_matrix, columns)
    valid = (total > 0) & enough_levels & (1.0 - expected > 1e-12)
    return np.where(valid, (observed - expected) / np.where(valid, 1.0 - expected, 1.0), np.nan)
