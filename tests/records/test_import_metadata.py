"""The metadata sheet: examination and frame attributes, lenient headers, pseudonymised patients."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook

from records.importing.metadata import parse_rows
from records.models import Examination, Frame, Patient, Project
from records.pseudonyms import pseudonym_for
from tests.factories import ProjectFactory
from tests.records.import_support import error_paths, gray_frame, run_import, save

RAW_ID = "MRN-4711-0815"


def _flat_folder(tmp_path: Path) -> Path:
    """Files that say nothing about their patient: the sheet has to."""
    folder = tmp_path / "flat"
    for index in range(3):
        save(gray_frame(index), folder / f"img{index}.png")
    return folder


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.django_db
def test_csv_assigns_files_to_patients_and_sets_examination_and_frame_fields(tmp_path: Path) -> None:
    folder = _flat_folder(tmp_path)
    sheet = _write_csv(
        tmp_path / "meta.csv",
        "File Name;Patient ID;Exam;Exam Date;Anatomical Site;Probe;Histology;Reference Source\n"
        f"img0.png;{RAW_ID};E7;2024-03-01;colon;ColoFlex;;histopathology\n"
        f"img1.png;{RAW_ID};E7;;;;neoplastic;\n"
        f";{RAW_ID};E7;;;;adenoma;\n",
    )
    project = ProjectFactory.create()
    report = run_import(project, [folder], metadata=sheet)

    assert report.errors == []
    assert report.frames_created == 2
    assert "outside any patient folder" in report.skipped[0]["reason"]  # img2.png: no row, no default
    examination = Examination.objects.get()
    assert examination.code == "E7"
    assert examination.date == dt.date(2024, 3, 1)
    assert (examination.anatomical_site, examination.device) == ("colon", "ColoFlex")
    assert (examination.reference_label, examination.reference_source) == ("adenoma", "histopathology")
    labels = dict(Frame.objects.values_list("source_name", "reference_label"))
    assert labels == {"img0.png": "", "img1.png": "neoplastic"}
    _assert_raw_id_nowhere(project)


def _assert_raw_id_nowhere(project: Project) -> None:
    for patient in Patient.objects.filter(project=project).values():
        assert all(RAW_ID not in str(value) for value in patient.values())
        assert patient["pseudonym"] == pseudonym_for(RAW_ID)
    assert not Frame.objects.filter(source_name__contains=RAW_ID).exists()


@pytest.mark.django_db
def test_xlsx_per_examination_rows_apply_to_folder_layout(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "exam1" / "seq1" / "a.png")
    save(gray_frame(2), tmp_path / "src" / "patient1" / "exam2" / "seq1" / "b.png")
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(
        ["PATIENT", "examination", "Date", "site", "device", "reference", "reference_source", "notes"]
    )
    sheet.append(
        ["patient1", "exam1", dt.datetime(2023, 5, 17), "larynx", "XION", "benign", "histology", "x"]
    )
    sheet.append(["patient1", "exam2", "17.06.2023", "colon", "pCLE", "malignant", "histology", ""])
    sheet.append(["patient1", "exam1", "", "stomach", "", "", "", ""])  # contradicts row 2
    sheet.append(["patient1", "", "", "", "", "", "", ""])  # neither file nor examination
    sheet.append(["patient1", "exam2", "not a date", "", "", "", "", ""])
    workbook.save(tmp_path / "meta.xlsx")

    report = run_import(ProjectFactory.create(), [tmp_path / "src"], metadata=tmp_path / "meta.xlsx")

    assert report.frames_created == 2
    exams = {exam.code: exam for exam in Examination.objects.all()}
    assert exams["exam1"].anatomical_site == "larynx" and exams["exam1"].date == dt.date(2023, 5, 17)
    assert (exams["exam2"].device, exams["exam2"].reference_label) == ("pCLE", "malignant")
    assert exams["exam2"].date == dt.date(2023, 6, 17)
    errors = [entry["error"] for entry in report.errors]
    assert any(error.startswith("row 4:") and "contradicts row 2" in error for error in errors)
    assert any(
        error.startswith("row 5:") and "neither a file nor an examination" in error for error in errors
    )
    assert any(error.startswith("row 6:") and "not a date" in error for error in errors)
    assert [entry["warning"] for entry in report.warnings] == ["unknown columns ignored: notes"]


@pytest.mark.django_db
def test_sheet_updates_examinations_imported_before(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "exam1" / "seq1" / "a.png")
    project = ProjectFactory.create()
    run_import(project, [tmp_path / "src"], device="pCLE")
    sheet = _write_csv(tmp_path / "later.csv", "patient,examination,organ\npatient1,exam1,oesophagus\n")
    report = run_import(project, [tmp_path / "src"], metadata=sheet)
    assert report.frames_created == 0
    assert Examination.objects.get().anatomical_site == "oesophagus"
    assert Examination.objects.get().device == "pCLE"


@pytest.mark.django_db
def test_pseudonym_is_stable_across_imports(tmp_path: Path) -> None:
    project = ProjectFactory.create()
    for round_index in range(2):
        folder = tmp_path / f"batch{round_index}"
        save(gray_frame(round_index), folder / f"new{round_index}.png")
        sheet = _write_csv(
            tmp_path / f"m{round_index}.csv", f"path,patient\nnew{round_index}.png, {RAW_ID} \n"
        )
        run_import(project, [folder], metadata=sheet)
    assert Patient.objects.filter(project=project).count() == 1
    assert Frame.objects.filter(examination__patient__pseudonym=pseudonym_for(RAW_ID)).count() == 2
    _assert_raw_id_nowhere(project)


@pytest.mark.django_db
def test_file_rows_match_by_path_tail_and_report_ambiguity(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq1" / "0001.png")
    save(gray_frame(2), tmp_path / "src" / "patient1" / "seq2" / "0001.png")
    sheet = _write_csv(
        tmp_path / "m.csv",
        "file,label\nseq1/0001.png,healthy\n0001.png,tumour\nmissing.png,x\n",
    )
    report = run_import(ProjectFactory.create(), [tmp_path / "src"], metadata=sheet)
    assert dict(Frame.objects.values_list("video__name", "reference_label")) == {
        "seq1": "healthy",
        "seq2": "",
    }
    assert "row 3: '0001.png' matches 2 files" in error_paths(report)["m.csv"]
    assert any("missing.png" in entry["warning"] for entry in report.warnings)


@pytest.mark.django_db
def test_metadata_file_inside_the_folder_is_not_a_frame(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    save(gray_frame(1), folder / "patient1" / "a.png")
    sheet = _write_csv(folder / "meta.csv", "patient,examination,site\npatient1,E1,colon\n")
    report = run_import(ProjectFactory.create(), [folder], metadata=sheet)
    assert report.skipped == [] and report.errors == []
    assert Examination.objects.get().anatomical_site == "colon"


@pytest.mark.django_db
def test_unreadable_sheet_is_an_error_but_the_files_still_import(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "a.png")
    sheet = _write_csv(tmp_path / "m.csv", "colour,smell\nred,bad\n")
    report = run_import(ProjectFactory.create(), [tmp_path / "src"], metadata=sheet)
    assert "no known column" in error_paths(report)["m.csv"]
    assert report.frames_created == 1


def test_headers_are_matched_leniently() -> None:
    metadata = parse_rows(
        [
            [" Relative Path ", "Subject-ID", "Anatomical Site", "HISTOPATHOLOGY", "Label Source"],
            ["a/b.png", 12.0, "colon", "adenoma", "biopsy"],
        ]
    )
    row = metadata.file_rows[0]
    assert (row.file, row.patient, row.site, row.reference_label, row.reference_source) == (
        "a/b.png", "12", "colon", "adenoma", "biopsy",
    )  # fmt: skip
    assert metadata.errors == [] and metadata.warnings == []
