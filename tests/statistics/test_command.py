"""The ratings_stats management command: CSV in, JSON or a table out."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

CSV = """item,rater,value,reference,patient
1,a,neo,neo,p1
1,b,neo,neo,p1
1,ai,neo,neo,p1
2,a,healthy,healthy,p1
2,b,neo,healthy,p1
2,ai,healthy,healthy,p1
3,a,healthy,healthy,p2
3,b,healthy,healthy,p2
3,ai,neo,healthy,p2
4,a,neo,neo,p3
4,b,neo,neo,p3
4,ai,neo,neo,p3
5,a,healthy,neo,p3
5,b,,neo,p3
5,ai,neo,neo,p3
"""


def _run(tmp_path: Path, text: str, *args: str) -> str:
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    out = StringIO()
    call_command("ratings_stats", str(path), *args, stdout=out)
    return out.getvalue()


def test_json_output_has_agreement_accuracy_and_bootstrap(tmp_path: Path) -> None:
    output = _run(
        tmp_path,
        CSV,
        "--categories",
        "healthy,neo",
        "--positive",
        "neo",
        "--ai-rater",
        "ai",
        "--bootstrap",
        "100",
        "--seed",
        "4",
    )
    report = json.loads(output)
    agreement = report["agreement"]
    assert agreement["n_items"] == 5 and agreement["n_raters"] == 3 and agreement["n_missing_ratings"] == 1
    assert agreement["percent_agreement"]["mean_over_items"] == pytest.approx(8 / 15)
    assert [row["rater_a"] for row in agreement["kappa_vs_ai"]] == ["a", "b"]
    readers = {reader["rater"]: reader for reader in report["accuracy"]["readers"]}
    assert readers["a"]["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert readers["b"]["n_items"] == 4
    assert report["bootstrap"]["resampled"] == "patients"
    assert report["bootstrap"]["intervals"]["fleiss_kappa"]["n_clusters"] == 3


def test_table_output_is_readable(tmp_path: Path) -> None:
    output = _run(tmp_path, CSV, "--positive", "neo", "--format", "table")
    assert "percent agreement, mean over items" in output
    assert "Krippendorff alpha (nominal)" in output
    assert "Accuracy vs reference (positive = neo)" in output


def test_ordinal_weighted_two_raters(tmp_path: Path) -> None:
    rows = ["item,rater,value"] + [
        f"{i},{rater},{value}"
        for i, (x, y) in enumerate([(1, 1), (2, 3), (3, 3), (1, 2), (3, 3), (2, 2)])
        for rater, value in (("x", x), ("y", y))
    ]
    report = json.loads(
        _run(
            tmp_path,
            "\n".join(rows) + "\n",
            "--categories",
            "1,2,3,4",
            "--level",
            "ordinal",
            "--weights",
            "quadratic",
        )
    )
    weighted = report["agreement"]["weighted_cohen_kappa"]
    assert weighted["weights"] == "quadratic" and weighted["categories_for_weights"] == ["1", "2", "3", "4"]
    assert set(report["agreement"]["krippendorff_alpha"]) == {"nominal", "ordinal"}


def test_bad_input_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="outside the declared categories"):
        _run(tmp_path, CSV, "--categories", "healthy,tumour")
    with pytest.raises(CommandError, match="No such file"):
        call_command("ratings_stats", str(tmp_path / "absent.csv"))


def test_a_modality_column_gives_one_report_per_modality_and_mrmc(tmp_path: Path) -> None:
    rows = ["item,rater,value,reference,modality"]
    for modality in ("without_ai", "with_ai"):
        for item in range(12):
            truth = "neo" if item % 2 else "healthy"
            for rater in ("r1", "r2", "r3"):
                right = (item + len(rater) + (modality == "with_ai")) % 4 != 0
                value = truth if right else ("healthy" if truth == "neo" else "neo")
                rows.append(f"{item},{rater},{value},{truth},{modality}")
    report = json.loads(_run(tmp_path, "\n".join(rows) + "\n", "--positive", "neo"))
    assert set(report["modalities"]) == {"without_ai", "with_ai"}
    assert report["modalities"]["with_ai"]["agreement"]["n_raters"] == 3
    assert report["mrmc"]["figure_of_merit"] == "auc" and report["mrmc"]["n_cases"] == 12
    assert set(report["mrmc"]["modalities"]) == {"without_ai", "with_ai"}
