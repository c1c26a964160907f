"""Empirical ROC area, DeLong standard errors and tests, and bootstrap confidence intervals.

Pure numpy/scipy (no Django) so that the reader-study analysis (``studies.mrmc``), the management
command and the API share one implementation.

Conventions
-----------
* ``truth`` is 1 (or ``True``) for a case that has the condition (positive, "abnormal") and 0 for a
  case that does not. A higher score means "more likely positive" (pROC's ``direction = "<"``).
* The AUC is the empirical (trapezoidal) area, i.e. the Mann-Whitney U statistic divided by
  ``m * n``: the probability that a random positive scores above a random negative, ties counting
  one half (Hanley & McNeil 1982). No direction is guessed from the data: an AUC under 0.5 is
  reported as such, never flipped, because flipping would bias any comparison.
* Variances follow DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more
  correlated receiver operating characteristic curves: a nonparametric approach", Biometrics 44,
  837-845, computed with the midrank algorithm of Sun & Xu (2014), "Fast implementation of DeLong's
  algorithm for comparing the areas under correlated receiver operating characteristic curves",
  IEEE Signal Processing Letters 21, 1389-1393. The placement-value covariances use the unbiased
  ``1 / (count - 1)`` divisor, as DeLong (1988) and pROC do, so the numbers match pROC's
  ``ci.auc(method = "delong")`` and ``roc.test(method = "delong")``.

Bad input (lengths that differ, NaN or infinite scores, truth values other than 0/1, no positive or
no negative case) raises :class:`RocInputError`, a :class:`ValueError` with a message that names
the problem. Nothing here returns a silently wrong number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "AucResult",
    "PairedDelong",
    "RocInputError",
    "auc",
    "auc_bootstrap_ci",
    "auc_delong",
    "delong_covariance",
    "delong_paired_test",
    "placement_values",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Bootstrap replicates are evaluated in blocks so that memory stays bounded (block x cases floats).
_BOOTSTRAP_BLOCK_ELEMENTS = 4_000_000


class RocInputError(ValueError):
    """The truth labels or scores cannot give an ROC analysis; the message says why."""


@dataclass(frozen=True)
class AucResult:
    """Empirical AUC with its standard error and a Wald confidence interval.

    ``method`` names how ``se`` was obtained (``"delong"``). The interval is
    ``auc +/- z_(1 - alpha/2) * se`` and is not clipped to [0, 1], exactly as pROC reports it.
    """

    auc: float
    se: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int
    method: str
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedDelong:
    """DeLong (1988) test of two correlated AUCs measured on the same cases.

    ``difference = auc1 - auc2``; ``z = difference / se`` with
    ``se = sqrt(V1 + V2 - 2 C12)``; ``p_value`` is two-sided; the interval is the Wald interval of
    the difference. When the two score vectors give the same placement values (``se == 0``) there is
    no evidence of a difference: ``z`` is 0 and ``p_value`` is 1 if the AUCs are equal, and ``z`` is
    NaN (``reason`` says why) otherwise.
    """

    auc1: float
    auc2: float
    difference: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    level: float = 0.95
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validated_truth(truth: ArrayLike) -> BoolArray:
    """Return ``truth`` as a 1-D boolean array (True = positive) or raise :class:`RocInputError`."""
    array = np.asarray(truth)
    if array.ndim != 1:
        raise RocInputError(f"truth must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise RocInputError("truth is empty: an ROC analysis needs positive and negative cases")
    if array.dtype == np.bool_:
        labels = array
    else:
        try:
            numeric = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise RocInputError("truth must be 0/1 or boolean") from error
        if not np.all(np.isin(numeric, (0.0, 1.0))):
            bad = sorted({str(value) for value in array[~np.isin(numeric, (0.0, 1.0))].tolist()})[:5]
            raise RocInputError(f"truth must be 0/1 or boolean; found other values: {', '.join(bad)}")
        labels = numeric == 1.0
    n_positive = int(labels.sum())
    if n_positive == 0:
        raise RocInputError("no positive case (truth == 1): the AUC is undefined")
    if n_positive == labels.size:
        raise RocInputError("no negative case (truth == 0): the AUC is undefined")
    return labels


def _validated_scores(scores: ArrayLike, n_cases: int, *, two_dimensional: bool) -> FloatArray:
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RocInputError("scores must be numeric") from error
    if two_dimensional:
        if array.ndim == 1:
            array = array[np.newaxis, :]
        if array.ndim != 2:
            raise RocInputError(f"scores must be a (k, n) array, got shape {array.shape}")
    elif array.ndim != 1:
        raise RocInputError(f"scores must be one-dimensional, got shape {array.shape}")
    if array.shape[-1] != n_cases:
        raise RocInputError(f"truth has {n_cases} cases but scores have {array.shape[-1]}")
    if not np.all(np.isfinite(array)):
        raise RocInputError("scores contain NaN or infinite values; remove or impute those cases first")
    return array


def placement_values(truth: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Empirical AUCs and DeLong placement values for one or more score vectors on the same cases.

    Returns ``(aucs, positive_placements, negative_placements)`` with shapes ``(k,)``, ``(k, m)``
    and ``(k, n)`` for ``m`` positives and ``n`` negatives (in their order of appearance).
    ``positive_placements[r, i]`` is the fraction of negatives that positive ``i`` outscores (ties
    one half), DeLong's V10; ``negative_placements[r, j]`` is the fraction of positives that
    outscore negative ``j``, DeLong's V01. Each row's AUC is the mean of either placement vector.

    Computed from midranks as in Sun & Xu (2014): with ``Tz`` the midrank among all cases, ``Tx``
    among positives and ``Ty`` among negatives, ``V10 = (Tz - Tx) / n`` for positives and
    ``V01 = 1 - (Tz - Ty) / m`` for negatives, O(k N log N) with no m x n comparison matrix.
    """
    labels = _validated_truth(truth)
    matrix = _validated_scores(scores, labels.size, two_dimensional=True)
    return _placements(labels, matrix)


