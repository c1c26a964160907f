"""Inter-rater agreement: percent agreement, Cohen's (weighted) kappa, Fleiss' kappa with missing
ratings (Gwet), Krippendorff's alpha, PABAK, pairwise and reader-vs-AI kappas.

Conventions (they decide published numbers, so they are fixed here and written into every result):

* Percent agreement is given in two definitions, both for any number of raters and missing ratings:
  ``mean_over_items`` is the mean, over items rated by two or more raters, of the share of agreeing
  rater pairs on the item (Fleiss' / Gwet's ``pa``); ``pairable_values`` is the share of agreeing
  pairable values, each item's pairs weighted by 1 / (m_i - 1) as in Krippendorff's coincidence
  matrix (1 - D_o for nominal data; dkpro's PercentageAgreement). For two raters without missing
  ratings both are the plain proportion of items on which the raters agree.
* Cohen's kappa standard error is the large-sample ASE of Fleiss, Cohen & Everitt (1969), via
  ``statsmodels.stats.inter_rater.cohens_kappa``; the interval is kappa +/- z * ASE; z and p test
  kappa = 0 with the ASE under H0 (as SAS PROC FREQ and R irr::kappa2 report).
* Weighted kappa weights are agreement weights over the positions of the categories on the scale:
  linear ``1 - |i - j| / (k - 1)`` (Cicchetti-Allison), quadratic ``1 - (i - j)^2 / (k - 1)^2``
  (Fleiss-Cohen). ``weight_levels="declared"`` (default) uses the declared scale, so an unused level
  still counts as a step; ``"observed"`` uses only the levels either rater used (R irr and
  ``sklearn.metrics.cohen_kappa_score`` do this).
* Fleiss' kappa follows Gwet (2014) for missing ratings: pa over items with two or more ratings,
  category prevalences averaged over all rated items; with complete data it equals Fleiss (1971).
  Its standard error is Gwet's linearisation (irrCAC), with a t interval on n - 1 df whose upper end
  is capped at 1 (kappa cannot exceed 1; irrCAC does the same); the per-category
  kappas and, for complete data, the z tests use the variance under H0 of Fleiss, Nee & Landis (1979).
* Krippendorff's alpha comes from the ``krippendorff`` package, fed with category counts over the
  declared scale so that ordinal alpha follows the declared order.

The patient-cluster bootstrap evaluates the same estimators for blocks of resamples at once
(:mod:`annotations.statistics.resampled`).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import krippendorff
import numpy as np
from numpy.typing import NDArray
from scipy import stats
from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_cohens_kappa

from annotations.statistics.ratings import MeasurementLevel, RatingsTable, StatisticsInputError
from annotations.statistics.results import JsonResult

WeightKind = Literal["unweighted", "linear", "quadratic"]
WEIGHT_KINDS: tuple[str, ...] = ("unweighted", "linear", "quadratic")
WeightLevels = Literal["declared", "observed"]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PERCENT_AGREEMENT_DEFINITION = (
    "mean_over_items: mean over items with >= 2 ratings of (agreeing rater pairs / rater pairs) on the item; "
    "pairable_values: agreeing pairable values / all pairable values, an item with m ratings weighted "
    "1/(m-1) (Krippendorff's coincidences, 1 - D_o nominal)."
)
COHEN_METHOD = (
    "Cohen's kappa; SE = Fleiss-Cohen-Everitt (1969) large-sample ASE, CI = kappa +/- z*ASE; "
    "z = kappa / ASE under H0, p from the standard normal."
)
FLEISS_METHOD = (
    "Fleiss' kappa generalised to missing ratings (Gwet 2014): pa over items with >= 2 ratings, "
    "prevalences over all rated items; SE by Gwet's linearisation, t interval on n-1 df."
)
PABAK_DEFINITION = (
    "PABAK = (k * p_o - 1) / (k - 1), p_o = percent agreement (mean over items), k = categories."
)


def check_weight_kind(raw: str) -> WeightKind:
    if raw not in WEIGHT_KINDS:
        raise StatisticsInputError(f"Unknown weights {raw!r}; use one of {', '.join(WEIGHT_KINDS)}.")
    return raw  # type: ignore[return-value]


def check_weight_levels(raw: str) -> WeightLevels:
    if raw not in ("declared", "observed"):
        raise StatisticsInputError(f"Unknown weight levels {raw!r}; use declared or observed.")
    return raw  # type: ignore[return-value]


def agreement_weights(kind: WeightKind, n_categories: int) -> FloatArray:
    """k x k agreement weights (1 on the diagonal) over category positions 0..k-1."""
    positions = np.arange(n_categories, dtype=np.float64)
    if kind == "unweighted" or n_categories < 2:
        return np.eye(n_categories)
    distance = np.abs(positions[:, None] - positions[None, :]) / (n_categories - 1)
    return 1.0 - (distance if kind == "linear" else distance**2)


def _normal_quantile(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise StatisticsInputError(f"The confidence level must be between 0 and 1, not {level}.")
    return float(stats.norm.ppf(0.5 + level / 2.0))


# --- Percent agreement --------------------------------------------------------------------------


@dataclass(frozen=True)
class PercentAgreement(JsonResult):
    mean_over_items: float
    pairable_values: float
    n_items_pairable: int
    n_pairable_values: int
    definition: str = PERCENT_AGREEMENT_DEFINITION
    reason: str = ""


def percent_agreement_values(counts: FloatArray) -> tuple[float, float]:
    """(mean over items, pairable values) from items x categories counts; NaN when no item is pairable."""
    per_item_raters = counts.sum(axis=1)
    pairable = per_item_raters >= 2
    if not np.any(pairable):
        return math.nan, math.nan
    agreeing_pairs = (counts * (counts - 1)).sum(axis=1)[pairable]
    raters = per_item_raters[pairable]
    mean_over_items = float((agreeing_pairs / (raters * (raters - 1))).mean())
    pairable_values = float((agreeing_pairs / (raters - 1)).sum() / raters.sum())
    return mean_over_items, pairable_values


def percent_agreement(table: RatingsTable) -> PercentAgreement:
    counts = table.category_counts()
    raters = counts.sum(axis=1)
    n_pairable = int((raters >= 2).sum())
    if n_pairable == 0:
        return PercentAgreement(math.nan, math.nan, 0, 0, reason="No item was rated by two or more raters.")
    mean_over_items, pairable_values = percent_agreement_values(counts)
    return PercentAgreement(
        mean_over_items=mean_over_items,
        pairable_values=pairable_values,
        n_items_pairable=n_pairable,
        n_pairable_values=int(raters[raters >= 2].sum()),
    )


# --- Cohen's kappa ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohenKappa(JsonResult):
    rater_a: str
    rater_b: str
    kappa: float
    se: float
    ci_low: float
    ci_high: float
    se_h0: float
    z: float
    p_value: float
    p_value_one_sided: float
    observed_agreement: float
    expected_agreement: float
    n_items: int
    weights: str
    weight_levels: str
    categories_for_weights: tuple[str, ...]
    level: float = 0.95
    method: str = COHEN_METHOD
    reason: str = ""


def contingency_table(codes_a: IntArray, codes_b: IntArray, n_categories: int) -> FloatArray:
    """k x k table of the items both raters rated (rows rater a)."""
    both = (codes_a >= 0) & (codes_b >= 0)
    cells = codes_a[both] * n_categories + codes_b[both]
    flat = np.bincount(cells, minlength=n_categories * n_categories)
    return flat.astype(np.float64).reshape(n_categories, n_categories)


def _reduced_to_observed(table: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    used = (table.sum(axis=0) + table.sum(axis=1)) > 0
    return table[np.ix_(used, used)], used


def kappa_from_table(table: FloatArray, weights: FloatArray) -> tuple[float, float, float]:
    """(kappa, observed, expected agreement) of one k x k table; kappa NaN when expected agreement is 1."""
    total = table.sum()
    if total <= 0:
        return math.nan, math.nan, math.nan
    proportions = table / total
    observed = float((weights * proportions).sum())
    expected = float(proportions.sum(axis=1) @ weights @ proportions.sum(axis=0))
    if 1.0 - expected <= 1e-12:
        return math.nan, observed, expected
    return (observed - expected) / (1.0 - expected), observed, expected


def kappa_point(
    codes_a: IntArray,
    codes_b: IntArray,
    n_categories: int,
    *,
    weights: WeightKind = "unweighted",
    weight_levels: WeightLevels = "declared",
) -> float:
    """Cohen's kappa only (no SE): the fast path for the pairwise matrix."""
    table = contingency_table(codes_a, codes_b, n_categories)
    if weight_levels == "observed":
        table, _ = _reduced_to_observed(table)
    return kappa_from_table(table, agreement_weights(weights, table.shape[0]))[0]


