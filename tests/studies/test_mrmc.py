"""MRMC (Obuchowski-Rockette, Dorfman-Berbaum-Metz) against published printouts, plus properties.

Every ``mrmc_*.json`` case in ../shared/stats/cases (Van Dyke et al. 1993 cine-MRI data, 5 readers x
114 cases x 2 modalities) is reproduced within its own tolerance; the values come from OR-DBM MRMC
2.51 (University of Iowa), JAFROC 4.2.1 and MRMCaov (see each file's ``source``). The Iowa and
JAFROC printouts in ../shared/stats/sources are checked line by line below, to their printed digits.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studies.mrmc import MrmcData, MrmcInputError, MrmcResult, mrmc_compare, read_mrmc_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
STATS_DIR = REPO_ROOT.parent / "shared" / "stats"
CASES_DIR = STATS_DIR / "cases"
MRMC_CASES = sorted(CASES_DIR.glob("mrmc_*.json"))
VANDYKE_CSV = CASES_DIR / "vandyke1993_data.csv"


def _assert_close(observed: Any, expected: Any, tolerance: float, label: str) -> None:
    observed_values = np.atleast_1d(np.asarray(observed, dtype=float))
    expected_values = np.atleast_1d(np.asarray(expected, dtype=float))
    assert observed_values.shape == expected_values.shape, label
    # A hair of slack over the stated tolerance absorbs binary rounding of the printed decimals.
    allowed = tolerance + 1e-12 * np.maximum(1.0, np.abs(expected_values))
    difference = np.abs(observed_values - expected_values)
    assert np.all(difference <= allowed), (
        f"{label}: got {observed_values}, expected {expected_values} +/- {tolerance}"
    )


@pytest.fixture(scope="module")
def vandyke() -> MrmcData:
    assert VANDYKE_CSV.is_file(), (
        f"{VANDYKE_CSV} is missing: the validation cases must sit beside the repository"
    )
    return read_mrmc_csv(VANDYKE_CSV)


def test_the_shared_mrmc_cases_are_present() -> None:
    assert CASES_DIR.is_dir(), f"{CASES_DIR} is missing: the validation cases must sit beside the repository"
    assert len(MRMC_CASES) >= 5


# ---------------------------------------------------------------------------------------------
# Case files
# ---------------------------------------------------------------------------------------------


def _options_for_case(case: dict[str, Any]) -> dict[str, Any]:
    """mrmc_compare options from a case file's ``metric`` and ``parameters`` (fails when unknown)."""
    parameters = case["parameters"]
    options: dict[str, Any] = {
        "method": {"mrmc_dbm": "dbm", "mrmc_obuchowski_rockette": "or"}[case["metric"]]
    }
    figure = parameters["figure_of_merit"].lower()
    if "sensitivity" in figure or "specificity" in figure:
        options["figure_of_merit"] = "sensitivity" if "sensitivity" in figure else "specificity"
        match = re.search(r"rating\s*>=\s*([0-9.]+)", parameters["binary_rule"])
        assert match, parameters
        options["threshold"] = float(match.group(1))
    else:
        assert "auc" in figure, figure
        options["figure_of_merit"] = "auc"
    covariance = parameters.get("covariance", "jackknife").lower()
    options["covariance"] = next(name for name in ("jackknife", "delong", "unbiased") if name in covariance)
    options["level"] = parameters.get("conf_level", 0.95)
    return options


def _modality_index(key: str) -> int:
    return int(key[-1]) - 1


