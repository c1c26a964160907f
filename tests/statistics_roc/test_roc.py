"""Empirical AUC, DeLong CI and paired test, bootstrap CI: published values and properties.

Every ``auc_*.json`` and ``delong_*.json`` case in ../shared/stats/cases is reproduced within its
own tolerance; the expected values come from the pROC test-suite (Robin et al. 2011, BMC
Bioinformatics 12:77), whose DeLong implementation follows DeLong et al. (1988).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.statistics.roc import (
    RocInputError,
    auc,
    auc_bootstrap_ci,
    auc_delong,
    delong_covariance,
    delong_paired_test,
    placement_values,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = REPO_ROOT.parent / "shared" / "stats" / "cases"
ROC_CASES = sorted([*CASES_DIR.glob("auc_*.json"), *CASES_DIR.glob("delong_*.json")])


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _assert_close(observed: Any, expected: Any, tolerance: float, label: str) -> None:
    observed_values = np.atleast_1d(np.asarray(observed, dtype=float))
    expected_values = np.atleast_1d(np.asarray(expected, dtype=float))
    assert observed_values.shape == expected_values.shape, label
    # A hair of slack over the stated tolerance absorbs binary rounding of the printed decimals.
    allowed = tolerance + 1e-13 * np.maximum(1.0, np.abs(expected_values))
    difference = np.abs(observed_values - expected_values)
    assert np.all(difference <= allowed), (
        f"{label}: got {observed_values}, expected {expected_values} +/- {tolerance}"
    )


def test_the_shared_roc_cases_are_present() -> None:
    assert CASES_DIR.is_dir(), f"{CASES_DIR} is missing: the validation cases must sit beside the repository"
    assert len(ROC_CASES) >= 5


def _observed_for_case(case: dict[str, Any], key: str) -> Any:
    """The platform's value for one expected key of a case file (KeyError for an unknown key)."""
    truth = case["data"]["reference_standard"]
    scores = case["data"]["scores"]
    parameters = case["parameters"]
    metric = case["metric"]
    if metric == "roc_auc + delong_ci":
        if key.startswith("auc_"):
            return auc(truth, scores[key.removeprefix("auc_")])
        if key.endswith("_delong_ci95"):
            result = auc_delong(truth, scores[key.removesuffix("_delong_ci95")], level=0.95)
            return [result.ci_low, result.ci_high]
    if metric == "delong_paired_auc_test":
        test = delong_paired_test(
            truth, scores[parameters["curve1"]], scores[parameters["curve2"]], level=parameters["conf_level"]
        )
        values = {"z": test.z, "p_two_sided": test.p_value, "diff_ci95": [test.ci_low, test.ci_high]}
        return values[key]
    if metric == "roc_auc_bootstrap_ci" and key == "ci95":
        assert "stratified" in parameters["resampling"]
        return list(
            auc_bootstrap_ci(
                truth,
                scores[parameters["score"]],
                n_boot=parameters["n_boot"],
                level=parameters["conf_level"],
                seed=20240501,
                stratified=True,
            )
        )
    raise KeyError(f"{case['id']}: no rule for expected value {key!r} of metric {metric!r}")


@pytest.mark.parametrize("case_path", ROC_CASES, ids=[path.stem for path in ROC_CASES])
def test_published_roc_case(case_path: Path) -> None:
    """pROC test-suite values (source and tolerance in each file's ``source`` and ``expected``)."""
    case = _load(case_path)
    assert case["expected"], case["id"]
    for key, expectation in case["expected"].items():
        observed = _observed_for_case(case, key)
        _assert_close(observed, expectation["value"], expectation["tolerance"], f"{case['id']}:{key}")


def test_delong_cis_of_the_other_asah_markers_match_the_independent_recomputation() -> None:
    """The case file's ``also_recomputed`` DeLong CIs for wfns and s100b (pROC semantics)."""
    case = _load(CASES_DIR / "auc_delong_ci_pROC_aSAH.json")
    truth = case["data"]["reference_standard"]
    for name in ("wfns", "s100b"):
        result = auc_delong(truth, case["data"]["scores"][name])
        _assert_close(
            [result.ci_low, result.ci_high], case["also_recomputed"][f"{name}_delong_ci95"], 1e-9, name
        )


def test_bootstrap_is_reproducible_and_both_schemes_cover_the_estimate() -> None:
    case = _load(CASES_DIR / "auc_bootstrap_ci_pROC_aSAH_ndka_statistical.json")
    truth = case["data"]["reference_standard"]
    scores = case["data"]["scores"]["ndka"]
    first = auc_bootstrap_ci(truth, scores, n_boot=500, seed=7)
    assert first == auc_bootstrap_ci(truth, scores, n_boot=500, seed=7)
    assert first != auc_bootstrap_ci(truth, scores, n_boot=500, seed=8)
    estimate = auc(truth, scores)
    for stratified in (True, False):
        low, high = auc_bootstrap_ci(truth, scores, n_boot=1000, seed=3, stratified=stratified)
        assert low < estimate < high
        assert high - low == pytest.approx(0.2214, abs=0.03)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@st.composite