def _nan_cohen(
    rater_a: str, rater_b: str, n_items: int, weights: str, weight_levels: str, level: float, reason: str
) -> CohenKappa:
    nan = math.nan
    return CohenKappa(
        rater_a, rater_b, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, n_items,
        weights, weight_levels, (), level, reason=reason,
    )  # fmt: skip


def cohen_kappa_from_codes(
    codes_a: IntArray,
    codes_b: IntArray,
    categories: Sequence[str],
    *,
    rater_a: str = "a",
    rater_b: str = "b",
    weights: WeightKind = "unweighted",
    weight_levels: WeightLevels = "declared",
    level: float = 0.95,
) -> CohenKappa:
    """Cohen's kappa of two raters over the items both rated, with ASE, CI, z and p (see module doc)."""
    quantile = _normal_quantile(level)
    weights = check_weight_kind(weights)
    weight_levels = check_weight_levels(weight_levels)
    table = contingency_table(codes_a, codes_b, len(categories))
    n_items = int(table.sum())
    if n_items < 2:
        return _nan_cohen(
            rater_a, rater_b, n_items, weights, weight_levels, level,
            f"{rater_a} and {rater_b} rated {n_items} item(s) in common; kappa needs at least 2.",
        )  # fmt: skip
    used_categories = tuple(categories)
    if weight_levels == "observed":
        table, used = _reduced_to_observed(table)
        used_categories = tuple(c for c, keep in zip(categories, used, strict=True) if keep)
    if table.shape[0] < 2:
        return _nan_cohen(
            rater_a, rater_b, n_items, weights, weight_levels, level,
            "Only one category on the scale: agreement beyond chance is undefined.",
        )  # fmt: skip
    kappa, observed, expected = kappa_from_table(table, agreement_weights(weights, table.shape[0]))
    if math.isnan(kappa):
        return _nan_cohen(
            rater_a, rater_b, n_items, weights, weight_levels, level,
            "Both raters put every item in the same category: chance agreement is 1 and kappa undefined.",
        )  # fmt: skip
    wt = None if weights == "unweighted" else weights
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = statsmodels_cohens_kappa(table, wt=wt)
    se = float(result.std_kappa)
    se_h0 = float(result.std_kappa0)
    z = kappa / se_h0 if se_h0 > 0 else math.nan
    reason = "" if se_h0 > 0 else "The variance under H0 is 0, so there is no z test."
    return CohenKappa(
        rater_a=rater_a,
        rater_b=rater_b,
        kappa=float(result.kappa),
        se=se,
        ci_low=kappa - quantile * se,
        ci_high=kappa + quantile * se,
        se_h0=se_h0,
        z=z,
        p_value=float(2 * stats.norm.sf(abs(z))) if not math.isnan(z) else math.nan,
        p_value_one_sided=float(stats.norm.sf(z)) if not math.isnan(z) else math.nan,
        observed_agreement=observed,
        expected_agreement=expected,
        n_items=n_items,
        weights=weights,
        weight_levels=weight_levels,
        categories_for_weights=used_categories,
        level=level,
        reason=reason,
    )