def _observed(result: MrmcResult, key: str, expected: Any) -> Any:
    """The platform's value for one expected key (KeyError for a key without a rule)."""
    analyses = {"RRRC": result.rrrc, "FRRC": result.frrc, "RRFC": result.rrfc}
    if re.fullmatch(r"reader_(auc|sens)_modality[12]", key):
        return result.figures_of_merit[_modality_index(key)]
    if re.fullmatch(r"mean_auc_modality[12]", key):
        return result.modality_means[_modality_index(key)]
    if key == "auc_difference_1_minus_2":
        return result.effect
    if key.startswith("MS_"):
        return result.mean_squares[key]
    if key in ("var_R", "var_TR", "var_error", "cov1", "cov2", "cov3"):
        return result.variance_components[key]
    if re.fullmatch(r"single_modality[12]", key):
        single = result.rrrc.modalities[_modality_index(key)]
        if len(expected) == 7:  # MRMCaov: Estimate, MS(R), Cov2, StdErr, df, CI lower, CI upper
            return [
                single.estimate,
                single.ms_reader,
                single.cov2,
                single.se,
                single.df,
                single.ci_low,
                single.ci_high,
            ]
        assert len(expected) == 5  # Estimate, StdErr, df, CI lower, CI upper
        return [single.estimate, single.se, single.df, single.ci_low, single.ci_high]
    prefix, _, rest = key.partition("_")
    analysis = analyses[prefix]
    if re.fullmatch(r"single_modality[12]", rest):  # Iowa: StdErr, df, CI lower, CI upper
        single = analysis.modalities[_modality_index(rest)]
        return [single.se, single.df, single.ci_low, single.ci_high]
    values = {
        "F": analysis.statistic,
        "F_RJafroc_precision": analysis.statistic,
        "X2": analysis.statistic,
        "ddf": analysis.df2,
        "df2": analysis.df2,
        "p": analysis.p_value,
        "p_RJafroc": analysis.p_value,
        "diff": analysis.effect,
        "diff_se": analysis.se,
        "diff_ci95": [analysis.ci_low, analysis.ci_high],
        "t": analysis.t,
    }
    return values[rest]


@pytest.mark.parametrize("case_path", MRMC_CASES, ids=[path.stem for path in MRMC_CASES])
def test_published_mrmc_case(case_path: Path) -> None:
    """Van Dyke (1993) values from OR-DBM MRMC 2.51, JAFROC 4.2.1 and MRMCaov (see each ``source``)."""
    case = json.loads(case_path.read_text(encoding="utf-8"))
    columns = case["data"]["columns"]
    records = [dict(zip(columns, row, strict=True)) for row in case["data"]["records"]]
    result = mrmc_compare(records, **_options_for_case(case))
    if result.figure_of_merit == "sensitivity":
        assert result.n_jackknife_cases == 45  # truth-positive cases only, as MRMCaov
    assert case["expected"], case["id"]
    for key, expectation in case["expected"].items():
        observed = _observed(result, key, expectation["value"])
        _assert_close(observed, expectation["value"], expectation["tolerance"], f"{case['id']}:{key}")


def test_binary_sensitivity_jackknife_over_all_cases_would_differ_as_the_case_file_explains() -> None:
    """The case's discrepancy note: jackknifing all 114 cases scales the covariances by (113/114)/(44/45)."""
    case = json.loads((CASES_DIR / "mrmc_vandyke1993_OR_jackknife_binary_sensitivity.json").read_text())
    columns = case["data"]["columns"]
    records = [dict(zip(columns, row, strict=True)) for row in case["data"]["records"]]
    result = mrmc_compare(records, figure_of_merit="sensitivity", threshold=3)
    all_cases = case["discrepancy_note"]["jackknife_over_all_114_cases"]
    scaled = result.variance_components["var_error"] * (113 / 114) / (44 / 45)
    assert scaled == pytest.approx(all_cases["var_error"], abs=1e-12)


def test_csv_and_case_records_give_the_same_study(vandyke: MrmcData) -> None:
    case = json.loads((CASES_DIR / "mrmc_vandyke1993_OR_jackknife_empirical_auc.json").read_text())
    columns = case["data"]["columns"]
    from_json = MrmcData.from_records(dict(zip(columns, row, strict=True)) for row in case["data"]["records"])
    assert [str(label) for label in from_json.readers] == [str(label) for label in vandyke.readers]
    assert [str(label) for label in from_json.cases] == [str(label) for label in vandyke.cases]
    np.testing.assert_array_equal(from_json.ratings, vandyke.ratings)
    np.testing.assert_array_equal(from_json.truth, vandyke.truth)
    assert (vandyke.n_readers, vandyke.n_cases, vandyke.n_positive, vandyke.n_negative) == (5, 114, 45, 69)


