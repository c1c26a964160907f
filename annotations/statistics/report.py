"""One report of agreement (and, with a reference, diagnostic accuracy) for a ratings table.

Shared by the ``ratings_stats`` management command and the statistics API so that both return the
same JSON. Bootstrap intervals resample patients when the table has a patient per item, else items.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annotations.statistics import accuracy as accuracy_module
from annotations.statistics import agreement, resampled
from annotations.statistics.bootstrap import ResampledStatistic, cluster_bootstrap
from annotations.statistics.ratings import (
    MeasurementLevel,
    RatingRecord,
    RatingsTable,
    StatisticsInputError,
    canonical_value,
    ratings_table_from_records,
)
from annotations.statistics.results import jsonable

FloatArray = NDArray[np.float64]
# Kappa-type statistics and alpha need a categorical scale; above this many distinct values (e.g.
# raw probabilities) the items x categories tables would be huge and the numbers meaningless.
MAX_CATEGORIES = 101


@dataclass(frozen=True)
class ReportOptions:
    weights: agreement.WeightKind = "unweighted"
    weight_levels: agreement.WeightLevels = "declared"
    positive: str | None = None
    ai_rater: str | None = None
    level: float = 0.95
    bootstrap: int = 0
    seed: int | None = None
    calibration_bins: int = 10


def _bootstrap_statistics(
    table: RatingsTable, options: ReportOptions
) -> dict[str | tuple[str, ...], ResampledStatistic]:
    statistics: dict[str | tuple[str, ...], ResampledStatistic] = {}
    if table.n_categories <= MAX_CATEGORIES:
        _add_agreement_statistics(statistics, table, options)
    if options.positive is not None and table.references is not None:
        names, numerators, denominators = [], [], []
        for outcome in accuracy_module.reader_outcomes(table, options.positive):
            for measure, (numerator, denominator) in accuracy_module.accuracy_item_statistics(
                outcome, table.n_items
            ).items():
                names.append(f"{measure}:{outcome.rater}")
                numerators.append(numerator)
                denominators.append(denominator)
        # One matrix product per block for every reader's measures (they are all ratios of sums).
        statistics[tuple(names)] = partial(
            resampled.ratio_batch, np.column_stack(numerators), np.column_stack(denominators)
        )
    return statistics


def _add_agreement_statistics(
    statistics: dict[str | tuple[str, ...], ResampledStatistic], table: RatingsTable, options: ReportOptions
) -> None:
    counts = table.category_counts()
    statistics["fleiss_kappa"] = partial(resampled.fleiss_kappa_batch, counts)
    statistics["percent_agreement_mean_over_items"] = lambda w: resampled.percent_agreement_batch(counts, w)[
        0
    ]
    statistics["percent_agreement_pairable_values"] = lambda w: resampled.percent_agreement_batch(counts, w)[
        1
    ]
    if table.level in ("interval", "ratio"):
        values = table.numeric_categories()
    else:
        values = np.arange(table.n_categories, dtype=np.float64)
    statistics[f"krippendorff_alpha_{table.level}"] = partial(
        resampled.krippendorff_alpha_batch, counts, table.level, values
    )
    if options.ai_rater is not None:
        reference_codes = table.codes[table.rater_index(options.ai_rater)]
        for row, rater in enumerate(table.raters):
            if rater == options.ai_rater:
                continue
            statistics[f"kappa_vs_ai:{rater}"] = partial(
                _kappa_vs_reference, table.codes[row], reference_codes, table.n_categories, options
            )


def _kappa_vs_reference(
    codes_a: NDArray[np.int64],
    codes_b: NDArray[np.int64],
    n_categories: int,
    options: ReportOptions,
    resamples: FloatArray,
) -> FloatArray:
    return resampled.kappa_batch(
        codes_a,
        codes_b,
        n_categories,
        resamples,
        weights=options.weights,
        weight_levels=options.weight_levels,
    )


def agreement_section(table: RatingsTable, options: ReportOptions) -> dict[str, Any]:
    if table.n_raters < 2:
        raise StatisticsInputError(f"Agreement needs at least 2 raters; the ratings have {table.n_raters}.")
    if table.n_items < 2:
        raise StatisticsInputError(f"Agreement needs at least 2 items; the ratings have {table.n_items}.")
    if not np.any(table.codes >= 0):
        raise StatisticsInputError("All ratings are missing: there is nothing to compare.")
    section: dict[str, Any] = {
        "n_items": table.n_items,
        "n_raters": table.n_raters,
        "categories": list(table.categories),
        "categories_declared": table.categories_declared,
        "level_of_measurement": table.level,
        "n_missing_ratings": int((table.codes < 0).sum()),
    }
    if table.n_categories > MAX_CATEGORIES:
        section["reason"] = (
            f"{table.n_categories} distinct values: agreement statistics need a categorical scale of at most "
            f"{MAX_CATEGORIES} values; declare the scale or round the ratings."
        )
        return section
    section["percent_agreement"] = agreement.percent_agreement(table).to_dict()
    section["fleiss_kappa"] = agreement.fleiss_kappa(table, level=options.level).to_dict()
    section["pabak"] = agreement.pabak(table).to_dict()
    section["pairwise_kappa"] = agreement.pairwise_kappa_matrix(table).to_dict()
    if options.weights != "unweighted":
        section["pairwise_weighted_kappa"] = agreement.pairwise_kappa_matrix(
            table, weights=options.weights, weight_levels=options.weight_levels
        ).to_dict()
    if table.n_raters == 2:
        section["cohen_kappa"] = agreement.cohen_kappa(table, level=options.level).to_dict()
        if options.weights != "unweighted":
            section["weighted_cohen_kappa"] = agreement.cohen_kappa(
                table, weights=options.weights, weight_levels=options.weight_levels, level=options.level
            ).to_dict()
    if options.ai_rater is not None:
        section["kappa_vs_ai"] = [
            result.to_dict()
            for result in agreement.readers_vs_reference(
                table,
                options.ai_rater,
                weights=options.weights,
                weight_levels=options.weight_levels,
                level=options.level,
            )
        ]
    levels = ["nominal", table.level] if table.level != "nominal" else ["nominal"]
    section["krippendorff_alpha"] = {
        level: agreement.krippendorff_alpha(table, level).to_dict()  # type: ignore[arg-type]
        for level in levels
    }
    return section


def accuracy_section(table: RatingsTable, options: ReportOptions) -> dict[str, Any]:
    assert options.positive is not None
    readers = accuracy_module.reader_accuracy(
        table, options.positive, level=options.level, n_bins=options.calibration_bins
    )
    section: dict[str, Any] = {
        "positive": options.positive,
        "readers": [reader.to_dict() for reader in readers],
    }
    if options.ai_rater is not None:
        section["auc_vs_ai_paired_delong"] = accuracy_module.paired_auc_vs_reference(
            table, options.positive, options.ai_rater, level=options.level
        )
    return section


def ratings_report(table: RatingsTable, options: ReportOptions) -> dict[str, Any]:
    """The JSON-ready report: agreement always; accuracy when `positive` is set; bootstrap CIs on request."""
    if options.ai_rater is not None:
        table.rater_index(options.ai_rater)
    report: dict[str, Any] = {"agreement": agreement_section(table, options)}
    if options.positive is not None:
        report["accuracy"] = accuracy_section(table, options)
    elif table.references is not None:
        report["accuracy"] = {"reason": "Give the positive class (--positive) for diagnostic accuracy."}
    if options.bootstrap > 0:
        intervals = cluster_bootstrap(
            _bootstrap_statistics(table, options),
            clusters=table.patients,
            n_items=table.n_items,
            n_resamples=options.bootstrap,
            seed=options.seed,
            level=options.level,
        )
        report["bootstrap"] = {
            "resampled": "patients" if table.patients is not None else "items (no patient column)",
            "intervals": {name: interval.to_dict() for name, interval in intervals.items()},
        }
    return jsonable(report)


def _mrmc_rating(table: RatingsTable, value: str, positive: str) -> float:
    """A reading's MRMC score: the probability, the scale position towards the positive end, or the call."""
    if accuracy_module.is_probability_scale(table):
        return float(value)
    categories = table.categories
    if table.level != "nominal" and positive in (categories[0], categories[-1]):
        position = float(categories.index(value))
        return position if positive == categories[-1] else -position
    return 1.0 if value == positive else 0.0