def cohen_kappa(
    table: RatingsTable,
    rater_a: str | None = None,
    rater_b: str | None = None,
    *,
    weights: WeightKind = "unweighted",
    weight_levels: WeightLevels = "declared",
    level: float = 0.95,
) -> CohenKappa:
    """Cohen's kappa of two raters of `table` (the only two if none are named)."""
    if rater_a is None or rater_b is None:
        if table.n_raters != 2:
            raise StatisticsInputError(
                f"Cohen's kappa compares two raters; the ratings have {table.n_raters}: name the two."
            )
        rater_a, rater_b = table.raters
    return cohen_kappa_from_codes(
        table.codes[table.rater_index(rater_a)],
        table.codes[table.rater_index(rater_b)],
        table.categories,
        rater_a=rater_a,
        rater_b=rater_b,
        weights=weights,
        weight_levels=weight_levels,
        level=level,
    )


# --- Fleiss' kappa (Gwet's generalisation to missing ratings) -----------------------------------


@dataclass(frozen=True)
class CategoryKappa(JsonResult):
    category: str
    kappa: float
    se_h0: float
    z: float
    p_value: float
    reason: str = ""


@dataclass(frozen=True)
class FleissKappa(JsonResult):
    kappa: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    observed_agreement: float
    expected_agreement: float
    n_items: int
    n_raters: int
    complete: bool
    z_method: str
    per_category: tuple[CategoryKappa, ...]
    level: float = 0.95
    method: str = FLEISS_METHOD
    reason: str = ""