# ---------------------------------------------------------------------------------------------
# The Iowa OR-DBM MRMC 2.51 printout (sources/Iowa_VanDyke_ORDBM_output.txt), to its printed digits
# ---------------------------------------------------------------------------------------------


def _printed(value: float, observed: float | None, decimals: int, label: str) -> None:
    assert observed is not None, label
    assert abs(observed - value) <= 0.5 * 10.0**-decimals + 1e-12, f"{label}: got {observed}, printed {value}"


def test_iowa_printout_headline(vandyke: MrmcData) -> None:
    """F(1, 15.26) = 4.46, p = 0.0517, difference -0.0438, CI (-0.0880, 0.0004)."""
    result = mrmc_compare(vandyke, method="or", covariance="jackknife")
    _printed(4.46, result.rrrc.statistic, 2, "F")
    _printed(15.26, result.rrrc.df2, 2, "ddf")
    _printed(0.0517, result.rrrc.p_value, 4, "p")
    _printed(-0.0438, result.effect, 4, "difference")
    _printed(-0.0880, result.rrrc.ci_low, 4, "CI low")
    _printed(0.0004, result.rrrc.ci_high, 4, "CI high")
    _printed(0.00107626, result.rrrc.error_term, 8, "error term")
    _printed(-2.11, result.rrrc.t, 2, "t")
    assert result.effect_label == "1 - 2"


def test_iowa_printout_anova_and_variance_components(vandyke: MrmcData) -> None:
    result = mrmc_compare(vandyke, method="or")
    for key, value in {"MS_T": 0.00479617, "MS_R": 0.00383620, "MS_TR": 0.00055103}.items():
        _printed(value, result.mean_squares[key], 8, key)
    for modality, value in zip(result.rrrc.modalities, (0.00308263, 0.00130460), strict=True):
        _printed(value, modality.ms_reader, 8, "MS(R) per treatment")
    printed = {"var_R": 0.00153500, "var_TR": 0.00020040, "cov1": 0.00034661, "cov2": 0.00034407}
    printed |= {"cov3": 0.00023903, "var_error": 0.00080229}
    for key, value in printed.items():
        _printed(value, result.variance_components[key], 8, key)
    correlations = {"cov1": 0.43203138, "cov2": 0.42886683, "cov3": 0.29793328}
    for key, value in correlations.items():
        correlation = result.variance_components[key] / result.variance_components["var_error"]
        _printed(value, correlation, 8, f"{key} correlation")
    dbm = mrmc_compare(vandyke, method="dbm")
    dbm_printed = {"var_R": 0.00153500, "var_C": 0.02724923, "var_TR": 0.00020040}
    dbm_printed |= {"var_TC": 0.01197530, "var_RC": 0.01226473, "var_TRC_error": 0.03997160}
    for key, value in dbm_printed.items():
        _printed(value, dbm.variance_components[key], 8, f"DBM {key}")


def test_iowa_printout_random_readers_random_cases(vandyke: MrmcData) -> None:
    analysis = mrmc_compare(vandyke).rrrc
    _printed(0.02075, analysis.se, 5, "StdErr")
    _printed(-0.08796, analysis.ci_low, 5, "CI low")
    _printed(0.00036, analysis.ci_high, 5, "CI high")
    printed = [
        (0.89703704, 0.03317360, 12.74, 0.82522360, 0.96885048, 0.00048396),
        (0.94083736, 0.02156637, 12.71, 0.89413783, 0.98753689, 0.00020419),
    ]
    for single, (estimate, se, df, low, high, cov2) in zip(analysis.modalities, printed, strict=True):
        _printed(estimate, single.estimate, 8, "AUC")
        _printed(se, single.se, 8, "StdErr")
        _printed(df, single.df, 2, "DF")
        _printed(low, single.ci_low, 8, "CI low")
        _printed(high, single.ci_high, 8, "CI high")
        _printed(cov2, single.cov2, 8, "Cov2")