def mrmc_section(records: list[RatingRecord], table: RatingsTable, options: ReportOptions) -> dict[str, Any]:
    """MRMC AUC comparison of the modalities (Obuchowski-Rockette, jackknife) via ``studies.mrmc``."""
    if options.positive is None or table.references is None:
        return {"reason": "MRMC needs a reference column and the positive class (--positive)."}
    try:
        from studies import mrmc
    except ImportError:
        return {"reason": "studies.mrmc is not available in this installation."}
    positive = canonical_value(options.positive)
    readings = [
        {
            "reader": record.rater,
            "modality": record.modality,
            "case": record.item,
            "truth": 1 if canonical_value(record.reference) == positive else 0,
            "rating": _mrmc_rating(table, canonical_value(record.value), positive),
        }
        for record in records
        if record.value is not None and record.reference is not None
    ]
    try:
        return mrmc.mrmc_compare(readings, figure_of_merit="auc", level=options.level).to_dict()
    except ValueError as error:
        return {"reason": str(error)}


def report_from_records(
    records: list[RatingRecord] | tuple[RatingRecord, ...],
    *,
    categories: list[str] | None,
    level_of_measurement: MeasurementLevel,
    options: ReportOptions,
) -> dict[str, Any]:
    """The report of long-form records; with a modality column, one report per modality plus MRMC."""
    rows = list(records)
    modalities = list(dict.fromkeys(r.modality for r in rows if r.modality is not None))
    if not modalities:
        table = ratings_table_from_records(rows, categories=categories, level=level_of_measurement)
        return ratings_report(table, options)
    if any(r.modality is None for r in rows):
        raise StatisticsInputError("Some rows have a modality and some do not: give every row one.")
    whole = ratings_table_from_records(
        [RatingRecord(f"{r.modality}\x1f{r.item}", r.rater, r.value, r.reference, r.patient) for r in rows],
        categories=categories,
        level=level_of_measurement,
    )
    by_modality = {}
    for modality in modalities:
        subset = [r for r in rows if r.modality == modality]
        table = ratings_table_from_records(
            subset, categories=categories or list(whole.categories), level=level_of_measurement
        )
        by_modality[modality] = ratings_report(table, options)
    return {"modalities": by_modality, "mrmc": jsonable(mrmc_section(rows, whole, options))}