def fleiss_point(counts: FloatArray, agreement: FloatArray | None = None) -> tuple[float, float, float]:
    """(kappa, pa, pe) of Gwet's Fleiss-type kappa from items x categories counts (agreement weights
    optional, identity by default)."""
    n_categories = counts.shape[1]
    weight_matrix = np.eye(n_categories) if agreement is None else agreement
    raters = counts.sum(axis=1)
    rated = raters >= 1
    pairable = raters >= 2
    if not np.any(pairable):
        return math.nan, math.nan, math.nan
    weighted_counts = counts @ weight_matrix.T
    agreeing = (counts * (weighted_counts - 1)).sum(axis=1)
    pa = float((agreeing[pairable] / (raters[pairable] * (raters[pairable] - 1))).mean())
    prevalence = (counts[rated] / raters[rated, None]).mean(axis=0)
    pe = float(prevalence @ weight_matrix @ prevalence)
    if 1.0 - pe <= 1e-12:
        return math.nan, pa, pe
    return (pa - pe) / (1.0 - pe), pa, pe


def _fleiss_gwet_se(counts: FloatArray, weight_matrix: FloatArray, kappa: float, pe: float) -> float:
    """Gwet's (2014) linearised standard error of the Fleiss-type kappa (irrCAC ``fleiss``)."""
    raters = counts.sum(axis=1)
    keep = raters >= 1
    counts, raters = counts[keep], raters[keep]
    n_items = counts.shape[0]
    pairable = raters >= 2
    n_pairable = int(pairable.sum())
    if n_items < 2 or n_pairable == 0:
        return math.nan
    weighted_counts = counts @ weight_matrix.T
    agreeing = (counts * (weighted_counts - 1)).sum(axis=1)
    denominator = np.where(pairable, raters * (raters - 1), 1.0)
    pa_items = np.where(pairable, agreeing / denominator, 0.0)
    kappa_items = (n_items / n_pairable) * (pa_items - pe * pairable) / (1 - pe)
    prevalence = (counts / raters[:, None]).mean(axis=0)
    symmetric = (weight_matrix @ prevalence + weight_matrix.T @ prevalence) / 2
    pe_items = (counts @ symmetric) / raters
    linearised = kappa_items - 2 * (1 - kappa) * (pe_items - pe) / (1 - pe)
    variance = float(((linearised - kappa) ** 2).sum() / (n_items * (n_items - 1)))
    return math.sqrt(max(variance, 0.0))