def test_iowa_printout_fixed_readers_random_cases(vandyke: MrmcData) -> None:
    analysis = mrmc_compare(vandyke).frrc
    assert analysis.statistic_name == "chi-square" and analysis.df2 is None
    _printed(5.47595, analysis.statistic, 5, "X2")
    _printed(0.0193, analysis.p_value, 4, "p")
    _printed(0.01872, analysis.se, 5, "StdErr")
    _printed(-2.34, analysis.t, 2, "z")
    _printed(-0.08049, analysis.ci_low, 5, "CI low")
    _printed(-0.00711, analysis.ci_high, 5, "CI high")
    singles = [
        (0.02428971, 0.84943008, 0.94464399, 0.00101410, 0.00048396),
        (0.01677632, 0.90795637, 0.97371835, 0.00059047, 0.00020419),
    ]
    for single, (se, low, high, var_error, cov2) in zip(analysis.modalities, singles, strict=True):
        _printed(se, single.se, 8, "StdErr")
        _printed(low, single.ci_low, 8, "CI low")
        _printed(high, single.ci_high, 8, "CI high")
        _printed(var_error, single.var_error, 8, "Var(Error)")
        _printed(cov2, single.cov2, 8, "Cov2")
    readers = [
        (-0.02818, 0.02551, -1.10, 0.2693, -0.07818, 0.02182),
        (-0.04654, 0.02630, -1.77, 0.0768, -0.09809, 0.00501),
        (-0.01787, 0.03121, -0.57, 0.5668, -0.07904, 0.04330),
        (-0.02625, 0.01729, -1.52, 0.1290, -0.06014, 0.00764),
        (-0.10016, 0.04406, -2.27, 0.0230, -0.18651, -0.01381),
    ]
    assert len(analysis.readers) == len(readers)
    for reader, (difference, se, z, p, low, high) in zip(analysis.readers, readers, strict=True):
        _printed(difference, reader.difference, 5, f"reader {reader.reader} difference")
        _printed(se, reader.se, 5, "StdErr")
        _printed(z, reader.statistic, 2, "z")
        _printed(p, reader.p_value, 4, "p")
        _printed(low, reader.ci_low, 5, "CI low")
        _printed(high, reader.ci_high, 5, "CI high")


def test_iowa_printout_random_readers_fixed_cases(vandyke: MrmcData) -> None:
    analysis = mrmc_compare(vandyke).rrfc
    _printed(8.70, analysis.statistic, 2, "F")
    assert analysis.df2 == 4
    _printed(0.0420, analysis.p_value, 4, "p")
    _printed(0.01485, analysis.se, 5, "StdErr")
    _printed(-2.95, analysis.t, 2, "t")
    _printed(-0.08502, analysis.ci_low, 5, "CI low")
    _printed(-0.00258, analysis.ci_high, 5, "CI high")
    singles = [(0.02482994, 0.82809808, 0.96597599), (0.01615303, 0.89598936, 0.98568536)]
    for single, (se, low, high) in zip(analysis.modalities, singles, strict=True):
        assert single.df == 4
        _printed(se, single.se, 8, "StdErr")
        _printed(low, single.ci_low, 8, "CI low")
        _printed(high, single.ci_high, 8, "CI high")


# ---------------------------------------------------------------------------------------------
# The JAFROC 4.2.1 DBM printout (sources/JAFROC_VanDykeROC_output.txt). JAFROC computes in single
# precision (its reader AUCs differ from double precision in the 7th-8th digit), so values are
# compared to 5e-6 as in the DBM case file.
# ---------------------------------------------------------------------------------------------

JAFROC_TOLERANCE = 5e-6