def _number(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_report_table(report: dict[str, Any]) -> str:
    """A plain-text summary of a report (the JSON carries everything; this is for reading)."""
    if "modalities" in report:
        parts = [
            f"== modality {name} ==\n{format_report_table(sub)}" for name, sub in report["modalities"].items()
        ]
        mrmc = report["mrmc"]
        if "reason" in mrmc:
            parts.append(f"MRMC: {mrmc['reason']}")
        else:
            parts.append(
                "MRMC (Obuchowski-Rockette, jackknife, AUC): see the JSON output for every analysis."
            )
        return "\n".join(parts)
    lines: list[str] = []
    section = report["agreement"]
    scale = ", ".join(section["categories"][:12]) + (", ..." if len(section["categories"]) > 12 else "")
    lines.append(
        f"Agreement: {section['n_items']} items, {section['n_raters']} raters, "
        f"categories {scale} ({section['level_of_measurement']})"
    )
    if "reason" in section:
        lines.append(f"  {section['reason']}")
    if "percent_agreement" in section:
        percent = section["percent_agreement"]
        lines.append(f"  percent agreement, mean over items      {_number(percent['mean_over_items'])}")
        lines.append(f"  percent agreement, pairable values      {_number(percent['pairable_values'])}")
    for name in ("cohen_kappa", "weighted_cohen_kappa", "fleiss_kappa"):
        if name in section:
            result = section[name]
            lines.append(
                f"  {name:<38} {_number(result['kappa'])}  CI [{_number(result['ci_low'])}, "
                f"{_number(result['ci_high'])}]  z {_number(result['z'])}  p {_number(result['p_value'])}"
                + (f"  ({result['reason']})" if result.get("reason") else "")
            )
    if "fleiss_kappa" in section:
        for category in section["fleiss_kappa"]["per_category"]:
            lines.append(f"    category {category['category']:<29} {_number(category['kappa'])}")
    if "pabak" in section:
        lines.append(f"  {'PABAK':<38} {_number(section['pabak']['value'])}")
    if "pairwise_kappa" in section:
        lines.append(f"  {'mean pairwise kappa':<38} {_number(section['pairwise_kappa']['mean_kappa'])}")
    for level, result in section.get("krippendorff_alpha", {}).items():
        lines.append(f"  {'Krippendorff alpha (' + level + ')':<38} {_number(result['alpha'])}")
    for result in section.get("kappa_vs_ai", []):
        lines.append(f"  kappa {result['rater_a']} vs AI{'':<25} {_number(result['kappa'])}")
    accuracy = report.get("accuracy")
    if accuracy and "readers" in accuracy:
        lines.append(f"Accuracy vs reference (positive = {accuracy['positive']}):")
        lines.append("  rater            n     sens    spec    acc     PPV     NPV     F1      AUC")
        for reader in accuracy["readers"]:
            auc = reader["auc"]["auc"] if reader["auc"] else None
            lines.append(
                f"  {reader['rater']:<14} {reader['n_items']:>5}  "
                + "  ".join(
                    _number(reader[m]["value"])
                    for m in ("sensitivity", "specificity", "accuracy", "ppv", "npv")
                )
                + f"  {_number(reader['f1'])}  {_number(auc)}"
            )
    elif accuracy:
        lines.append(f"Accuracy: {accuracy['reason']}")
    if "bootstrap" in report:
        lines.append(f"Bootstrap ({report['bootstrap']['resampled']} resampled):")
        for name, interval in report["bootstrap"]["intervals"].items():
            lines.append(
                f"  {name:<38} {_number(interval['estimate'])}  [{_number(interval['ci_low'])}, "
                f"{_number(interval['ci_high'])}]"
            )
    for name, value in report.items():
        if name not in ("agreement", "accuracy", "bootstrap") and isinstance(value, dict):
            lines.append(f"{name}: {value.get('reason', 'see JSON output')}")
    return "\n".join(lines)
