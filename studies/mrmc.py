"""Multi-reader multi-case (MRMC) comparison of two reading modalities, e.g. without vs with AI.

Pure numpy/scipy, no Django: the reader-study views, the statistics management command and the API
call :func:`mrmc_compare` with long-form readings (one row per reader x modality x case).

Every reader reads every case in both modalities (a fully crossed, "factorial" design). For each
reader ``j`` and modality ``i`` a figure of merit ``theta_ij`` is computed: the empirical AUC
(Mann-Whitney; ties count 1/2), or the sensitivity or specificity of a binary call
``rating >= threshold``. The two modalities are then compared with one of two equivalent
frameworks for random readers *and* random cases:

* **Obuchowski-Rockette (OR)**: a treatment x reader ANOVA of the ``theta_ij`` whose errors are
  correlated because the readers read the same cases (Obuchowski & Rockette 1995, Commun. Stat.
  Simul. Comput. 24:285-308). The error variance and the three covariances (``cov1`` same reader
  different modality, ``cov2`` different reader same modality, ``cov3`` different reader and
  modality) are estimated from the case sample by

  - the **jackknife** over cases (Hillis et al. 2005, Stat. Med. 24:1579-1607),
  - **DeLong** structural components (DeLong et al. 1988, Biometrics 44:837-845), AUC only,
  - the **unbiased** U-statistic estimator of Gallas, Pennello & Meyers (2007), J. Opt. Soc.
    Am. A 24:B70-B80, AUC only (the estimator MRMCaov calls ``unbiased`` and iMRMC uses).

  The random-reader random-case (RRRC) F test uses the error term ``MS(TR) + r max(cov2 - cov3, 0)``
  with Hillis' (2007, Stat. Med. 26:596-619) denominator degrees of freedom ``ddf_H``.
* **Dorfman-Berbaum-Metz (DBM)**: a treatment x reader x case ANOVA of jackknife pseudovalues
  ``Y_ijk = K theta_ij - (K - 1) theta_ij(k)`` (Dorfman, Berbaum & Metz 1992, Invest. Radiol.
  27:723-731), normalised so that their mean over cases is ``theta_ij`` (Hillis 2005, Acad. Radiol.
  12:1534-1541), with the Hillis, Berbaum & Metz (2008, Acad. Radiol. 15:647-661) error term
  ``MS(TR) + max(MS(TC) - MS(TRC), 0)``. With jackknife covariances its RRRC test equals the OR test.

Each method reports three analyses, as OR-DBM MRMC (University of Iowa), JAFROC/RJafroc and MRMCaov
do: RRRC (readers and cases random; conclusions generalise to both populations), FRRC (readers
fixed, cases random: OR uses a chi-square test, DBM an F test on MS(TC)), and RRFC (readers random,
cases fixed: a paired t-test on the reader figures of merit). For binary metrics the jackknife runs
over the cases that inform the metric only (the truth-positive cases for sensitivity, the
truth-negative ones for specificity), as MRMCaov does: a case that cannot change the metric would
only shrink every covariance by ``(K - 1) / K``.

The effect is ``mean theta(first modality) - mean theta(second modality)`` in ``modality_order``
(default: the modality labels in natural sort order, so ``1 - 2`` as in the Iowa printout). For
the AI effect pass ``modality_order=("with_ai", "without_ai")``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from annotations.statistics.roc import delong_covariance, placement_values

__all__ = [
    "ModalityEstimate",
    "MrmcAnalysis",
    "MrmcData",
    "MrmcInputError",
    "MrmcResult",
    "ReaderDifference",
    "mrmc_compare",
    "read_mrmc_csv",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

FigureOfMerit = Literal["auc", "sensitivity", "specificity"]
CovarianceMethod = Literal["jackknife", "delong", "unbiased"]
AnalysisMethod = Literal["or", "dbm"]

FIGURES_OF_MERIT: tuple[str, ...] = ("auc", "sensitivity", "specificity")
COVARIANCE_METHODS: tuple[str, ...] = ("jackknife", "delong", "unbiased")
ANALYSIS_METHODS: tuple[str, ...] = ("or", "dbm")

# Column names accepted for each field of a long-form reading, in order of preference. The
# ``item, rater, value, reference`` spelling is the one the agreement command's ratings CSV uses.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "reader": ("reader", "rater", "reader_id"),
    "modality": ("modality", "treatment", "test", "arm"),
    "case": ("case", "item", "case_id"),
    "truth": ("truth", "reference", "reference_standard"),
    "rating": ("rating", "value", "score"),
}

# The unbiased covariance multiplies (groups, positives x negatives) kernel blocks; this bounds one
# block's size in floats so memory stays modest for large studies.
_KERNEL_BLOCK_ELEMENTS = 4_000_000
# A variance below this fraction of the figures' own scale is treated as exactly zero (rounding).
_RELATIVE_ZERO = 1e-12


class MrmcInputError(ValueError):
    """The readings cannot give an MRMC analysis (design, truth or options); the message says why."""


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


def _label_sort_key(label: Any) -> tuple[int, float, str]:
    """Natural order: numeric labels by value (so reader "10" follows "9"), then text labels."""
    text = str(label)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _encode(values: Sequence[Any], what: str) -> tuple[tuple[Any, ...], NDArray[np.intp]]:
    """Distinct labels in natural order and the index of each value among them."""
    try:
        distinct = sorted(dict.fromkeys(values), key=_label_sort_key)
    except TypeError as error:
        raise MrmcInputError(f"{what} labels must be hashable (text or numbers)") from error
    texts = [str(label) for label in distinct]
    if len(set(texts)) != len(texts):
        raise MrmcInputError(f"{what} labels collide when written as text (e.g. 1 and '1'); use one type")
    position = {label: index for index, label in enumerate(distinct)}
    codes = np.fromiter((position[value] for value in values), dtype=np.intp, count=len(values))
    return tuple(distinct), codes


def _parse_truth(values: Sequence[Any]) -> FloatArray:
    """Truth values as 0.0/1.0: accepts booleans, 0/1 numbers and the texts 0/1/true/false/yes/no."""
    words = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}
    parsed = np.empty(len(values), dtype=np.float64)
    for index, value in enumerate(values):
        if isinstance(value, str):
            text = value.strip().lower()
            if text in words:
                parsed[index] = words[text]
                continue
            try:
                parsed[index] = float(text)
            except ValueError:
                raise MrmcInputError(f"truth value {value!r} is not 0/1 or true/false") from None
        else:
            try:
                parsed[index] = float(value)
            except (TypeError, ValueError):
                raise MrmcInputError(f"truth value {value!r} is not 0/1 or true/false") from None
    bad = ~np.isin(parsed, (0.0, 1.0))
    if bad.any():
        raise MrmcInputError(
            f"truth must be 0 (negative) or 1 (positive); found {np.asarray(values, dtype=object)[bad][0]!r}"
        )
    return parsed


def _parse_ratings(values: Sequence[Any]) -> FloatArray:
    try:
        ratings = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MrmcInputError("ratings must be numbers") from error
    if ratings.ndim != 1:
        raise MrmcInputError("ratings must be one value per reading")
    if not np.all(np.isfinite(ratings)):
        raise MrmcInputError("ratings contain missing (NaN), empty or infinite values")
    return ratings


@dataclass(frozen=True, eq=False)
class MrmcData:
    """A validated, fully crossed MRMC study: ``ratings[modality, reader, case]`` and ``truth[case]``.

    Build it with :meth:`from_arrays`, :meth:`from_records` or :func:`read_mrmc_csv`; each checks
    that there are exactly two modalities, at least two readers, both positive and negative cases,
    that every reader rated every case once in each modality, and that a case's truth is the same in
    every reading. ``modalities`` is in the order of the comparison (effect = first - second).
    """

    readers: tuple[Any, ...]
    modalities: tuple[Any, ...]
    cases: tuple[Any, ...]
    truth: BoolArray
    ratings: FloatArray

    @property
    def n_readers(self) -> int:
        return len(self.readers)

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    @property
    def n_positive(self) -> int:
        return int(self.truth.sum())

    @property
    def n_negative(self) -> int:
        return int((~self.truth).sum())

    @classmethod
    def from_arrays(
        cls,
        reader: Sequence[Any] | ArrayLike,
        modality: Sequence[Any] | ArrayLike,
        case: Sequence[Any] | ArrayLike,
        truth: Sequence[Any] | ArrayLike,
        rating: Sequence[Any] | ArrayLike,
        *,
        modality_order: Sequence[Any] | None = None,
        positive_label: Any = None,
    ) -> MrmcData:
        """Build from five parallel long-form columns (one entry per reading).

        ``truth`` is 0/1 (or boolean, or true/false text); with ``positive_label`` it may instead
        hold any reference labels, and a case is positive when its label equals ``positive_label``
        (compared as text, so ``"neoplastic"`` or ``1`` both work on CSV input).
        """
        columns = {
            "reader": _as_list(reader),
            "modality": _as_list(modality),
            "case": _as_list(case),
            "truth": _as_list(truth),
            "rating": _as_list(rating),
        }
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) != 1:
            raise MrmcInputError(f"columns differ in length: {lengths}")
        if lengths["reader"] == 0:
            raise MrmcInputError("no readings")
        readers, reader_codes = _encode(columns["reader"], "reader")
        modalities, modality_codes = _encode(columns["modality"], "modality")
        cases, case_codes = _encode(columns["case"], "case")
        if positive_label is None:
            truth_values = _parse_truth(columns["truth"])
        else:
            wanted = str(positive_label)
            truth_values = np.fromiter(
                (float(str(value) == wanted) for value in columns["truth"]), dtype=np.float64
            )
        ratings_long = _parse_ratings(columns["rating"])

        if len(modalities) != 2:
            raise MrmcInputError(
                f"an MRMC comparison needs exactly two modalities, found {len(modalities)}: "
                f"{', '.join(map(str, modalities[:5]))}"
            )
        if modality_order is not None:
            order = _resolve_modality_order(modalities, modality_order)
            modality_codes = np.asarray(order, dtype=np.intp)[modality_codes]
            modalities = (modalities[order.index(0)], modalities[order.index(1)])
        if len(readers) < 2:
            raise MrmcInputError(f"at least two readers are needed, found {len(readers)}")

        shape = (2, len(readers), len(cases))
        counts = np.zeros(shape, dtype=np.int64)
        np.add.at(counts, (modality_codes, reader_codes, case_codes), 1)
        if np.any(counts > 1):
            i, j, k = np.argwhere(counts > 1)[0]
            raise MrmcInputError(
                f"reader {readers[j]!r} rated case {cases[k]!r} more than once in modality {modalities[i]!r}"
            )
        if np.any(counts == 0):
            missing = np.argwhere(counts == 0)
            i, j, k = missing[0]
            raise MrmcInputError(
                f"{len(missing)} readings are missing (every reader must read every case in both "
                f"modalities); e.g. reader {readers[j]!r}, case {cases[k]!r}, modality {modalities[i]!r}"
            )

        case_truth_low = np.full(len(cases), np.inf)
        case_truth_high = np.full(len(cases), -np.inf)
        np.minimum.at(case_truth_low, case_codes, truth_values)
        np.maximum.at(case_truth_high, case_codes, truth_values)
        inconsistent = np.flatnonzero(case_truth_low != case_truth_high)
        if inconsistent.size:
            raise MrmcInputError(
                f"truth differs between readings of the same case for {inconsistent.size} case(s), "
                f"e.g. case {cases[inconsistent[0]]!r}"
            )
        case_truth = case_truth_low == 1.0
        if not case_truth.any():
            raise MrmcInputError("no positive case (truth == 1)")
        if case_truth.all():
            raise MrmcInputError("no negative case (truth == 0)")

        ratings = np.empty(shape, dtype=np.float64)
        ratings[modality_codes, reader_codes, case_codes] = ratings_long
        return cls(readers=readers, modalities=modalities, cases=cases, truth=case_truth, ratings=ratings)

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        modality_order: Sequence[Any] | None = None,
        columns: Mapping[str, str] | None = None,
        positive_label: Any = None,
    ) -> MrmcData:
        """Build from mappings with keys reader, modality, case, truth and rating.

        Column names may also be spelled as in :data:`FIELD_ALIASES` (``rater``, ``treatment``,
        ``item``, ``reference``, ``value``...), or named explicitly with ``columns``, e.g.
        ``{"truth": "histology"}``.
        """
        rows = list(records)
        if not rows:
            raise MrmcInputError("no readings")
        keys = _resolve_columns(rows[0].keys(), columns)
        try:
            values = {name: [row[key] for row in rows] for name, key in keys.items()}
        except KeyError as error:
            raise MrmcInputError(f"a reading lacks the column {error.args[0]!r}") from None
        return cls.from_arrays(
            values["reader"],
            values["modality"],
            values["case"],
            values["truth"],
            values["rating"],
            modality_order=modality_order,
            positive_label=positive_label,
        )


def _as_list(values: Sequence[Any] | ArrayLike) -> list[Any]:
    if isinstance(values, np.ndarray):
        return list(values.tolist())
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise MrmcInputError("each column must be a sequence of values")
    return list(values)


def _resolve_modality_order(modalities: tuple[Any, ...], requested: Sequence[Any]) -> list[int]:
    """``order[code] = new position`` so that ``requested`` comes first; labels match as text too."""
    wanted = list(requested)
    if len(wanted) != 2:
        raise MrmcInputError("modality_order must name the two modalities")
    texts = [str(label) for label in modalities]
    positions = []
    for label in wanted:
        if label in modalities:
            positions.append(modalities.index(label))
        elif str(label) in texts:
            positions.append(texts.index(str(label)))
        else:
            raise MrmcInputError(f"modality {label!r} is not in the data ({', '.join(texts)})")
    if positions[0] == positions[1]:
        raise MrmcInputError("modality_order names the same modality twice")
    order = [0, 0]
    order[positions[0]] = 0
    order[positions[1]] = 1
    return order


def _resolve_columns(available: Iterable[str], explicit: Mapping[str, str] | None) -> dict[str, str]:
    names = list(available)
    lowered = {str(name).strip().lower(): name for name in names}
    resolved: dict[str, str] = {}
    for field_name, aliases in FIELD_ALIASES.items():
        if explicit and field_name in explicit:
            resolved[field_name] = explicit[field_name]
            continue
        match = next((lowered[alias] for alias in aliases if alias in lowered), None)
        if match is None:
            raise MrmcInputError(
                f"no column for {field_name!r}; expected one of {', '.join(aliases)} "
                f"(found {', '.join(map(str, names))})"
            )
        resolved[field_name] = match
    return resolved


def read_mrmc_csv(
    source: str | os.PathLike[str] | io.TextIOBase | Iterable[str],
    *,
    modality_order: Sequence[Any] | None = None,
    columns: Mapping[str, str] | None = None,
    positive_label: Any = None,
) -> MrmcData:
    """Read long-form readings from a CSV with a header row (see :meth:`MrmcData.from_records`)."""
    if isinstance(source, str | os.PathLike):
        with open(source, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = list(csv.DictReader(source))
    return MrmcData.from_records(
        rows, modality_order=modality_order, columns=columns, positive_label=positive_label
    )


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalityEstimate:
    """Mean figure of merit of one modality over readers, with the analysis' single-modality CI.

    Limits are clipped to [0, 1] because every figure of merit here is a proportion (MRMCaov does
    the same). ``df`` is None where the interval is a normal (z) interval. ``ms_reader`` and
    ``cov2`` (or ``var_error``) are the modality-specific inputs of the standard error (for DBM
    also the reader x case ANOVA mean squares ``ms_case`` and ``ms_reader_case`` of pseudovalues).
    """

    modality: str
    estimate: float
    se: float
    df: float | None
    ci_low: float
    ci_high: float
    ms_reader: float | None = None
    cov2: float | None = None
    var_error: float | None = None
    ms_case: float | None = None
    ms_reader_case: float | None = None


@dataclass(frozen=True)
class ReaderDifference:
    """One reader's modality difference (fixed-reader analysis, part d of the Iowa printout)."""

    reader: str
    difference: float
    se: float
    statistic: float
    df: float | None
    p_value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class MrmcAnalysis:
    """Test of equal modality means under one assumption about what is random.

    ``statistic_name`` is ``"F"`` (with ``df1``, ``df2``) or ``"chi-square"`` (``df2`` None).
    ``t`` is the signed ``effect / se`` (a z value where ``df2`` is None); with two modalities
    ``F = t**2``. ``error_term`` is the denominator of F. When the variance of the effect is zero the
    statistic and p are NaN and ``reason`` says why.
    """

    name: str
    effect: float
    se: float
    ci_low: float
    ci_high: float
    statistic_name: str
    statistic: float
    df1: float
    df2: float | None
    p_value: float
    t: float
    error_term: float
    error_term_formula: str
    modalities: tuple[ModalityEstimate, ...]
    readers: tuple[ReaderDifference, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class MrmcResult:
    """Everything an MRMC comparison reports; ``to_dict()`` gives plain JSON-ready types.

    ``figures_of_merit[i][j]`` is reader ``readers[j]``'s figure of merit in ``modalities[i]``.
    ``effect = modality_means[0] - modality_means[1]`` (see ``effect_label``).
    ``variance_components`` holds the OR estimates (var_R, var_TR, var_error, cov1, cov2, cov3);
    for DBM also the DBM components (var_C, var_TC, var_RC, var_TRC_error) and the OR values they
    imply. ``mean_squares`` holds MS_T, MS_R, MS_TR (OR: of the figures of merit) and for DBM
    MS_C, MS_TC, MS_RC, MS_TRC (of the pseudovalues).
    """

    method: str
    figure_of_merit: str
    covariance: str
    threshold: float | None
    level: float
    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    n_cases: int
    n_positive: int
    n_negative: int
    n_jackknife_cases: int
    figures_of_merit: tuple[tuple[float, ...], ...]
    modality_means: tuple[float, ...]
    effect: float
    effect_label: str
    mean_squares: dict[str, float]
    variance_components: dict[str, float]
    rrrc: MrmcAnalysis
    frrc: MrmcAnalysis
    rrfc: MrmcAnalysis
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def analyses(self) -> dict[str, MrmcAnalysis]:
        return {"rrrc": self.rrrc, "frrc": self.frrc, "rrfc": self.rrfc}


# --------------------------------------------------------------------------------------------------
# Figures of merit and their leave-one-case-out values
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _FigureOfMeritData:
    """``theta[i, j]`` and the jackknife ``leave_one_out[i, j, k]`` over the informative cases."""

    theta: FloatArray
    leave_one_out: FloatArray
    binary_calls: FloatArray | None


def _figures_of_merit(data: MrmcData, figure_of_merit: str, threshold: float) -> _FigureOfMeritData:
    """Reader x modality figures of merit; ``threshold`` is ignored for the AUC."""
    n_modalities, n_readers, n_cases = data.ratings.shape
    if figure_of_merit == "auc":
        if data.n_positive < 2 or data.n_negative < 2:
            raise MrmcInputError(
                "the AUC analysis needs at least two positive and two negative cases "
                f"(found {data.n_positive} and {data.n_negative})"
            )
        flat = data.ratings.reshape(n_modalities * n_readers, n_cases)
        aucs, positive_placements, negative_placements = placement_values(data.truth, flat)
        n_pos, n_neg = data.n_positive, data.n_negative
        # Leaving out positive i removes its row of the m x n kernel: AUC = (m AUC - V10_i) / (m - 1);
        # likewise for a negative with V01_j. No loop over cases (Hillis et al. 2005, appendix).
        without_positive = (n_pos * aucs[:, None] - positive_placements) / (n_pos - 1)
        without_negative = (n_neg * aucs[:, None] - negative_placements) / (n_neg - 1)
        leave_one_out = np.concatenate([without_positive, without_negative], axis=1)
        return _FigureOfMeritData(
            theta=aucs.reshape(n_modalities, n_readers),
            leave_one_out=leave_one_out.reshape(n_modalities, n_readers, n_cases),
            binary_calls=None,
        )
    calls = (data.ratings >= threshold).astype(np.float64)
    if figure_of_merit == "sensitivity":
        informative = calls[:, :, data.truth]
        what = "positive"
    else:
        informative = 1.0 - calls[:, :, ~data.truth]
        what = "negative"
    count = informative.shape[2]
    if count < 2:
        raise MrmcInputError(f"the {figure_of_merit} analysis needs at least two {what} cases, found {count}")
    theta = informative.mean(axis=2)
    leave_one_out = (count * theta[:, :, None] - informative) / (count - 1)
    return _FigureOfMeritData(theta=theta, leave_one_out=leave_one_out, binary_calls=informative)


def _jackknife_covariance(leave_one_out: FloatArray) -> FloatArray:
    """Jackknife covariance ``(K-1)/K sum_k (theta_(k) - mean)(theta_(k) - mean)'`` of all groups."""
    groups = leave_one_out.reshape(-1, leave_one_out.shape[-1])
    count = groups.shape[1]
    centred = groups - groups.mean(axis=1, keepdims=True)
    return np.asarray((count - 1) / count * (centred @ centred.T), dtype=np.float64)


def _unbiased_covariance(truth: BoolArray, ratings: FloatArray) -> FloatArray:
    """Gallas, Pennello & Meyers (2007) unbiased covariance of empirical AUCs on a crossed design.

    With ``psi_g(k, l)`` the Mann-Whitney kernel of group ``g`` (1, 1/2, 0 as positive ``k`` scores
    above, equal to, below negative ``l``), the U-statistic estimate of ``E[psi_g psi_h]`` over
    pairs of disjoint (positive, negative) pairs gives, with ``m`` positives, ``n`` negatives,
    ``S`` the kernel sums, ``P`` the positive row sums and ``N`` the negative column sums:

        cov_gh = [(1 - d) S_g S_h + d (sum_k P_gk P_hk + sum_l N_gl N_hl - sum_kl psi_g psi_h)] / (m n)^2

    where ``d = (m n)^2 / (m (m - 1) n (n - 1))``. Unlike the DeLong estimator it has no positive
    bias from the diagonal terms, which matters for small studies. The row and column sums come from
    placement values; only the kernel cross-product needs the full m x n kernels, built in blocks.
    """
    groups = ratings.reshape(-1, ratings.shape[-1])
    positives = groups[:, truth]
    negatives = groups[:, ~truth]
    n_pos = positives.shape[1]
    n_neg = negatives.shape[1]
    _, positive_placements, negative_placements = placement_values(truth, groups)
    row_sums = positive_placements * n_neg
    column_sums = negative_placements * n_pos
    totals = row_sums.sum(axis=1)
    kernel_cross = np.zeros((groups.shape[0], groups.shape[0]))
    block = max(1, _KERNEL_BLOCK_ELEMENTS // max(1, groups.shape[0] * n_neg))
    for start in range(0, n_pos, block):
        chunk = positives[:, start : start + block, None]
        kernel = (chunk > negatives[:, None, :]).astype(np.float64)
        kernel += 0.5 * (chunk == negatives[:, None, :])
        flat = kernel.reshape(groups.shape[0], -1)
        kernel_cross += flat @ flat.T
    pairs = float(n_pos * n_neg)
    delta = pairs**2 / (n_pos * (n_pos - 1) * n_neg * (n_neg - 1))
    combined = row_sums @ row_sums.T + column_sums @ column_sums.T - kernel_cross
    return np.asarray(((1.0 - delta) * np.outer(totals, totals) + delta * combined) / pairs**2)


# --------------------------------------------------------------------------------------------------
# Shared inference helpers
# --------------------------------------------------------------------------------------------------


def _quantile(level: float, df: float | None) -> float:
    upper = 0.5 + level / 2.0
    if df is None or math.isinf(df):
        return float(stats.norm.ppf(upper))
    return float(stats.t.ppf(upper, df))


def _clip_unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _modality_estimate(
    modality: Any,
    estimate: float,
    variance: float,
    df: float | None,
    level: float,
    **inputs: float,
) -> ModalityEstimate:
    se = math.sqrt(variance) if variance > 0 else 0.0
    half_width = _quantile(level, df) * se if se > 0 else 0.0
    return ModalityEstimate(
        modality=str(modality),
        estimate=estimate,
        se=se,
        df=df,
        ci_low=_clip_unit(estimate - half_width),
        ci_high=_clip_unit(estimate + half_width),
        **inputs,
    )


def _reader_difference(
    reader: Any, difference: float, variance: float, df: float | None, level: float
) -> ReaderDifference:
    if variance > 0:
        se = math.sqrt(variance)
        statistic = difference / se
        p_value = _two_sided_p(statistic, df)
        half_width = _quantile(level, df) * se
    else:
        se, statistic, p_value, half_width = 0.0, math.nan, math.nan, math.nan
    return ReaderDifference(
        reader=str(reader),
        difference=difference,
        se=se,
        statistic=statistic,
        df=df,
        p_value=p_value,
        ci_low=difference - half_width,
        ci_high=difference + half_width,
    )


def _two_sided_p(statistic: float, df: float | None) -> float:
    if df is None or math.isinf(df):
        return float(2.0 * stats.norm.sf(abs(statistic)))
    return float(2.0 * stats.t.sf(abs(statistic), df))


def _test_of_effect(
    *,
    name: str,
    effect: float,
    ms_treatment: float,
    error_term: float,
    effect_variance: float,
    df2: float | None,
    scale: float,
    level: float,
    statistic_name: str,
    error_term_formula: str,
    modalities: tuple[ModalityEstimate, ...],
    readers: tuple[ReaderDifference, ...] = (),
) -> MrmcAnalysis:
    """F (or chi-square with 1 df) test of two modality means and the CI of their difference.

    ``ms_treatment / error_term`` is the F (chi-square) statistic; ``effect_variance`` is the
    variance of the difference (from the same error term), so ``F == (effect / se) ** 2``.
    """
    reason = ""
    if error_term <= _RELATIVE_ZERO * scale or effect_variance <= 0:
        # Degrees of freedom computed from a zero error term are rounding noise: report none.
        df2 = None if df2 is None else math.nan
        se = 0.0
        statistic = t_value = p_value = half_width = math.nan
        reason = (
            "the error term is zero: the two modalities give identical figures of merit for every "
            "reader and case, so there is no variability to test against"
            if abs(effect) <= _RELATIVE_ZERO
            else "the error term is zero although the modality means differ; the test is undefined"
        )
    else:
        se = math.sqrt(effect_variance)
        t_value = effect / se
        statistic = ms_treatment / error_term
        if df2 is None or math.isinf(df2):
            p_value = float(stats.chi2.sf(statistic, 1))
        else:
            p_value = float(stats.f.sf(statistic, 1, df2))
        half_width = _quantile(level, df2) * se
    return MrmcAnalysis(
        name=name,
        effect=effect,
        se=se,
        ci_low=effect - half_width,
        ci_high=effect + half_width,
        statistic_name=statistic_name,
        statistic=statistic,
        df1=1.0,
        df2=df2,
        p_value=p_value,
        t=t_value,
        error_term=error_term,
        error_term_formula=error_term_formula,
        modalities=modalities,
        readers=readers,
        reason=reason,
    )


def _hillis_ddf(error_term: float, ms_interaction: float, df_interaction: float) -> float:
    """Hillis (2007) ``ddf_H = error_term^2 / (MS^2 / df)``; infinite when the MS is zero.

    An MS that is zero up to rounding (all readers show the same modality difference) counts as
    zero, so that the degrees of freedom do not depend on the last bits of a floating-point sum.
    """
    if ms_interaction <= _RELATIVE_ZERO * abs(error_term):
        return math.inf
    return error_term**2 / (ms_interaction**2 / df_interaction)


def _treatment_reader_anova(theta: FloatArray) -> dict[str, float]:
    """Mean squares of the two-way (modality x reader) layout of figures of merit, one per cell."""
    n_modalities, n_readers = theta.shape
    grand = theta.mean()
    modality_means = theta.mean(axis=1)
    reader_means = theta.mean(axis=0)
    interaction = theta - modality_means[:, None] - reader_means[None, :] + grand
    return {
        "MS_T": float(n_readers * np.sum((modality_means - grand) ** 2) / (n_modalities - 1)),
        "MS_R": float(n_modalities * np.sum((reader_means - grand) ** 2) / (n_readers - 1)),
        "MS_TR": float(np.sum(interaction**2) / ((n_modalities - 1) * (n_readers - 1))),
    }


# --------------------------------------------------------------------------------------------------
# Obuchowski-Rockette
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrCovariances:
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    var_error_by_modality: tuple[float, ...]
    cov2_by_modality: tuple[float, ...]
    var_error_by_reader: tuple[float, ...]
    cov1_by_reader: tuple[float, ...]


def _or_covariances(covariance: FloatArray, n_readers: int) -> _OrCovariances:
    """Average the (modality, reader) covariance matrix into the OR error variance and covariances."""
    n_modalities = covariance.shape[0] // n_readers
    blocks = covariance.reshape(n_modalities, n_readers, n_modalities, n_readers)
    same_modality = np.eye(n_modalities, dtype=bool)[:, None, :, None]
    same_reader = np.eye(n_readers, dtype=bool)[None, :, None, :]
    same_modality = np.broadcast_to(same_modality, blocks.shape)
    same_reader = np.broadcast_to(same_reader, blocks.shape)
    off_reader = ~np.eye(n_readers, dtype=bool)
    diagonal = np.einsum("ijij->ij", blocks)
    within_modality = [blocks[i, :, i, :][off_reader].mean() for i in range(n_modalities)]
    return _OrCovariances(
        var_error=float(blocks[same_modality & same_reader].mean()),
        cov1=float(blocks[~same_modality & same_reader].mean()),
        cov2=float(blocks[same_modality & ~same_reader].mean()),
        cov3=float(blocks[~same_modality & ~same_reader].mean()),
        var_error_by_modality=tuple(float(value) for value in diagonal.mean(axis=1)),
        cov2_by_modality=tuple(float(value) for value in within_modality),
        var_error_by_reader=tuple(float(value) for value in diagonal.mean(axis=0)),
        cov1_by_reader=tuple(float(blocks[0, j, 1, j]) for j in range(n_readers)),
    )


def _obuchowski_rockette(
    data: MrmcData, theta: FloatArray, covariances: _OrCovariances, level: float
) -> tuple[dict[str, float], dict[str, float], tuple[MrmcAnalysis, MrmcAnalysis, MrmcAnalysis]]:
    """OR analyses (Obuchowski & Rockette 1995; Hillis 2007 ddf; formulas as in OR-DBM MRMC 2.51)."""
    n_modalities, n_readers = theta.shape
    mean_squares = _treatment_reader_anova(theta)
    ms_t, ms_r, ms_tr = mean_squares["MS_T"], mean_squares["MS_R"], mean_squares["MS_TR"]
    var_error, cov1, cov2, cov3 = covariances.var_error, covariances.cov1, covariances.cov2, covariances.cov3
    # Expected mean squares of the OR model give the method-of-moments variance components.
    var_tr = ms_tr - var_error + cov1 + cov2 - cov3
    var_r = (ms_r - var_tr - var_error - (n_modalities - 1) * cov1 + cov2 + (n_modalities - 1) * cov3) / (
        n_modalities
    )
    components = {
        "var_R": float(var_r),
        "var_TR": float(var_tr),
        "var_error": var_error,
        "cov1": cov1,
        "cov2": cov2,
        "cov3": cov3,
    }
    means = theta.mean(axis=1)
    effect = float(means[0] - means[1])
    scale = max(abs(var_error), abs(ms_r), abs(ms_tr), 1e-300)
    df_interaction = float((n_modalities - 1) * (n_readers - 1))
    modality_ms_r = [float(np.var(theta[i], ddof=1)) for i in range(n_modalities)]

    # RRRC: error term MS(TR) + r max(cov2 - cov3, 0) with Hillis' ddf.
    rrrc_error = ms_tr + n_readers * max(cov2 - cov3, 0.0)
    rrrc_ddf = _hillis_ddf(rrrc_error, ms_tr, df_interaction)
    rrrc_modalities = []
    for i in range(n_modalities):
        single_error = modality_ms_r[i] + n_readers * max(covariances.cov2_by_modality[i], 0.0)
        single_df = _hillis_ddf(single_error, modality_ms_r[i], n_readers - 1.0)
        rrrc_modalities.append(
            _modality_estimate(
                data.modalities[i],
                float(means[i]),
                single_error / n_readers,
                single_df,
                level,
                ms_reader=modality_ms_r[i],
                cov2=covariances.cov2_by_modality[i],
            )
        )
    rrrc = _test_of_effect(
        name="RRRC",
        effect=effect,
        ms_treatment=ms_t,
        error_term=rrrc_error,
        effect_variance=2.0 / n_readers * rrrc_error,
        df2=rrrc_ddf,
        scale=scale,
        level=level,
        statistic_name="F",
        error_term_formula="MS(T*R) + r*max(Cov2 - Cov3, 0)",
        modalities=tuple(rrrc_modalities),
    )

    # FRRC: readers fixed; chi-square with t - 1 df on var_error - cov1 + (r - 1) max(cov2 - cov3, 0).
    frrc_error = var_error - cov1 + (n_readers - 1) * max(cov2 - cov3, 0.0)
    frrc_modalities = tuple(
        _modality_estimate(
            data.modalities[i],
            float(means[i]),
            (
                covariances.var_error_by_modality[i]
                + (n_readers - 1) * max(covariances.cov2_by_modality[i], 0.0)
            )
            / n_readers,
            None,
            level,
            var_error=covariances.var_error_by_modality[i],
            cov2=covariances.cov2_by_modality[i],
        )
        for i in range(n_modalities)
    )
    frrc_readers = tuple(
        _reader_difference(
            data.readers[j],
            float(theta[0, j] - theta[1, j]),
            2.0 * (covariances.var_error_by_reader[j] - covariances.cov1_by_reader[j]),
            None,
            level,
        )
        for j in range(n_readers)
    )
    frrc = _test_of_effect(
        name="FRRC",
        effect=effect,
        ms_treatment=(n_modalities - 1) * ms_t,
        error_term=frrc_error,
        effect_variance=2.0 / n_readers * frrc_error,
        df2=None,
        scale=scale,
        level=level,
        statistic_name="chi-square",
        error_term_formula="Var(error) - Cov1 + (r-1)*max(Cov2 - Cov3, 0)",
        modalities=frrc_modalities,
        readers=frrc_readers,
    )

    # RRFC: cases fixed, so cov1 = cov2 = cov3 = 0: a paired t-test on the reader figures of merit.
    rrfc_modalities = tuple(
        _modality_estimate(
            data.modalities[i],
            float(means[i]),
            modality_ms_r[i] / n_readers,
            n_readers - 1.0,
            level,
            ms_reader=modality_ms_r[i],
        )
        for i in range(n_modalities)
    )
    rrfc = _test_of_effect(
        name="RRFC",
        effect=effect,
        ms_treatment=ms_t,
        error_term=ms_tr,
        effect_variance=2.0 / n_readers * ms_tr,
        df2=df_interaction,
        scale=scale,
        level=level,
        statistic_name="F",
        error_term_formula="MS(T*R)",
        modalities=rrfc_modalities,
    )
    return mean_squares, components, (rrrc, frrc, rrfc)


# --------------------------------------------------------------------------------------------------
# Dorfman-Berbaum-Metz
# --------------------------------------------------------------------------------------------------


def _pseudovalues(theta: FloatArray, leave_one_out: FloatArray) -> FloatArray:
    """Normalised jackknife pseudovalues ``Y_ijk`` (Dorfman et al. 1992; Hillis 2005)."""
    count = leave_one_out.shape[2]
    raw = count * theta[:, :, None] - (count - 1) * leave_one_out
    return np.asarray(raw + (theta - raw.mean(axis=2))[:, :, None])


def _three_way_mean_squares(values: FloatArray) -> dict[str, float]:
    """Mean squares of a modality x reader x case layout with one observation per cell."""
    n_t, n_r, n_c = values.shape
    grand = values.mean()
    mean_t = values.mean(axis=(1, 2))
    mean_r = values.mean(axis=(0, 2))
    mean_c = values.mean(axis=(0, 1))
    mean_tr = values.mean(axis=2)
    mean_tc = values.mean(axis=1)
    mean_rc = values.mean(axis=0)
    ss_t = n_r * n_c * np.sum((mean_t - grand) ** 2)
    ss_r = n_t * n_c * np.sum((mean_r - grand) ** 2)
    ss_c = n_t * n_r * np.sum((mean_c - grand) ** 2)
    ss_tr = n_c * np.sum((mean_tr - mean_t[:, None] - mean_r[None, :] + grand) ** 2)
    ss_tc = n_r * np.sum((mean_tc - mean_t[:, None] - mean_c[None, :] + grand) ** 2)
    ss_rc = n_t * np.sum((mean_rc - mean_r[:, None] - mean_c[None, :] + grand) ** 2)
    residual = (
        values
        - mean_tr[:, :, None]
        - mean_tc[:, None, :]
        - mean_rc[None, :, :]
        + mean_t[:, None, None]
        + mean_r[None, :, None]
        + mean_c[None, None, :]
        - grand
    )
    ss_trc = np.sum(residual**2)
    return {
        "MS_T": float(ss_t / (n_t - 1)),
        "MS_R": float(ss_r / (n_r - 1)),
        "MS_C": float(ss_c / (n_c - 1)),
        "MS_TR": float(ss_tr / ((n_t - 1) * (n_r - 1))),
        "MS_TC": float(ss_tc / ((n_t - 1) * (n_c - 1))),
        "MS_RC": float(ss_rc / ((n_r - 1) * (n_c - 1))),
        "MS_TRC": float(ss_trc / ((n_t - 1) * (n_r - 1) * (n_c - 1))),
    }


def _two_way_mean_squares(values: FloatArray) -> tuple[float, float, float]:
    """(MS rows, MS columns, MS interaction) of a two-way layout with one observation per cell."""
    n_a, n_b = values.shape
    grand = values.mean()
    mean_a = values.mean(axis=1)
    mean_b = values.mean(axis=0)
    interaction = values - mean_a[:, None] - mean_b[None, :] + grand
    return (
        float(n_b * np.sum((mean_a - grand) ** 2) / (n_a - 1)),
        float(n_a * np.sum((mean_b - grand) ** 2) / (n_b - 1)),
        float(np.sum(interaction**2) / ((n_a - 1) * (n_b - 1))),
    )


def _dorfman_berbaum_metz(
    data: MrmcData, theta: FloatArray, leave_one_out: FloatArray, level: float
) -> tuple[dict[str, float], dict[str, float], tuple[MrmcAnalysis, MrmcAnalysis, MrmcAnalysis]]:
    """DBM analyses of pseudovalues with the Hillis et al. (2008) error terms (as JAFROC 4.2.1)."""
    n_modalities, n_readers = theta.shape
    pseudovalues = _pseudovalues(theta, leave_one_out)
    n_cases = pseudovalues.shape[2]
    mean_squares = _three_way_mean_squares(pseudovalues)
    ms = mean_squares
    components = {
        "var_R": (ms["MS_R"] - ms["MS_TR"] - ms["MS_RC"] + ms["MS_TRC"]) / (n_modalities * n_cases),
        "var_C": (ms["MS_C"] - ms["MS_TC"] - ms["MS_RC"] + ms["MS_TRC"]) / (n_modalities * n_readers),
        "var_TR": (ms["MS_TR"] - ms["MS_TRC"]) / n_cases,
        "var_TC": (ms["MS_TC"] - ms["MS_TRC"]) / n_readers,
        "var_RC": (ms["MS_RC"] - ms["MS_TRC"]) / n_modalities,
        "var_TRC_error": ms["MS_TRC"],
    }
    # The OR error covariances implied by the DBM components (Hillis et al. 2005, table I).
    components["cov3"] = components["var_C"] / n_cases
    components["cov2"] = (components["var_C"] + components["var_TC"]) / n_cases
    components["cov1"] = (components["var_C"] + components["var_RC"]) / n_cases
    components["var_error"] = (
        components["var_C"] + components["var_TC"] + components["var_RC"] + components["var_TRC_error"]
    ) / n_cases

    means = theta.mean(axis=1)
    effect = float(means[0] - means[1])
    scale = max(abs(ms["MS_TRC"]), abs(ms["MS_C"]), abs(ms["MS_R"]), 1e-300)
    df_interaction = float((n_modalities - 1) * (n_readers - 1))
    per_modality = [_two_way_mean_squares(pseudovalues[i]) for i in range(n_modalities)]
    reader_case_units = n_readers * n_cases

    rrrc_error = ms["MS_TR"] + max(ms["MS_TC"] - ms["MS_TRC"], 0.0)
    rrrc_modalities = []
    for i in range(n_modalities):
        ms_r_i, ms_c_i, ms_rc_i = per_modality[i]
        single_error = ms_r_i + max(ms_c_i - ms_rc_i, 0.0)
        rrrc_modalities.append(
            _modality_estimate(
                data.modalities[i],
                float(means[i]),
                single_error / reader_case_units,
                _hillis_ddf(single_error, ms_r_i, n_readers - 1.0),
                level,
                ms_reader=ms_r_i,
                ms_case=ms_c_i,
                ms_reader_case=ms_rc_i,
            )
        )
    rrrc = _test_of_effect(
        name="RRRC",
        effect=effect,
        ms_treatment=ms["MS_T"],
        error_term=rrrc_error,
        effect_variance=2.0 * rrrc_error / reader_case_units,
        df2=_hillis_ddf(rrrc_error, ms["MS_TR"], df_interaction),
        scale=scale,
        level=level,
        statistic_name="F",
        error_term_formula="MS(TR) + max(MS(TC) - MS(TRC), 0)",
        modalities=tuple(rrrc_modalities),
    )

    df_cases = float((n_modalities - 1) * (n_cases - 1))
    frrc_modalities = tuple(
        _modality_estimate(
            data.modalities[i],
            float(means[i]),
            per_modality[i][1] / reader_case_units,
            n_cases - 1.0,
            level,
        )
        for i in range(n_modalities)
    )
    frrc_readers = []
    for j in range(n_readers):
        _, _, ms_tc_j = _two_way_mean_squares(pseudovalues[:, j, :])
        frrc_readers.append(
            _reader_difference(
                data.readers[j],
                float(theta[0, j] - theta[1, j]),
                2.0 * ms_tc_j / n_cases,
                n_cases - 1.0,
                level,
            )
        )
    frrc = _test_of_effect(
        name="FRRC",
        effect=effect,
        ms_treatment=ms["MS_T"],
        error_term=ms["MS_TC"],
        effect_variance=2.0 * ms["MS_TC"] / reader_case_units,
        df2=df_cases,
        scale=scale,
        level=level,
        statistic_name="F",
        error_term_formula="MS(TC)",
        modalities=frrc_modalities,
        readers=tuple(frrc_readers),
    )

    rrfc_modalities = tuple(
        _modality_estimate(
            data.modalities[i],
            float(means[i]),
            per_modality[i][0] / reader_case_units,
            n_readers - 1.0,
            level,
            ms_reader=per_modality[i][0],
        )
        for i in range(n_modalities)
    )
    rrfc = _test_of_effect(
        name="RRFC",
        effect=effect,
        ms_treatment=ms["MS_T"],
        error_term=ms["MS_TR"],
        effect_variance=2.0 * ms["MS_TR"] / reader_case_units,
        df2=df_interaction,
        scale=scale,
        level=level,
        statistic_name="F",
        error_term_formula="MS(TR)",
        modalities=rrfc_modalities,
    )
    return mean_squares, components, (rrrc, frrc, rrfc)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _binary_threshold(data: MrmcData, threshold: float | None) -> float:
    if threshold is not None:
        value = float(threshold)
        if not math.isfinite(value):
            raise MrmcInputError("threshold must be a finite number")
        return value
    if np.all(np.isin(data.ratings, (0.0, 1.0))):
        return 1.0
    raise MrmcInputError(
        "sensitivity and specificity need a binary call: give threshold (positive call = rating >= "
        "threshold) or ratings that are already 0/1"
    )


def mrmc_compare(
    data: MrmcData | Iterable[Mapping[str, Any]],
    *,
    figure_of_merit: str = "auc",
    covariance: str = "jackknife",
    method: str = "or",
    threshold: float | None = None,
    level: float = 0.95,
    modality_order: Sequence[Any] | None = None,
    positive_label: Any = None,
) -> MrmcResult:
    """Compare two reading modalities (e.g. without vs with AI) in a fully crossed MRMC study.

    Parameters
    ----------
    data:
        An :class:`MrmcData`, or long-form readings: mappings with keys ``reader``, ``modality``,
        ``case``, ``truth`` (1 = condition present) and ``rating`` (higher = more confident the
        condition is present); the aliases in :data:`FIELD_ALIASES` are accepted.
    figure_of_merit:
        ``"auc"`` (empirical AUC), ``"sensitivity"`` or ``"specificity"`` of the binary call
        ``rating >= threshold``.
    covariance:
        OR only: ``"jackknife"`` (any figure of merit), ``"delong"`` or ``"unbiased"`` (AUC only).
        DBM always uses jackknife pseudovalues.
    method:
        ``"or"`` (Obuchowski-Rockette with Hillis ddf) or ``"dbm"`` (Dorfman-Berbaum-Metz with the
        Hillis 2008 error term).
    threshold:
        Binary metrics only; when omitted the ratings must already be 0/1.
    level:
        Confidence level of every interval.
    modality_order:
        The two modality labels in the order of the difference (effect = first - second).
    positive_label:
        Records only: the reference label that means "condition present" when ``truth`` holds
        labels (e.g. ``"neoplastic"``) rather than 0/1.

    Returns
    -------
    MrmcResult with RRRC, FRRC and RRFC analyses. Raises :class:`MrmcInputError` for data or
    options that cannot give an analysis (the message names the problem).
    """
    if figure_of_merit not in FIGURES_OF_MERIT:
        raise MrmcInputError(f"figure_of_merit must be one of {', '.join(FIGURES_OF_MERIT)}")
    if covariance not in COVARIANCE_METHODS:
        raise MrmcInputError(f"covariance must be one of {', '.join(COVARIANCE_METHODS)}")
    if method not in ANALYSIS_METHODS:
        raise MrmcInputError(f"method must be one of {', '.join(ANALYSIS_METHODS)}")
    if not 0.0 < level < 1.0:
        raise MrmcInputError(f"level must lie strictly between 0 and 1, got {level}")
    if method == "dbm" and covariance != "jackknife":
        raise MrmcInputError(
            "DBM analyses jackknife pseudovalues; use covariance='jackknife' with method='dbm'"
        )
    if covariance in ("delong", "unbiased") and figure_of_merit != "auc":
        raise MrmcInputError(f"the {covariance} covariance is defined for the empirical AUC only")

    if isinstance(data, MrmcData):
        study = data
        if modality_order is not None:
            order = _resolve_modality_order(study.modalities, modality_order)
            if order != [0, 1]:
                study = MrmcData(
                    readers=study.readers,
                    modalities=(study.modalities[1], study.modalities[0]),
                    cases=study.cases,
                    truth=study.truth,
                    ratings=study.ratings[::-1].copy(),
                )
    else:
        study = MrmcData.from_records(data, modality_order=modality_order, positive_label=positive_label)

    used_threshold = None if figure_of_merit == "auc" else _binary_threshold(study, threshold)
    foms = _figures_of_merit(study, figure_of_merit, math.nan if used_threshold is None else used_threshold)
    theta = foms.theta
    notes: list[str] = []
    if method == "or":
        if covariance == "jackknife":
            matrix = _jackknife_covariance(foms.leave_one_out)
        elif covariance == "delong":
            _, matrix = delong_covariance(study.truth, study.ratings.reshape(-1, study.n_cases))
        else:
            matrix = _unbiased_covariance(study.truth, study.ratings)
        covariances = _or_covariances(matrix, study.n_readers)
        mean_squares, components, (rrrc, frrc, rrfc) = _obuchowski_rockette(study, theta, covariances, level)
    else:
        mean_squares, components, (rrrc, frrc, rrfc) = _dorfman_berbaum_metz(
            study, theta, foms.leave_one_out, level
        )
    if figure_of_merit != "auc":
        informative = "positive" if figure_of_merit == "sensitivity" else "negative"
        notes.append(
            f"binary call: positive if rating >= {used_threshold:g}; jackknife over the "
            f"{foms.leave_one_out.shape[2]} truth-{informative} cases only (as MRMCaov)"
        )
    means = theta.mean(axis=1)
    return MrmcResult(
        method=method,
        figure_of_merit=figure_of_merit,
        covariance=covariance,
        threshold=used_threshold,
        level=level,
        modalities=tuple(str(label) for label in study.modalities),
        readers=tuple(str(label) for label in study.readers),
        n_cases=study.n_cases,
        n_positive=study.n_positive,
        n_negative=study.n_negative,
        n_jackknife_cases=int(foms.leave_one_out.shape[2]),
        figures_of_merit=tuple(tuple(float(value) for value in row) for row in theta),
        modality_means=tuple(float(value) for value in means),
        effect=float(means[0] - means[1]),
        effect_label=f"{study.modalities[0]} - {study.modalities[1]}",
        mean_squares=mean_squares,
        variance_components={name: float(value) for name, value in components.items()},
        rrrc=rrrc,
        frrc=frrc,
        rrfc=rrfc,
        notes=tuple(notes),
    )