def test_jafroc_printout_dbm(vandyke: MrmcData) -> None:
    result = mrmc_compare(vandyke, method="dbm")
    close = JAFROC_TOLERANCE
    _assert_close(result.rrrc.error_term, 0.12269399, close, "RRRC error term")
    _assert_close([result.rrrc.ci_low, result.rrrc.ci_high], [-0.08796, 0.00036], close, "RRRC CI")
    _assert_close(result.rrrc.se, 0.02075, close, "RRRC StdErr")
    rrrc_singles = [(0.03317359, 12.74, 0.82522361, 0.96885046), (0.02156635, 12.71, 0.89413784, 0.98753684)]
    for single, (se, df, low, high) in zip(result.rrrc.modalities, rrrc_singles, strict=True):
        _assert_close([single.se, single.ci_low, single.ci_high], [se, low, high], close, "RRRC single")
        _printed(df, single.df, 2, "RRRC single df")
    per_treatment = [(0.35141971, 0.33629383, 0.06043604), (0.14872460, 0.16042320, 0.04403661)]
    for single, (ms_r, ms_c, ms_rc) in zip(result.rrrc.modalities, per_treatment, strict=True):
        _assert_close(
            [single.ms_reader, single.ms_case, single.ms_reader_case], [ms_r, ms_c, ms_rc], close, "MS"
        )

    frrc = result.frrc
    assert frrc.statistic_name == "F" and frrc.df2 == 113
    _assert_close(frrc.error_term, 0.09984813, close, "FRRC error term")
    _printed(5.48, frrc.statistic, 2, "FRRC F")
    _printed(0.0210, frrc.p_value, 4, "FRRC p")
    _assert_close([frrc.se, frrc.ci_low, frrc.ci_high], [0.01872, -0.08088, -0.00672], close, "FRRC CI")
    frrc_singles = [(0.02428969, 0.84891477, 0.94515930), (0.01677630, 0.90760047, 0.97407422)]
    for single, (se, low, high) in zip(frrc.modalities, frrc_singles, strict=True):
        assert single.df == 113
        _assert_close([single.se, single.ci_low, single.ci_high], [se, low, high], close, "FRRC single")
    readers = [
        (0.02551, 0.2717, -0.07872, 0.02236),
        (0.02630, 0.0795, -0.09865, 0.00557),
        (0.03121, 0.5680, -0.07971, 0.04396),
        (0.01729, 0.1318, -0.06051, 0.00801),
        (0.04406, 0.0249, -0.18745, -0.01288),
    ]
    for reader, (se, p, low, high) in zip(frrc.readers, readers, strict=True):
        _assert_close(
            [reader.se, reader.ci_low, reader.ci_high], [se, low, high], close, f"reader {reader.reader}"
        )
        _printed(p, reader.p_value, 4, f"reader {reader.reader} p")
        assert reader.df == 113

    rrfc = result.rrfc
    _printed(8.70, rrfc.statistic, 2, "RRFC F")
    _printed(0.0420, rrfc.p_value, 4, "RRFC p")
    _assert_close([rrfc.se, rrfc.ci_low, rrfc.ci_high], [0.01485, -0.08502, -0.00258], close, "RRFC CI")
    rrfc_singles = [(0.02482994, 0.82809807, 0.96597599), (0.01615303, 0.89598934, 0.98568534)]
    for single, (se, low, high) in zip(rrfc.modalities, rrfc_singles, strict=True):
        _assert_close([single.se, single.ci_low, single.ci_high], [se, low, high], close, "RRFC single")


# ---------------------------------------------------------------------------------------------
# Cross-method identities on the real data
# ---------------------------------------------------------------------------------------------


def test_dbm_rrrc_equals_or_jackknife_and_implies_the_same_covariances(vandyke: MrmcData) -> None:
    """Hillis et al. (2005): with jackknife covariances DBM and OR give the same RRRC test."""
    obuchowski = mrmc_compare(vandyke, method="or")
    dorfman = mrmc_compare(vandyke, method="dbm")
    for attribute in ("statistic", "df2", "p_value", "se", "ci_low", "ci_high"):
        assert getattr(dorfman.rrrc, attribute) == pytest.approx(
            getattr(obuchowski.rrrc, attribute), rel=1e-10
        )
    for key in ("var_R", "var_TR", "var_error", "cov1", "cov2", "cov3"):
        assert dorfman.variance_components[key] == pytest.approx(
            obuchowski.variance_components[key], rel=1e-10
        )


