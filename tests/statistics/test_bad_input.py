"""Bad input gives a StatisticsInputError that names the problem, or NaN with a reason: never a crash."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annotations.statistics import (
    RatingRecord,
    ReportOptions,
    StatisticsInputError,
    cohen_kappa,
    fleiss_kappa,
    format_report_table,
    krippendorff_alpha,
    pabak,
    parse_ratings_csv,
    ratings_report,
    ratings_table_from_matrix,
    ratings_table_from_records,
)


def test_too_few_raters_is_an_error_for_the_report() -> None:
    table = ratings_table_from_matrix([["a", "b", "a"]])
    with pytest.raises(StatisticsInputError, match="at least 2 raters"):
        ratings_report(table, ReportOptions())
    assert math.isnan(fleiss_kappa(table).kappa) and "2 raters" in fleiss_kappa(table).reason


def test_too_few_items_is_an_error_for_the_report_and_nan_for_kappa() -> None:
    table = ratings_table_from_matrix([["a"], ["b"]], categories=["a", "b"])
    with pytest.raises(StatisticsInputError, match="at least 2 items"):
        ratings_report(table, ReportOptions())
    result = cohen_kappa(table)
    assert math.isnan(result.kappa) and "at least 2" in result.reason


def test_a_single_category_gives_nan_with_a_reason() -> None:
    table = ratings_table_from_matrix([["a", "a", "a"], ["a", "a", "a"]])
    for result, reason in (
        (cohen_kappa(table), cohen_kappa(table).reason),
        (fleiss_kappa(table), fleiss_kappa(table).reason),
        (pabak(table), pabak(table).reason),
    ):
        assert reason, result
    assert math.isnan(krippendorff_alpha(table).alpha) and krippendorff_alpha(table).reason
    declared = ratings_table_from_matrix([["a", "a", "a"], ["a", "a", "a"]], categories=["a", "b"])
    assert math.isnan(cohen_kappa(declared).kappa) and "same category" in cohen_kappa(declared).reason


def test_all_missing_is_an_error() -> None:
    with pytest.raises(StatisticsInputError, match="All ratings are missing"):
        ratings_table_from_matrix([[None, None], [None, None]])
    declared = ratings_table_from_matrix([[None, None], [None, None]], categories=["a", "b"])
    with pytest.raises(StatisticsInputError, match="All ratings are missing"):
        ratings_report(declared, ReportOptions())


def test_unknown_categories_are_named() -> None:
    with pytest.raises(StatisticsInputError, match=r"outside the declared categories.*maybe"):
        ratings_table_from_matrix([["yes", "no"], ["maybe", "no"]], categories=["yes", "no"])


def test_numbers_match_the_declared_scale_however_they_are_written() -> None:
    table = ratings_table_from_matrix([["1.0", "2"], [1, "2.0"]], categories=[1, 2, 3])
    assert table.codes.tolist() == [[0, 1], [0, 1]]


def test_mismatched_references_are_an_error() -> None:
    records = [
        RatingRecord("f1", "r1", "neo", reference="neo"),
        RatingRecord("f1", "r2", "neo", reference="healthy"),
    ]
    with pytest.raises(StatisticsInputError, match="two different reference values"):
        ratings_table_from_records(records)


def test_reference_outside_the_categories_and_unknown_positive_are_errors() -> None:
    records = [
        RatingRecord("f1", "r1", "neo", reference="tumour"),
        RatingRecord("f2", "r1", "healthy", reference="healthy"),
        RatingRecord("f1", "r2", "neo", reference="tumour"),
        RatingRecord("f2", "r2", "neo", reference="healthy"),
    ]
    table = ratings_table_from_records(records)
    with pytest.raises(StatisticsInputError, match=r"Reference values outside the categories.*tumour"):
        ratings_report(table, ReportOptions(positive="neo"))
    good = ratings_table_from_records([RatingRecord(r.item, r.rater, r.value, "neo") for r in records])
    with pytest.raises(StatisticsInputError, match="positive class 'cancer'"):
        ratings_report(good, ReportOptions(positive="cancer"))


def test_no_positive_reference_gives_nan_sensitivity_with_a_reason() -> None:
    records = [
        RatingRecord(f"f{i}", r, v, reference="healthy")
        for i in range(3)
        for r, v in (("a", "neo"), ("b", "healthy"))
    ]
    report = ratings_report(ratings_table_from_records(records), ReportOptions(positive="neo"))
    reader = report["accuracy"]["readers"][0]
    assert reader["sensitivity"]["value"] is None and reader["sensitivity"]["reason"]
    assert reader["specificity"]["value"] == 0.0
    assert reader["auc"] is None and "AUC" in reader["reason"]


def test_a_rater_rating_an_item_twice_is_an_error() -> None:
    records = [RatingRecord("f1", "r1", "a"), RatingRecord("f1", "r1", "b")]
    with pytest.raises(StatisticsInputError, match="more than once"):
        ratings_table_from_records(records)


def test_ordinal_words_need_a_declared_order() -> None:
    with pytest.raises(StatisticsInputError, match="declare the categories"):
        ratings_table_from_matrix([["low", "high"], ["low", "mid"]], level="ordinal")


def test_interval_level_needs_numbers() -> None:
    table = ratings_table_from_matrix([["low", "high"], ["low", "high"]], level="interval")
    with pytest.raises(StatisticsInputError, match="numeric values"):
        krippendorff_alpha(table)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,rater\n1,a\n", "missing: value"),
        ("item,rater,value\n", "no rows"),
        ("item,rater,value\n1,,a\n", "no item or no rater"),
        ("item,rater,value\n1,a,b,c\n", "more fields"),
        ("", "missing"),
    ],
)
def test_malformed_csv_is_an_error(text: str, message: str) -> None:
    with pytest.raises(StatisticsInputError, match=message):
        parse_ratings_csv(text)


def test_unknown_ai_rater_is_an_error() -> None:
    table = ratings_table_from_matrix([["a", "b"], ["a", "b"]])
    with pytest.raises(StatisticsInputError, match="No rater 'robot'"):
        ratings_report(table, ReportOptions(ai_rater="robot"))


def test_bootstrap_needs_two_patients() -> None:
    records = [RatingRecord(f"f{i}", r, v, patient="p1") for i, v in enumerate("abab") for r in ("x", "y")]
    with pytest.raises(StatisticsInputError, match="at least 2 patients"):
        ratings_report(ratings_table_from_records(records), ReportOptions(bootstrap=10, seed=1))


def test_raw_probabilities_skip_agreement_with_a_reason_but_keep_accuracy() -> None:
    """A model's unrounded probabilities are hundreds of distinct values: no kappa over them, no crash."""
    rng = np.random.default_rng(1)
    records = [
        RatingRecord(
            str(item), rater, f"{rng.uniform():.6f}", "neo" if item % 2 else "healthy", f"p{item % 9}"
        )
        for item in range(150)
        for rater in ("model_a", "model_b")
    ]
    table = ratings_table_from_records(records, level="ratio")
    report = ratings_report(table, ReportOptions(positive="neo", bootstrap=20, seed=1))
    assert "fleiss_kappa" not in report["agreement"] and "categorical scale" in report["agreement"]["reason"]
    assert report["accuracy"]["readers"][0]["brier_score"] is not None
    assert "sensitivity:model_a" in report["bootstrap"]["intervals"]
    assert "fleiss_kappa" not in report["bootstrap"]["intervals"]
    assert "categorical scale" in format_report_table(report)
