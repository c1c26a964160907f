"""Diagnostic accuracy of each reader against the reference standard (e.g. histopathology).

* A reader's call is positive when the rating is the ``positive`` category; probability ratings (an
  interval/ratio scale inside [0, 1]) are positive at >= 0.5.
* Sensitivity, specificity, accuracy, PPV and NPV are proportions with Wilson score intervals
  (``statsmodels.stats.proportion.proportion_confint(method="wilson")``). F1 is not a binomial
  proportion, so it has no Wilson interval; its interval comes from the patient bootstrap.
* AUC (with DeLong CI) uses the rating as a score: the probability; on an ordered scale the position
  along the scale towards the positive end (the positive category must be at one end); otherwise the
  binary call (then AUC = (sensitivity + specificity) / 2).
* Brier score: mean squared difference between the predicted probability of the positive class and
  the outcome (1 positive, 0 negative), on the 0-1 scale (0 perfect, 0.25 for always 0.5). Only for
  probability ratings, as is the calibration curve (equal-width bins over [0, 1], with bin counts).
* Per-patient accuracy: share of a patient's items the reader called right, and its distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from statsmodels.stats.proportion import proportion_confint

from annotations.statistics import roc
from annotations.statistics.ratings import RatingsTable, StatisticsInputError, canonical_value
from annotations.statistics.results import JsonResult

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]
PROBABILITY_THRESHOLD = 0.5


@dataclass(frozen=True)
class Proportion(JsonResult):
    value: float
    ci_low: float
    ci_high: float
    numerator: int
    denominator: int
    method: str = "wilson"
    reason: str = ""


def wilson_proportion(numerator: int, denominator: int, *, level: float = 0.95, what: str = "") -> Proportion:
    """numerator / denominator with its Wilson score interval; NaN with a reason when denominator is 0."""
    if denominator <= 0:
        return Proportion(math.nan, math.nan, math.nan, numerator, denominator, reason=f"No {what} cases.")
    low, high = proportion_confint(numerator, denominator, alpha=1.0 - level, method="wilson")
    return Proportion(numerator / denominator, float(low), float(high), numerator, denominator)


@dataclass(frozen=True)
class CalibrationCurve(JsonResult):
    bin_edges: tuple[float, ...]
    mean_predicted: tuple[float, ...]
    fraction_positive: tuple[float, ...]
    counts: tuple[int, ...]
    strategy: str = "uniform"


def calibration_data(truth: BoolArray, probabilities: FloatArray, *, n_bins: int = 10) -> CalibrationCurve:
    """Reliability diagram data: per non-empty equal-width bin, mean prediction, observed rate, count."""
    fraction_positive, mean_predicted = calibration_curve(
        truth, probabilities, n_bins=n_bins, strategy="uniform"
    )
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # The same binning as sklearn (searchsorted on the inner edges), to attach counts to its bins.
    bin_of_case = np.searchsorted(edges[1:-1], probabilities)
    counts = np.bincount(bin_of_case, minlength=n_bins)
    return CalibrationCurve(
        bin_edges=tuple(float(edge) for edge in edges),
        mean_predicted=tuple(float(v) for v in mean_predicted),
        fraction_positive=tuple(float(v) for v in fraction_positive),
        counts=tuple(int(c) for c in counts[counts > 0]),
    )


@dataclass(frozen=True)
class PerPatientAccuracy(JsonResult):
    patients: tuple[str, ...]
    accuracy: tuple[float, ...]
    n_items: tuple[int, ...]
    mean: float
    median: float
    minimum: float
    maximum: float
    threshold: float
    n_below_threshold: int


def per_patient_accuracy(
    correct: BoolArray, patients: Sequence[str], *, threshold: float = 0.7
) -> PerPatientAccuracy:
    labels, patient_of_item = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    totals = np.bincount(patient_of_item, minlength=labels.size)
    hits = np.bincount(patient_of_item, weights=correct.astype(np.float64), minlength=labels.size)
    shares = hits / totals
    return PerPatientAccuracy(
        patients=tuple(str(label) for label in labels),
        accuracy=tuple(float(v) for v in shares),
        n_items=tuple(int(v) for v in totals),
        mean=float(shares.mean()),
        median=float(np.median(shares)),
        minimum=float(shares.min()),
        maximum=float(shares.max()),
        threshold=threshold,
        n_below_threshold=int((shares < threshold).sum()),
    )


@dataclass(frozen=True)
class ReaderAccuracy(JsonResult):
    rater: str
    n_items: int
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int
    sensitivity: Proportion
    specificity: Proportion
    accuracy: Proportion
    ppv: Proportion
    npv: Proportion
    f1: float
    auc: dict[str, object] | None
    auc_score: str
    brier_score: float | None
    calibration: CalibrationCurve | None
    per_patient: PerPatientAccuracy | None
    reason: str = ""


def f1_value(true_positive: float, false_positive: float, false_negative: float) -> float:
    denominator = 2 * true_positive + false_positive + false_negative
    return 2 * true_positive / denominator if denominator > 0 else math.nan


def binary_accuracy(
    truth: BoolArray,
    call: BoolArray,
    *,
    rater: str = "",
    scores: FloatArray | None = None,
    score_kind: str = "binary call",
    probabilities: FloatArray | None = None,
    patients: Sequence[str] | None = None,
    level: float = 0.95,
    n_bins: int = 10,
) -> ReaderAccuracy:
    """All accuracy measures of one reader on the items with a reference (arrays aligned by item)."""
    truth = np.asarray(truth, dtype=bool)
    call = np.asarray(call, dtype=bool)
    if truth.shape != call.shape:
        raise StatisticsInputError(f"{truth.size} reference values for {call.size} ratings.")
    tp = int((truth & call).sum())
    fp = int((~truth & call).sum())
    tn = int((~truth & ~call).sum())
    fn = int((truth & ~call).sum())
    auc: dict[str, object] | None = None
    reasons = []
    score_values = call.astype(np.float64) if scores is None else scores
    try:
        auc = roc.auc_delong(truth.astype(np.int64), score_values, level=level).to_dict()
    except ValueError as error:
        reasons.append(f"AUC: {error}")
    brier = None
    calibration = None
    if probabilities is not None and truth.size:
        brier = float(np.mean((probabilities - truth.astype(np.float64)) ** 2))
        calibration = calibration_data(truth, probabilities, n_bins=n_bins)
    per_patient = None
    if patients is not None and truth.size:
        per_patient = per_patient_accuracy(truth == call, patients)
    if not truth.size:
        reasons.append("No item of this reader has a reference value.")
    return ReaderAccuracy(
        rater=rater,
        n_items=int(truth.size),
        true_positive=tp,
        false_positive=fp,
        true_negative=tn,
        false_negative=fn,
        sensitivity=wilson_proportion(tp, tp + fn, level=level, what="reference-positive"),
        specificity=wilson_proportion(tn, tn + fp, level=level, what="reference-negative"),
        accuracy=wilson_proportion(tp + tn, truth.size, level=level, what="referenced"),
        ppv=wilson_proportion(tp, tp + fp, level=level, what="called-positive"),
        npv=wilson_proportion(tn, tn + fn, level=level, what="called-negative"),
        f1=f1_value(tp, fp, fn),
        auc=auc,
        auc_score=score_kind,
        brier_score=brier,
        calibration=calibration,
        per_patient=per_patient,
        reason="; ".join(reasons),
    )


def is_probability_scale(table: RatingsTable) -> bool:
    """Ratings are probabilities of the positive class: an interval/ratio scale inside [0, 1]."""
    if table.level not in ("interval", "ratio"):
        return False
    values = table.numeric_categories()
    return bool(values.size and values.min() >= 0.0 and values.max() <= 1.0)


@dataclass(frozen=True)
class ReaderOutcomes:
    """Per reader, what the accuracy statistics need, on the items the reader rated that have a reference."""

    rater: str
    item_index: NDArray[np.int64]
    truth: BoolArray
    call: BoolArray
    scores: FloatArray
    score_kind: str
    probabilities: FloatArray | None


def reference_truth(table: RatingsTable, positive: str) -> tuple[NDArray[np.int64], BoolArray]:
    """Indices of items with a reference and whether each is reference-positive; checks the reference."""
    if table.references is None:
        raise StatisticsInputError("Diagnostic accuracy needs a reference column (the reference standard).")
    positive = canonical_value(positive)
    referenced = np.array([i for i, ref in enumerate(table.references) if ref is not None], dtype=np.int64)
    if referenced.size == 0:
        raise StatisticsInputError("No item has a reference value.")
    values = [table.references[i] for i in referenced]
    if not is_probability_scale(table):
        unknown = sorted({str(v) for v in values} - set(table.categories))
        if unknown:
            raise StatisticsInputError(
                f"Reference values outside the categories ({', '.join(table.categories)}): "
                f"{', '.join(unknown[:10])}."
            )
        if positive not in table.categories:
            raise StatisticsInputError(
                f"The positive class {positive!r} is not one of the categories "
                f"({', '.join(table.categories)})."
            )
    elif positive not in set(values):
        raise StatisticsInputError(f"The positive class {positive!r} is not among the reference values.")
    return referenced, np.array([value == positive for value in values], dtype=bool)


def reader_outcomes(table: RatingsTable, positive: str) -> list[ReaderOutcomes]:
    referenced, truth_all = reference_truth(table, positive)
    positive = canonical_value(positive)
    probability_scale = is_probability_scale(table)
    numeric = table.numeric_categories() if probability_scale else None
    positions = np.arange(table.n_categories, dtype=np.float64)
    if probability_scale:
        score_kind = "probability"
    elif table.level != "nominal" and positive in (table.categories[0], table.categories[-1]):
        score_kind = "scale position towards the positive end"
        if positive == table.categories[0]:
            positions = -positions
    else:
        score_kind = "binary call"
    outcomes = []
    for row, rater in enumerate(table.raters):
        codes = table.codes[row, referenced]
        rated = codes >= 0
        items, truth, codes = referenced[rated], truth_all[rated], codes[rated]
        if numeric is not None:
            probabilities = numeric[codes]
            call = probabilities >= PROBABILITY_THRESHOLD
            scores = probabilities
        else:
            probabilities = None
            call = codes == table.categories.index(positive)
            scores = positions[codes] if score_kind != "binary call" else call.astype(np.float64)
        outcomes.append(ReaderOutcomes(rater, items, truth, call, scores, score_kind, probabilities))
    return outcomes


def reader_accuracy(
    table: RatingsTable, positive: str, *, level: float = 0.95, n_bins: int = 10
) -> tuple[ReaderAccuracy, ...]:
    """Accuracy of every rater of `table` against its reference column."""
    results = []
    for outcome in reader_outcomes(table, positive):
        patients = None if table.patients is None else [table.patients[i] for i in outcome.item_index]
        results.append(
            binary_accuracy(
                outcome.truth,
                outcome.call,
                rater=outcome.rater,
                scores=outcome.scores,
                score_kind=outcome.score_kind,
                probabilities=outcome.probabilities,
                patients=patients,
                level=level,
                n_bins=n_bins,
            )
        )
    return tuple(results)


def paired_auc_vs_reference(
    table: RatingsTable, positive: str, reference_rater: str, *, level: float = 0.95
) -> dict[str, dict[str, object]]:
    """Paired DeLong test of each reader's AUC against `reference_rater`'s (e.g. the AI) on common items."""
    outcomes = {outcome.rater: outcome for outcome in reader_outcomes(table, positive)}
    if reference_rater not in outcomes:
        raise StatisticsInputError(f"No rater {reference_rater!r} in the ratings.")
    reference = outcomes[reference_rater]
    results: dict[str, dict[str, object]] = {}
    for rater, outcome in outcomes.items():
        if rater == reference_rater:
            continue
        common, in_reader, in_reference = np.intersect1d(
            outcome.item_index, reference.item_index, return_indices=True
        )
        try:
            test = roc.delong_paired_test(
                outcome.truth[in_reader].astype(np.int64),
                outcome.scores[in_reader],
                reference.scores[in_reference],
                level=level,
            )
            results[rater] = {**test.to_dict(), "n_items": int(common.size)}
        except ValueError as error:
            results[rater] = {"n_items": int(common.size), "reason": str(error)}
    return results


def accuracy_item_statistics(
    outcome: ReaderOutcomes, n_items: int
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per measure, (numerator indicator, denominator indicator) over all items of the table, so that a
    bootstrap weight vector w gives the measure as (w . numerator) / (w . denominator)."""

    def spread(values: NDArray[np.bool_] | NDArray[np.int64]) -> FloatArray:
        full = np.zeros(n_items)
        full[outcome.item_index] = values
        return full

    truth, call = outcome.truth, outcome.call
    return {
        "sensitivity": (spread(truth & call), spread(truth)),
        "specificity": (spread(~truth & ~call), spread(~truth)),
        "accuracy": (spread(truth == call), spread(np.ones_like(truth))),
        "f1": (spread(2 * (truth & call)), spread(2 * (truth & call) + (truth ^ call))),
    }