def test_closed_form_jackknife_equals_an_explicit_leave_one_out_loop(vandyke: MrmcData) -> None:
    """The vectorised placement-value jackknife against a plain loop that refits every AUC."""
    from annotations.statistics.roc import auc as empirical_auc

    result = mrmc_compare(vandyke, method="or")
    flat = vandyke.ratings.reshape(-1, vandyke.n_cases)
    leave_one_out = np.empty((flat.shape[0], vandyke.n_cases))
    for case in range(vandyke.n_cases):
        keep = np.arange(vandyke.n_cases) != case
        for group in range(flat.shape[0]):
            leave_one_out[group, case] = empirical_auc(vandyke.truth[keep], flat[group, keep])
    centred = leave_one_out - leave_one_out.mean(axis=1, keepdims=True)
    covariance = (vandyke.n_cases - 1) / vandyke.n_cases * centred @ centred.T
    assert np.mean(np.diag(covariance)) == pytest.approx(result.variance_components["var_error"], rel=1e-12)
    readers = vandyke.n_readers
    cov1 = np.mean([covariance[j, readers + j] for j in range(readers)])
    assert cov1 == pytest.approx(result.variance_components["cov1"], rel=1e-12)
    reader_one_cov1 = covariance[0, vandyke.n_readers]
    expected_se = math.sqrt(2 * ((covariance[0, 0] + covariance[5, 5]) / 2 - reader_one_cov1))
    assert result.frrc.readers[0].se == pytest.approx(expected_se, rel=1e-12)


def test_modality_order_and_aliases(vandyke: MrmcData) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rater", "treatment", "item", "reference", "value"])
    for i, modality in enumerate(("without_ai", "with_ai")):
        for j, reader in enumerate(vandyke.readers):
            for k, case in enumerate(vandyke.cases):
                writer.writerow([reader, modality, case, int(vandyke.truth[k]), vandyke.ratings[i, j, k]])
    buffer.seek(0)
    study = read_mrmc_csv(buffer, modality_order=("with_ai", "without_ai"))
    assert study.modalities == ("with_ai", "without_ai")
    result = mrmc_compare(study)
    assert result.effect == pytest.approx(0.04380032206, abs=1e-10)
    assert result.effect_label == "with_ai - without_ai"
    assert result.rrrc.p_value == pytest.approx(0.051665686, abs=1e-9)


def test_result_to_dict_is_json_ready(vandyke: MrmcData) -> None:
    result = mrmc_compare(vandyke, figure_of_merit="specificity", threshold=3)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["figure_of_merit"] == "specificity"
    assert payload["n_jackknife_cases"] == 69
    assert set(payload) >= {"rrrc", "frrc", "rrfc", "variance_components", "mean_squares", "effect"}
    assert payload["rrrc"]["modalities"][0]["modality"] == "1"
    assert "truth-negative" in payload["notes"][0]
    assert result.analyses["rrrc"] is result.rrrc


# ---------------------------------------------------------------------------------------------
# Properties on random small studies
# ---------------------------------------------------------------------------------------------

ANALYSIS_OPTIONS = [
    {"method": "or", "covariance": "jackknife"},
    {"method": "or", "covariance": "delong"},
    {"method": "or", "covariance": "unbiased"},
    {"method": "dbm", "covariance": "jackknife"},
    {"method": "or", "figure_of_merit": "sensitivity", "threshold": 3},
    {"method": "dbm", "figure_of_merit": "specificity", "threshold": 3},
]


@st.composite
def studies(draw: st.DrawFn) -> list[dict[str, Any]]:
    n_readers = draw(st.integers(2, 4))
    n_positive = draw(st.integers(2, 6))
    n_negative = draw(st.integers(2, 6))
    truth = [1] * n_positive + [0] * n_negative
    n_cases = len(truth)
    ratings = draw(
        st.lists(st.integers(1, 5), min_size=2 * n_readers * n_cases, max_size=2 * n_readers * n_cases)
    )
    records = []
    position = 0
    for modality in ("A", "B"):
        for reader in range(n_readers):
            for case in range(n_cases):
                rating = ratings[position] + (1 if modality == "B" and truth[case] else 0)
                records.append(
                    {
                        "reader": f"r{reader}",
                        "modality": modality,
                        "case": f"c{case}",
                        "truth": truth[case],
                        "rating": rating,
                    }
                )
                position += 1
    return records