def labelled_scores(draw: st.DrawFn, max_cases: int = 30) -> tuple[np.ndarray, np.ndarray]:
    n_positive = draw(st.integers(2, max_cases // 2))
    n_negative = draw(st.integers(2, max_cases // 2))
    truth = np.array([1] * n_positive + [0] * n_negative)
    order = draw(st.permutations(range(truth.size)))
    scores = draw(st.lists(st.integers(1, 6), min_size=truth.size, max_size=truth.size))
    return truth[list(order)], np.asarray(scores, dtype=float)


def _brute_force_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    positives = scores[truth == 1][:, None]
    negatives = scores[truth == 0][None, :]
    return float(np.mean((positives > negatives) + 0.5 * (positives == negatives)))


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_auc_is_the_mann_whitney_probability(data: tuple[np.ndarray, np.ndarray]) -> None:
    truth, scores = data
    assert auc(truth, scores) == pytest.approx(_brute_force_auc(truth, scores), abs=1e-12)
    assert auc(truth, scores) + auc(truth, -scores) == pytest.approx(1.0, abs=1e-12)
    # A strictly increasing transform keeps every comparison, hence the AUC.
    assert auc(truth, np.exp(scores / 3.0)) == pytest.approx(auc(truth, scores), abs=1e-12)
    assert auc(truth.astype(bool), scores) == pytest.approx(auc(truth, scores), abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.floats(-5, 5))
def test_a_perfect_separator_has_auc_one_and_its_mirror_zero(n_pos: int, n_neg: int, shift: float) -> None:
    truth = np.array([0] * n_neg + [1] * n_pos)
    scores = np.concatenate([np.linspace(-2, -1, n_neg), np.linspace(1, 2, n_pos)]) + shift
    assert auc(truth, scores) == 1.0
    assert auc(truth, -scores) == 0.0


@settings(max_examples=50, deadline=None)
@given(labelled_scores(), st.integers(2, 4), st.randoms(use_true_random=False))
def test_delong_covariance_is_symmetric_psd_and_matches_single_curves(
    data: tuple[np.ndarray, np.ndarray], k: int, random: Any
) -> None:
    truth, first = data
    rows = [first] + [np.asarray([random.randint(1, 6) for _ in first], dtype=float) for _ in range(k - 1)]
    aucs, covariance = delong_covariance(truth, np.vstack(rows))
    assert covariance.shape == (k, k)
    np.testing.assert_allclose(covariance, covariance.T, atol=1e-15)
    assert np.linalg.eigvalsh(covariance).min() >= -1e-12
    for index, row in enumerate(rows):
        single = auc_delong(truth, row)
        assert aucs[index] == pytest.approx(single.auc, abs=1e-12)
        assert covariance[index, index] == pytest.approx(single.se**2, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labelled_scores())
def test_placements_average_to_the_auc(data: tuple[np.ndarray, np.ndarray]) -> None:
    truth, scores = data
    aucs, positive, negative = placement_values(truth, scores)
    assert positive.mean() == pytest.approx(aucs[0], abs=1e-12)
    assert negative.mean() == pytest.approx(aucs[0], abs=1e-12)
    assert positive.shape == (1, int(truth.sum())) and negative.shape == (1, int((truth == 0).sum()))


@settings(max_examples=40, deadline=None)
@given(labelled_scores(), st.randoms(use_true_random=False))
def test_paired_test_is_antisymmetric(data: tuple[np.ndarray, np.ndarray], random: Any) -> None:
    truth, first = data
    second = np.asarray([random.randint(1, 6) for _ in first], dtype=float)
    forward = delong_paired_test(truth, first, second)
    backward = delong_paired_test(truth, second, first)
    assert forward.difference == pytest.approx(-backward.difference, abs=1e-15)
    assert forward.se == pytest.approx(backward.se, abs=1e-15)
    if math.isnan(forward.p_value):
        assert forward.reason and math.isnan(backward.p_value)
    else:
        assert forward.p_value == pytest.approx(backward.p_value, abs=1e-12)
        assert forward.z == pytest.approx(-backward.z, abs=1e-12)


def test_identical_curves_give_no_difference_with_a_reason() -> None:
    truth = [0, 0, 1, 1, 0, 1]
    scores = [1, 2, 3, 4, 2, 5]
    result = delong_paired_test(truth, scores, scores)
    assert (result.difference, result.se, result.z, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert "identical" in result.reason
    assert result.to_dict()["p_value"] == 1.0


def test_results_serialise_to_plain_dicts() -> None:
    result = auc_delong([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    payload = result.to_dict()
    assert payload["auc"] == 0.75 and payload["n_positive"] == 2 and payload["method"] == "delong"
    assert json.loads(json.dumps(payload))["ci_low"] == pytest.approx(result.ci_low)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "no negative"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "no positive"),
        ([0, 1, 1], [0.1, 0.2], "3 cases but scores have 2"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "NaN"),
        ([0, 1, 1], [0.1, float("inf"), 0.3], "infinite"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
        (["no", "yes", "yes"], [0.1, 0.2, 0.3], "0/1"),
        ([], [], "empty"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], "one-dimensional"),
        ([0, 1, 1], ["a", "b", "c"], "numeric"),
    ],
)
def test_bad_input_raises_a_clear_error(truth: Any, scores: Any, message: str) -> None:
    for call in (auc, auc_delong, auc_bootstrap_ci):
        with pytest.raises(RocInputError, match=message):
            call(truth, scores)


def test_paired_test_rejects_mismatched_second_curve() -> None:
    with pytest.raises(RocInputError, match="4 cases but scores have 3"):
        delong_paired_test([0, 0, 1, 1], [1, 2, 3, 4], [1, 2, 3])


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_confidence_level_must_be_a_probability(level: float) -> None:
    with pytest.raises(RocInputError, match="level"):
        auc_delong([0, 1, 0, 1], [1, 2, 3, 4], level=level)
    with pytest.raises(RocInputError, match="level"):
        auc_bootstrap_ci([0, 1, 0, 1], [1, 2, 3, 4], level=level)


def test_bootstrap_needs_replicates() -> None:
    with pytest.raises(RocInputError, match="n_boot"):
        auc_bootstrap_ci([0, 1, 0, 1], [1, 2, 3, 4], n_boot=0)


def test_error_class_is_a_value_error() -> None:
    assert issubclass(RocInputError, ValueError)