def fleiss_kappa(table: RatingsTable, *, level: float = 0.95) -> FleissKappa:
    """Fleiss' kappa over all raters (missing ratings allowed), per category, with SE, CI, z and p."""
    _normal_quantile(level)
    counts = table.category_counts()
    raters = counts.sum(axis=1)
    counts_rated = counts[raters >= 1]
    n_items = counts_rated.shape[0]
    complete = bool(n_items > 0 and np.all(raters[raters >= 1] == table.n_raters))
    nan = math.nan

    def undefined(reason: str) -> FleissKappa:
        return FleissKappa(
            nan, nan, nan, nan, nan, nan, nan, nan, n_items, table.n_raters, complete, "", (),
            level, reason=reason,
        )  # fmt: skip

    if table.n_raters < 2:
        return undefined("Fleiss' kappa needs at least 2 raters.")
    if int((raters >= 2).sum()) < 2:
        return undefined("Fleiss' kappa needs at least 2 items rated by two or more raters.")
    if table.n_categories < 2:
        return undefined("Only one category on the scale: agreement beyond chance is undefined.")
    identity = np.eye(table.n_categories)
    kappa, pa, pe = fleiss_point(counts_rated, identity)
    if math.isnan(kappa):
        return undefined("Every rating is in the same category: chance agreement is 1 and kappa undefined.")
    se = _fleiss_gwet_se(counts_rated, identity, kappa, pe)
    t_quantile = float(stats.t.ppf(0.5 + level / 2, n_items - 1))
    per_category = _per_category_kappas(counts_rated, table.categories, complete)
    if complete:
        # Fleiss, Nee & Landis (1979): variance of kappa under H0 for m raters on every item.
        m = table.n_raters
        prevalence = counts_rated.sum(axis=0) / (n_items * m)
        pq = prevalence * (1 - prevalence)
        sum_pq = float(pq.sum())
        variance_h0 = (
            2 / (n_items * m * (m - 1)) * (sum_pq**2 - float((pq * (1 - 2 * prevalence)).sum())) / sum_pq**2
        )
        se_h0 = math.sqrt(max(variance_h0, 0.0))
        z = kappa / se_h0 if se_h0 > 0 else nan
        p_value = float(2 * stats.norm.sf(abs(z))) if se_h0 > 0 else nan
        z_method = "Fleiss, Nee & Landis (1979) variance under H0, standard normal"
    else:
        z = kappa / se if se > 0 else nan
        p_value = float(2 * stats.t.sf(abs(z), n_items - 1)) if se > 0 else nan
        z_method = "missing ratings: kappa / Gwet SE, t on n-1 df (irrCAC)"
    return FleissKappa(
        kappa=kappa,
        se=se,
        ci_low=kappa - t_quantile * se,
        ci_high=min(1.0, kappa + t_quantile * se),
        z=z,
        p_value=p_value,
        observed_agreement=pa,
        expected_agreement=pe,
        n_items=n_items,
        n_raters=table.n_raters,
        complete=complete,
        z_method=z_method,
        per_category=per_category,
        level=level,
    )


def _per_category_kappas(
    counts: FloatArray, categories: Sequence[str], complete: bool
) -> tuple[CategoryKappa, ...]:
    """Kappa of each category against all others (Fleiss 1971); z under H0 for complete data."""
    raters = counts.sum(axis=1)
    results = []
    for index, category in enumerate(categories):
        in_category = counts[:, index]
        dichotomised = np.column_stack([in_category, raters - in_category])
        kappa, _, _ = fleiss_point(dichotomised)
        if math.isnan(kappa):
            results.append(
                CategoryKappa(category, math.nan, math.nan, math.nan, math.nan,
                              reason="No rater used this category (or every rater used only it).")
            )  # fmt: skip
            continue
        if complete:
            m = int(raters[0])
            se_h0 = math.sqrt(2 / (counts.shape[0] * m * (m - 1)))
            z = kappa / se_h0
            results.append(CategoryKappa(category, kappa, se_h0, z, float(2 * stats.norm.sf(abs(z)))))
        else:
            results.append(
                CategoryKappa(category, kappa, math.nan, math.nan, math.nan,
                              reason="The z test under H0 needs every item rated by every rater.")
            )  # fmt: skip
    return tuple(results)


# --- Krippendorff's alpha -----------------------------------------------------------------------


@dataclass(frozen=True)
class KrippendorffAlpha(JsonResult):
    alpha: float
    level_of_measurement: str
    n_items_pairable: int
    n_pairable_values: int
    observed_agreement_gwet: float
    reason: str = ""


def _value_domain(table: RatingsTable, level: MeasurementLevel) -> FloatArray:
    if level in ("interval", "ratio"):
        return table.numeric_categories()
    return np.arange(table.n_categories, dtype=np.float64)


def _gwet_krippendorff_pa(counts: FloatArray) -> float:
    """Gwet's (2014) observed agreement for alpha: small-sample corrected (irrCAC ``krippendorff`` pa)."""
    raters = counts.sum(axis=1)
    pairable = raters >= 2
    counts, raters = counts[pairable], raters[pairable]
    mean_raters = raters.mean()
    epsilon = 1.0 / raters.sum()
    pa_prime = float(((counts * (counts - 1)).sum(axis=1) / (mean_raters * (raters - 1))).mean())
    return float((1 - epsilon) * pa_prime + epsilon)


