"""Every Cohen-kappa and missing-ratings case in ../shared/stats/cases, reproduced within its tolerance.

Each case file carries its raw ratings, the published (software) values and the source; the test id
is the case id, and each assertion message names the source. The irr cases build weights over the
levels OBSERVED in the data (their `weights_note` says so), the others over the declared scale.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from annotations.statistics import (
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
    ratings_table_from_matrix,
)
from annotations.statistics.agreement import WeightLevels
from annotations.statistics.ratings import RatingsTable

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "stats" / "cases"
COHEN_CASES = sorted(CASES.glob("cohen_kappa_*.json"))
MISSING_CASES = sorted(CASES.glob("agreement_with_missing_*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _source(case: dict[str, Any]) -> str:
    return f"{case['id']} ({case['source']['citation']})"


def _check(case: dict[str, Any], name: str, got: float) -> None:
    expected = case["expected"][name]
    assert not math.isnan(got), f"{name} is NaN; expected {expected['value']} per {_source(case)}"
    assert abs(got - expected["value"]) <= expected["tolerance"], (
        f"{name}: got {got}, published {expected['value']} +/- {expected['tolerance']} per {_source(case)}"
    )


def _weight_levels(case: dict[str, Any]) -> WeightLevels:
    """The irr cases weight over observed levels (their note says so); the rest over the declared scale."""
    note = case["parameters"].get("weights_note", "")
    return "observed" if "OBSERVED" in note else "declared"


def _table(case: dict[str, Any]) -> RatingsTable:
    data = case["data"]
    scale = data.get("scale") or data.get("contingency_table", {}).get("categories")
    scale = scale or case["parameters"].get("categories")
    return ratings_table_from_matrix(data["ratings"], raters=data["raters"], categories=scale)


def test_the_case_files_are_there() -> None:
    assert len(COHEN_CASES) >= 11, f"Cohen-kappa cases missing under {CASES}"
    assert MISSING_CASES, f"missing-ratings cases missing under {CASES}"


@pytest.mark.parametrize("path", COHEN_CASES, ids=[p.stem for p in COHEN_CASES])
def test_cohen_kappa_reproduces_the_published_case(path: Path) -> None:
    case = _load(path)
    parameters = case["parameters"]
    result = cohen_kappa(_table(case), weights=parameters["weights"], weight_levels=_weight_levels(case))
    if _weight_levels(case) == "observed":
        assert list(result.categories_for_weights) == [str(c) for c in parameters["categories_for_weights"]]
    produced = {
        "kappa": result.kappa,
        "ase": result.se,
        "se_gwet": result.se,  # irrCAC's Cohen SE is the same large-sample ASE formula
        "ci95_lower": result.ci_low,
        "ci95_upper": result.ci_high,
        "ase_h0": result.se_h0,
        "z": result.z,
        "p_one_sided": result.p_value_one_sided,
        "p_two_sided": result.p_value,
    }
    for name in case["expected"]:
        _check(case, name, produced[name])


@pytest.mark.parametrize(
    "path",
    [p for p in COHEN_CASES if "alternative_if_weights_use_full_1_to_6_scale" in _load(p)],
    ids=lambda p: p.stem,
)
def test_declared_scale_weights_give_the_full_scale_alternative(path: Path) -> None:
    """The same irr data with weights over the declared 1-6 scale (level 5 unused still a step)."""
    case = _load(path)
    alternative = case["alternative_if_weights_use_full_1_to_6_scale"]
    result = cohen_kappa(_table(case), weights=case["parameters"]["weights"], weight_levels="declared")
    assert result.kappa == pytest.approx(alternative["kappa"], abs=1e-9)
    assert result.z == pytest.approx(alternative["z"], abs=1e-9)


@pytest.mark.parametrize("path", MISSING_CASES, ids=[p.stem for p in MISSING_CASES])
def test_agreement_with_missing_ratings_reproduces_the_published_case(path: Path) -> None:
    case = _load(path)
    table = _table(case)
    fleiss = fleiss_kappa(table)
    alpha = krippendorff_alpha(table, "nominal")
    percent = percent_agreement(table)
    produced = {
        "fleiss_kappa_gwet": fleiss.kappa,
        "fleiss_pa_gwet": fleiss.observed_agreement,
        "fleiss_pe_gwet": fleiss.expected_agreement,
        "krippendorff_alpha_nominal": alpha.alpha,
        "krippendorff_pa_gwet": alpha.observed_agreement_gwet,
        "percent_agreement_pairable_values": percent.pairable_values,
        "percent_agreement_mean_over_units": percent.mean_over_items,
    }
    for name in case["expected"]:
        _check(case, name, produced[name])


def test_gwet_fleiss_standard_error_matches_irrcac_on_the_4_raters_data() -> None:
    """irrCAC raw.CAC(raw_4raters).fleiss(): se 0.15302, CI (0.42438, 1), p 0.00042 (Gwet 2014, p.120)."""
    table = _table(_load(MISSING_CASES[0]))
    result = fleiss_kappa(table)
    assert result.se == pytest.approx(0.15302, abs=5e-6)
    assert result.ci_low == pytest.approx(0.42438, abs=5e-6)
    assert result.ci_high == 1.0
    assert result.p_value == pytest.approx(0.00042, abs=5e-6)