def _placements(labels: BoolArray, matrix: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    positives = matrix[:, labels]
    negatives = matrix[:, ~labels]
    n_positive = positives.shape[1]
    n_negative = negatives.shape[1]
    combined = np.concatenate([positives, negatives], axis=1)
    rank_all = stats.rankdata(combined, method="average", axis=1)
    rank_positive = stats.rankdata(positives, method="average", axis=1)
    rank_negative = stats.rankdata(negatives, method="average", axis=1)
    positive_placements = (rank_all[:, :n_positive] - rank_positive) / n_negative
    negative_placements = 1.0 - (rank_all[:, n_positive:] - rank_negative) / n_positive
    aucs = positive_placements.mean(axis=1)
    return aucs, positive_placements, negative_placements


def auc(truth: ArrayLike, scores: ArrayLike) -> float:
    """Empirical AUC (Mann-Whitney U / (m n)); ties between a positive and a negative count 1/2."""
    labels = _validated_truth(truth)
    matrix = _validated_scores(scores, labels.size, two_dimensional=False)[np.newaxis, :]
    aucs, _, _ = _placements(labels, matrix)
    return float(aucs[0])


def delong_covariance(truth: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """AUCs and their DeLong (1988) covariance matrix for ``k`` score vectors on the same cases.

    ``scores`` is a ``(k, n_cases)`` array (a 1-D vector is treated as ``k = 1``). The covariance is
    ``S10 / m + S01 / n`` where ``S10`` and ``S01`` are the sample covariance matrices (divisor
    ``count - 1``) of the positive and negative placement values (DeLong 1988, eq. 4-5). Placement
    values come from the Sun & Xu (2014) midrank algorithm, vectorised over the ``k`` rows.
    """
    labels = _validated_truth(truth)
    matrix = _validated_scores(scores, labels.size, two_dimensional=True)
    aucs, positive_placements, negative_placements = _placements(labels, matrix)
    covariance = _placement_covariance(positive_placements) / positive_placements.shape[1]
    covariance = covariance + _placement_covariance(negative_placements) / negative_placements.shape[1]
    return aucs, covariance


def _placement_covariance(placements: FloatArray) -> FloatArray:
    """Sample covariance across cases (divisor count - 1); zero when there is a single case."""
    count = placements.shape[1]
    if count < 2:
        return np.zeros((placements.shape[0], placements.shape[0]))
    centred = placements - placements.mean(axis=1, keepdims=True)
    return np.asarray((centred @ centred.T) / (count - 1), dtype=np.float64)


def _normal_quantile(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise RocInputError(f"confidence level must lie strictly between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def auc_delong(truth: ArrayLike, scores: ArrayLike, *, level: float = 0.95) -> AucResult:
    """Empirical AUC with DeLong standard error and Wald interval (pROC ``ci.auc(method="delong")``)."""
    quantile = _normal_quantile(level)
    labels = _validated_truth(truth)
    aucs, covariance = delong_covariance(labels, scores)
    area = float(aucs[0])
    se = math.sqrt(max(float(covariance[0, 0]), 0.0))
    return AucResult(
        auc=area,
        se=se,
        ci_low=area - quantile * se,
        ci_high=area + quantile * se,
        n_positive=int(labels.sum()),
        n_negative=int((~labels).sum()),
        method="delong",
        level=level,
    )


def delong_paired_test(
    truth: ArrayLike, scores1: ArrayLike, scores2: ArrayLike, *, level: float = 0.95
) -> PairedDelong:
    """Two-sided DeLong (1988) test that two correlated AUCs (same cases) are equal.

    Matches pROC ``roc.test(roc1, roc2, method = "delong", paired = TRUE)``: ``Z = (A1 - A2) /
    sqrt(V1 + V2 - 2 C12)``, p from the standard normal, and the Wald interval of ``A1 - A2``.
    """
    quantile = _normal_quantile(level)
    labels = _validated_truth(truth)
    first = _validated_scores(scores1, labels.size, two_dimensional=False)
    second = _validated_scores(scores2, labels.size, two_dimensional=False)
    aucs, covariance = delong_covariance(labels, np.vstack([first, second]))
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1])
    se = math.sqrt(max(variance, 0.0))
    reason = ""
    # Rounding can leave a tiny positive variance for identical placements; treat it as zero.
    if se <= 1e-12 * max(1.0, math.sqrt(abs(covariance[0, 0]) + abs(covariance[1, 1]))):
        se = 0.0
        if abs(difference) <= 1e-15:
            z, p_value = 0.0, 1.0
            reason = "the two score vectors give identical placement values: no difference to test"
        else:
            z, p_value = math.nan, math.nan
            reason = "the variance of the AUC difference is zero although the AUCs differ"
    else:
        z = difference / se
        p_value = float(2.0 * stats.norm.sf(abs(z)))
    return PairedDelong(
        auc1=float(aucs[0]),
        auc2=float(aucs[1]),
        difference=difference,
        se=se,
        z=z,
        p_value=p_value,
        ci_low=difference - quantile * se,
        ci_high=difference + quantile * se,
        level=level,
        reason=reason,
    )


def auc_bootstrap_ci(
    truth: ArrayLike,
    scores: ArrayLike,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = 20240501,
    stratified: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the empirical AUC (pROC ``ci.auc(method="bootstrap")``).

    ``stratified=True`` (pROC's default) resamples positives and negatives separately, keeping
    their counts fixed, so every replicate has both classes. ``stratified=False`` resamples all
    cases together; replicates that lack a class have no AUC and are dropped (pROC does the same).
    Quantiles use numpy's default linear interpolation, R's ``quantile(type = 7)``. The default
    seed is fixed so that a report is reproducible; pass ``None`` for fresh randomness.

    The replicates are evaluated without Python loops: per block of replicates the resampled
    scores are ranked row-wise and the AUC is the Mann-Whitney rank-sum formula.
    """
    if n_boot < 1:
        raise RocInputError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise RocInputError(f"confidence level must lie strictly between 0 and 1, got {level}")
    labels = _validated_truth(truth)
    values = _validated_scores(scores, labels.size, two_dimensional=False)
    generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    positive_scores = values[labels]
    negative_scores = values[~labels]
    n_cases = labels.size
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // n_cases)
    replicates: list[FloatArray] = []
    remaining = n_boot
    while remaining > 0:
        size = min(block, remaining)
        remaining -= size
        if stratified:
            n_pos, n_neg = positive_scores.size, negative_scores.size
            positives = positive_scores[generator.integers(0, n_pos, (size, n_pos))]
            negatives = negative_scores[generator.integers(0, n_neg, (size, n_neg))]
            replicates.append(_rank_sum_auc(positives, negatives))
        else:
            chosen = generator.integers(0, n_cases, (size, n_cases))
            replicates.append(_unstratified_auc(values[chosen], labels[chosen]))
    areas = np.concatenate(replicates)
    areas = areas[np.isfinite(areas)]
    if areas.size == 0:
        raise RocInputError("no bootstrap replicate contained both positive and negative cases")
    alpha = 1.0 - level
    low, high = np.quantile(areas, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _rank_sum_auc(positives: FloatArray, negatives: FloatArray) -> FloatArray:
    """Row-wise empirical AUC from a block of (replicates, m) positive and (replicates, n) negative scores."""
    n_positive = positives.shape[1]
    n_negative = negatives.shape[1]
    ranks = stats.rankdata(np.concatenate([positives, negatives], axis=1), method="average", axis=1)
    rank_sum = ranks[:, :n_positive].sum(axis=1)
    return np.asarray((rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def _unstratified_auc(values: FloatArray, labels: BoolArray) -> FloatArray:
    """Row-wise AUC when the class sizes vary between replicates; NaN where a class is absent."""
    ranks = stats.rankdata(values, method="average", axis=1)
    n_positive = labels.sum(axis=1).astype(np.float64)
    n_negative = labels.shape[1] - n_positive
    rank_sum = np.where(labels, ranks, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        areas = (rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative)
    return np.asarray(np.where((n_positive > 0) & (n_negative > 0), areas, np.nan))