def _comparable(result: MrmcResult) -> list[float]:
    values = [result.effect, *result.variance_components.values(), *result.mean_squares.values()]
    for analysis in result.analyses.values():
        values += [analysis.statistic, analysis.p_value, analysis.se, analysis.df2 or 0.0]
    return values


def _same(first: list[float], second: list[float]) -> None:
    np.testing.assert_allclose(np.asarray(first), np.asarray(second), rtol=1e-9, atol=1e-12, equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(studies(), st.sampled_from(ANALYSIS_OPTIONS))
def test_swapping_modalities_flips_the_effect_and_keeps_the_tests(
    records: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    forward = mrmc_compare(records, **options)
    backward = mrmc_compare(records, modality_order=("B", "A"), **options)
    assert backward.effect == pytest.approx(-forward.effect, abs=1e-15)
    for name, analysis in forward.analyses.items():
        other = backward.analyses[name]
        assert other.ci_low == pytest.approx(-analysis.ci_high, abs=1e-12, nan_ok=True)
        _same([analysis.statistic, analysis.p_value, analysis.se], [other.statistic, other.p_value, other.se])


@settings(max_examples=25, deadline=None)
@given(studies(), st.sampled_from(ANALYSIS_OPTIONS), st.randoms(use_true_random=False))
def test_relabelling_and_reordering_readers_and_cases_changes_nothing(
    records: list[dict[str, Any]], options: dict[str, Any], random: Any
) -> None:
    readers = sorted({row["reader"] for row in records})
    cases = sorted({row["case"] for row in records})
    reader_names = dict(zip(readers, random.sample(range(100, 200), len(readers)), strict=True))
    case_names = dict(zip(cases, random.sample(range(1000, 9000), len(cases)), strict=True))
    relabelled = [
        {**row, "reader": f"reader-{reader_names[row['reader']]}", "case": case_names[row["case"]]}
        for row in records
    ]
    random.shuffle(relabelled)
    _same(_comparable(mrmc_compare(records, **options)), _comparable(mrmc_compare(relabelled, **options)))


@settings(max_examples=25, deadline=None)
@given(studies(), st.sampled_from(ANALYSIS_OPTIONS))
def test_identical_modalities_give_no_effect_and_say_why_there_is_no_test(
    records: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    first = [row for row in records if row["modality"] == "A"]
    duplicated = first + [{**row, "modality": "B"} for row in first]
    result = mrmc_compare(duplicated, **options)
    assert result.effect == 0.0
    assert result.figures_of_merit[0] == result.figures_of_merit[1]
    assert result.rrfc.reason and math.isnan(result.rrfc.p_value)
    for analysis in result.analyses.values():
        assert analysis.effect == 0.0
        if math.isnan(analysis.statistic):
            assert "identical" in analysis.reason
        else:
            assert analysis.statistic == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(studies())
def test_dbm_and_or_jackknife_agree_and_f_is_t_squared(records: list[dict[str, Any]]) -> None:
    obuchowski = mrmc_compare(records, method="or")
    dorfman = mrmc_compare(records, method="dbm")
    _same(
        [dorfman.rrrc.statistic, dorfman.rrrc.df2 or 0.0, dorfman.rrrc.p_value, dorfman.rrrc.se],
        [obuchowski.rrrc.statistic, obuchowski.rrrc.df2 or 0.0, obuchowski.rrrc.p_value, obuchowski.rrrc.se],
    )
    for result in (obuchowski, dorfman):
        for analysis in result.analyses.values():
            if not math.isnan(analysis.statistic):
                assert analysis.statistic == pytest.approx(analysis.t**2, rel=1e-9)
                assert analysis.ci_low <= analysis.effect <= analysis.ci_high
                assert 0.0 <= analysis.p_value <= 1.0


@settings(max_examples=25, deadline=None)
@given(studies())
def test_delong_error_variance_is_the_mean_single_curve_variance(records: list[dict[str, Any]]) -> None:
    from annotations.statistics.roc import auc_delong

    study = MrmcData.from_records(records)
    result = mrmc_compare(study, covariance="delong")
    variances = [
        auc_delong(study.truth, study.ratings[i, j]).se ** 2 for i in range(2) for j in range(study.n_readers)
    ]
    assert result.variance_components["var_error"] == pytest.approx(np.mean(variances), rel=1e-9, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _rows(
    readers: int = 3, cases: tuple[int, ...] = (0, 1, 1, 0, 1, 0, 0), modalities: tuple[str, ...] = ("A", "B")
):
    return [
        {"reader": r, "modality": m, "case": c, "truth": t, "rating": (c * (i + 2) + r) % 5 + 1}
        for i, m in enumerate(modalities)
        for r in range(readers)
        for c, t in enumerate(cases)
    ]


def test_well_formed_small_study_runs() -> None:
    result = mrmc_compare(_rows())
    assert (result.n_cases, result.n_positive, len(result.readers)) == (7, 3, 3)
    assert result.effect != 0.0 and 0.0 < result.rrrc.p_value < 1.0


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (_rows(modalities=("A",)), "exactly two modalities, found 1"),
        (_rows(modalities=("A", "B", "C")), "exactly two modalities, found 3"),
        (_rows(readers=1), "at least two readers"),
        (_rows()[1:], "missing"),
        ([*_rows(), _rows()[0]], "more than once"),
        (_rows(cases=(1, 1, 1, 1)), "no negative"),
        (_rows(cases=(0, 0, 0, 0)), "no positive"),
        (_rows(cases=(0, 1, 1)), "two positive and two negative"),
        (
            [
                {**row, "truth": 1 - row["truth"]} if row["reader"] == 1 and row["case"] == 0 else row
                for row in _rows()
            ],
            "truth differs",
        ),
        ([{**row, "rating": float("nan")} if row["case"] == 2 else row for row in _rows()], "missing"),
        ([{**row, "rating": "high"} if row["case"] == 2 else row for row in _rows()], "numbers"),
        ([{**row, "truth": 2} for row in _rows()], "truth must be 0"),
        ([{**row, "truth": "maybe"} for row in _rows()], "not 0/1"),
        (
            [{key: value for key, value in row.items() if key != "truth"} for row in _rows()],
            "no column for 'truth'",
        ),
        ([], "no readings"),
    ],
)
def test_bad_studies_raise_a_clear_error(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(MrmcInputError, match=message):
        mrmc_compare(records)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"figure_of_merit": "accuracy"}, "figure_of_merit"),
        ({"covariance": "bootstrap"}, "covariance must be"),
        ({"method": "anova"}, "method must be"),
        ({"method": "dbm", "covariance": "delong"}, "DBM"),
        ({"figure_of_merit": "sensitivity", "covariance": "unbiased", "threshold": 3}, "AUC only"),
        ({"figure_of_merit": "sensitivity"}, "threshold"),
        ({"figure_of_merit": "specificity", "threshold": float("nan")}, "finite"),
        ({"level": 1.0}, "level"),
        ({"modality_order": ("A", "Z")}, "not in the data"),
        ({"modality_order": ("A", "A")}, "same modality twice"),
    ],
)
def test_bad_options_raise_a_clear_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(MrmcInputError, match=message):
        mrmc_compare(_rows(), **options)


def test_reference_labels_with_a_positive_label() -> None:
    labelled = [{**row, "truth": "neoplastic" if row["truth"] else "benign"} for row in _rows()]
    with pytest.raises(MrmcInputError, match="not 0/1"):
        mrmc_compare(labelled)
    by_label = mrmc_compare(labelled, positive_label="neoplastic")
    by_number = mrmc_compare(_rows())
    assert by_number.effect != 0.0
    assert json.dumps(by_label.to_dict()) == json.dumps(by_number.to_dict())


def test_binary_ratings_need_no_threshold() -> None:
    records = [{**row, "rating": int(row["rating"] >= 3)} for row in _rows(cases=(0, 0, 1, 1, 1))]
    result = mrmc_compare(records, figure_of_merit="sensitivity")
    assert result.threshold == 1.0


def test_error_class_is_a_value_error() -> None:
    assert issubclass(MrmcInputError, ValueError)
