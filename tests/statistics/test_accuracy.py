"""Diagnostic accuracy (Wilson CIs, Brier, calibration, per patient) and the patient bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

from annotations.statistics import (
    RatingRecord,
    ReportOptions,
    binary_accuracy,
    ratings_report,
    ratings_table_from_records,
    wilson_proportion,
)
from annotations.statistics.bootstrap import cluster_item_weights


def test_wilson_interval_matches_the_closed_form() -> None:
    """Wilson (1927) score interval for 8/10 at 95 %, from the closed form: (0.4902, 0.9433)."""
    result = wilson_proportion(8, 10)
    assert result.value == 0.8
    assert (result.ci_low, result.ci_high) == pytest.approx((0.4902, 0.9433), abs=5e-5)


def test_binary_accuracy_counts_and_measures() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    call = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    result = binary_accuracy(truth, call, rater="r")
    assert (result.true_positive, result.false_negative, result.false_positive, result.true_negative) == (
        3,
        1,
        1,
        5,
    )
    assert result.sensitivity.value == 0.75 and result.specificity.value == pytest.approx(5 / 6)
    assert result.ppv.value == 0.75 and result.npv.value == pytest.approx(5 / 6)
    assert result.accuracy.value == 0.8
    assert result.f1 == pytest.approx(f1_score(truth, call))
    assert result.auc is not None and result.auc["auc"] == pytest.approx(roc_auc_score(truth, call))


def test_brier_calibration_and_per_patient_for_probabilities() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.uniform(size=200)
    truth = rng.uniform(size=200) < probabilities
    patients = [f"p{i % 7}" for i in range(200)]
    result = binary_accuracy(
        truth,
        probabilities >= 0.5,
        probabilities=probabilities,
        scores=probabilities,
        score_kind="probability",
        patients=patients,
    )
    assert result.brier_score == pytest.approx(brier_score_loss(truth, probabilities))
    assert result.calibration is not None and sum(result.calibration.counts) == 200
    assert len(result.calibration.counts) == len(result.calibration.mean_predicted)
    assert result.per_patient is not None and sum(result.per_patient.n_items) == 200
    assert result.per_patient.minimum <= result.per_patient.median <= result.per_patient.maximum
    assert result.auc is not None and result.auc["auc"] == pytest.approx(roc_auc_score(truth, probabilities))


def test_the_bootstrap_resamples_whole_patients() -> None:
    clusters = ["p1", "p1", "p1", "p2", "p3", "p3"]
    weights, n_clusters = cluster_item_weights(clusters, 6, 200, seed=5)
    assert n_clusters == 3
    # every item of a patient is drawn as often as its patient
    assert np.all(weights[:, 0] == weights[:, 1]) and np.all(weights[:, 1] == weights[:, 2])
    assert np.all(weights[:, 4] == weights[:, 5])
    assert np.all(weights[:, [0, 3, 4]].sum(axis=1) == 3)
    again, _ = cluster_item_weights(clusters, 6, 200, seed=5)
    assert np.array_equal(weights, again)


def _probability_records() -> list[RatingRecord]:
    rng = np.random.default_rng(11)
    records = []
    for item in range(60):
        truth = "neo" if item % 3 == 0 else "healthy"
        for rater in ("r1", "r2", "ai"):
            noisy = (0.7 if truth == "neo" else 0.3) + rng.normal(0, 0.2)
            value = round(float(np.clip(noisy, 0, 1)), 1)
            records.append(RatingRecord(str(item), rater, str(value), truth, f"p{item % 12}"))
    return records


def test_probability_ratings_report_brier_and_paired_delong_against_the_ai() -> None:
    table = ratings_table_from_records(_probability_records(), level="ratio")
    report = ratings_report(table, ReportOptions(positive="neo", ai_rater="ai", bootstrap=50, seed=2))
    readers = {reader["rater"]: reader for reader in report["accuracy"]["readers"]}
    assert readers["r1"]["auc_score"] == "probability"
    assert 0 <= readers["r1"]["brier_score"] <= 1
    assert set(report["accuracy"]["auc_vs_ai_paired_delong"]) == {"r1", "r2"}
    interval = report["bootstrap"]["intervals"]["sensitivity:r1"]
    assert interval["ci_low"] <= interval["estimate"] <= interval["ci_high"]
    assert interval["n_clusters"] == 12
    assert report["bootstrap"]["resampled"] == "patients"


def test_the_same_seed_gives_the_same_intervals() -> None:
    table = ratings_table_from_records(_probability_records(), level="ratio")
    first = ratings_report(table, ReportOptions(positive="neo", bootstrap=30, seed=7))["bootstrap"]
    second = ratings_report(table, ReportOptions(positive="neo", bootstrap=30, seed=7))["bootstrap"]
    assert first == second