def krippendorff_alpha(table: RatingsTable, level: MeasurementLevel | None = None) -> KrippendorffAlpha:
    """Krippendorff's alpha at `level` (the table's own by default), missing ratings allowed."""
    level = level or table.level
    counts = table.category_counts()
    raters = counts.sum(axis=1)
    pairable = raters >= 2
    n_pairable = int(pairable.sum())
    n_values = int(raters[pairable].sum())
    if n_pairable == 0:
        return KrippendorffAlpha(
            math.nan, level, 0, 0, math.nan, reason="No item was rated by two or more raters."
        )
    observed_gwet = _gwet_krippendorff_pa(counts)
    if int((counts[pairable].sum(axis=0) > 0).sum()) < 2:
        return KrippendorffAlpha(
            math.nan, level, n_pairable, n_values, observed_gwet,
            reason="All pairable values are in one category: expected disagreement is 0 and alpha undefined.",
        )  # fmt: skip
    domain = _value_domain(table, level)
    alpha = float(
        krippendorff.alpha(value_counts=counts[pairable], value_domain=domain, level_of_measurement=level)
    )
    return KrippendorffAlpha(alpha, level, n_pairable, n_values, observed_gwet)


# --- PABAK --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pabak(JsonResult):
    value: float
    observed_agreement: float
    n_categories: int
    definition: str = PABAK_DEFINITION
    reason: str = ""


def pabak(table: RatingsTable) -> Pabak:
    """Prevalence- and bias-adjusted kappa (Byrt, Bishop & Carlin 1993), generalised to k categories
    and several raters as Brennan-Prediger's coefficient over the declared scale."""
    agreement = percent_agreement(table)
    k = table.n_categories
    if k < 2:
        return Pabak(math.nan, agreement.mean_over_items, k, reason="PABAK needs at least 2 categories.")
    if math.isnan(agreement.mean_over_items):
        return Pabak(math.nan, math.nan, k, reason=agreement.reason)
    observed = agreement.mean_over_items
    return Pabak((k * observed - 1) / (k - 1), observed, k)


# --- Pairwise kappas and readers vs a reference rater (the AI) ----------------------------------


@dataclass(frozen=True)
class PairwiseKappa(JsonResult):
    raters: tuple[str, ...]
    kappa: tuple[tuple[float, ...], ...]
    n_items: tuple[tuple[int, ...], ...]
    mean_kappa: float
    weights: str
    weight_levels: str
    reason: str = ""


def pairwise_kappa_matrix(
    table: RatingsTable, *, weights: WeightKind = "unweighted", weight_levels: WeightLevels = "declared"
) -> PairwiseKappa:
    """Cohen's kappa of every pair of raters (1 on the diagonal); mean over pairs with a defined kappa."""
    n = table.n_raters
    matrix = np.eye(n)
    counts = np.zeros((n, n), dtype=np.int64)
    rated = table.codes >= 0
    for first, second in itertools.combinations(range(n), 2):
        value = kappa_point(
            table.codes[first], table.codes[second], table.n_categories,
            weights=weights, weight_levels=weight_levels,
        )  # fmt: skip
        matrix[first, second] = matrix[second, first] = value
        counts[first, second] = counts[second, first] = int((rated[first] & rated[second]).sum())
    for index in range(n):
        counts[index, index] = int(rated[index].sum())
    off_diagonal = matrix[~np.eye(n, dtype=bool)]
    defined = off_diagonal[~np.isnan(off_diagonal)]
    reason = "" if defined.size else "No pair of raters has a defined kappa."
    return PairwiseKappa(
        raters=table.raters,
        kappa=tuple(tuple(float(v) for v in row) for row in matrix),
        n_items=tuple(tuple(int(v) for v in row) for row in counts),
        mean_kappa=float(defined.mean()) if defined.size else math.nan,
        weights=weights,
        weight_levels=weight_levels,
        reason=reason,
    )


def readers_vs_reference(
    table: RatingsTable,
    reference_rater: str,
    *,
    weights: WeightKind = "unweighted",
    weight_levels: WeightLevels = "declared",
    level: float = 0.95,
) -> tuple[CohenKappa, ...]:
    """Cohen's kappa of every other rater against `reference_rater` (e.g. the AI's predictions)."""
    table.rater_index(reference_rater)
    return tuple(
        cohen_kappa(table, rater, reference_rater, weights=weights, weight_levels=weight_levels, level=level)
        for rater in table.raters
        if rater != reference_rater
    )
