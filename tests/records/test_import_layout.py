"""Folder layouts: patients, examinations and sequences from paths; masks and clutter left out."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from records.importing.layout import FileKind, Placement, natural_key, place
from records.models import Examination, Frame, Patient, Video
from records.pseudonyms import pseudonym_for
from tests.factories import ProjectFactory
from tests.records.import_support import gray_frame, run_import, save, skipped_paths


def _place(
    path: str,
    kind: FileKind = FileKind.IMAGE,
    *,
    context: tuple[str, ...] = (),
    default_patient: str | None = None,
) -> Placement | None:
    return place(
        PurePosixPath(path),
        kind=kind,
        context=context,
        default_patient=default_patient,
        default_examination="E1",
    )


@pytest.mark.parametrize(
    "name", ["patient1", "Patient_12", "pat_03", "P12", "S01", "subject-2", "case7", "CASE 9"]
)
def test_patient_folders_are_recognised_anywhere_in_the_path(name: str) -> None:
    placement = _place(f"dataset/img/{name}/seq4/0001.png")
    assert placement == Placement(patient_identifier=name, patient_part=2, examination="E1", group="seq4")


def test_two_levels_below_the_patient_are_examination_and_sequence() -> None:
    placement = _place("patient1/exam2/seqA/0001.png")
    assert placement == Placement("patient1", 0, "exam2", "seqA")


def test_loose_images_below_the_patient_have_no_sequence() -> None:
    assert _place("patient1/0001.png") == Placement("patient1", 0, "E1", None)


def test_video_is_named_by_its_stem_and_first_folder_is_the_examination() -> None:
    assert _place("S01/1/S01V01.mpeg", FileKind.VIDEO) == Placement("S01", 0, "1", "S01V01")
    assert _place("S01/S01V01.mpeg", FileKind.VIDEO) == Placement("S01", 0, "E1", "S01V01")


def test_without_a_patient_pattern_the_top_level_folder_is_the_patient() -> None:
    assert _place("alice/seq1/1.png") == Placement("alice", 0, "E1", "seq1")


def test_default_patient_takes_files_outside_patient_folders() -> None:
    assert _place("images/1.png", default_patient="kv1") == Placement("kv1", None, "E1", "images")
    assert _place("1.png", default_patient="kv1") == Placement("kv1", None, "E1", None)
    assert _place("1.png") is None


def test_imported_folder_own_name_can_be_the_patient() -> None:
    assert _place("seq1/1.png", context=("patient7",)) == Placement("patient7", None, "E1", "seq1")


def test_frames_sort_naturally() -> None:
    names = ["frame10.png", "frame2.png", "frame1.png"]
    assert sorted(names, key=natural_key) == ["frame1.png", "frame2.png", "frame10.png"]


@pytest.mark.django_db
def test_vocal_folds_dataset_gives_two_patients_eight_sequences_forty_rgb_frames(realdata: Path) -> None:
    project = ProjectFactory.create()
    report = run_import(project, [realdata / "imesluh_vocalfolds"])

    assert report.errors == []
    assert (report.patients_created, report.videos_created, report.frames_created) == (2, 8, 40)
    assert Patient.objects.filter(project=project).count() == 2
    assert set(Patient.objects.values_list("pseudonym", flat=True)) == {
        pseudonym_for("patient1"),
        pseudonym_for("patient2"),
    }
    sequences = Video.objects.filter(examination__patient__project=project)
    assert sequences.count() == 8
    assert set(sequences.values_list("kind", flat=True)) == {Video.Kind.IMAGE_SEQUENCE}
    assert set(sequences.values_list("frame_count", flat=True)) == {5}
    assert Frame.objects.count() == 40
    assert set(Frame.objects.values_list("mode", flat=True)) == {"RGB"}
    # Frames are indexed in filename order within their sequence.
    seq1 = sequences.get(name="seq1")
    ordered = list(seq1.frames.order_by("index_in_video").values_list("index_in_video", "source_name"))
    assert [index for index, _ in ordered] == [0, 1, 2, 3, 4]
    assert [name.rsplit("/", 1)[-1] for _, name in ordered] == [
        "0001.png", "0016.png", "0029.png", "0048.png", "0080.png",
    ]  # fmt: skip

    skipped = skipped_paths(report)
    masks = [path for path in skipped if path.startswith("annot/")]
    assert f"annot/{pseudonym_for('patient1')}/seq1/0001.png" in masks
    assert len(masks) == 40
    assert all("mask" in skipped[path] for path in masks)
    assert "outside any patient folder" in skipped["dataset_description.png"]
    assert not Frame.objects.filter(source_name__startswith="annot").exists()


@pytest.mark.django_db
def test_stored_source_names_carry_the_pseudonym_not_the_patient_folder(realdata: Path) -> None:
    run_import(ProjectFactory.create(), [realdata / "imesluh_vocalfolds"])
    names = list(Frame.objects.values_list("source_name", flat=True))
    assert not any("patient1" in name or "patient2" in name for name in names)
    assert f"img/{pseudonym_for('patient1')}/seq1/0001.png" in names


@pytest.mark.django_db
def test_kvasir_masks_are_skipped_and_images_go_to_the_default_patient(realdata: Path) -> None:
    project = ProjectFactory.create()
    report = run_import(
        project,
        [realdata / "nickyisadog_latent-diffusion-inpainting" / "Kvasir-SEG"],
        default_patient="kvasir",
    )
    assert report.errors == []
    assert report.frames_created == 5
    skipped = skipped_paths(report)
    assert sorted(path.split("/")[0] for path in skipped) == ["masks"] * 5
    patient = Patient.objects.get(project=project)
    assert patient.pseudonym == pseudonym_for("kvasir")
    assert not Frame.objects.filter(source_name__startswith="masks").exists()


@pytest.mark.django_db
def test_hidden_files_and_os_clutter_are_ignored_silently(tmp_path: Path) -> None:
    root = tmp_path / "src"
    save(gray_frame(1), root / "patient1" / "seq1" / "a.png")
    save(gray_frame(2), root / "patient1" / "seq1" / ".hidden.png")
    save(gray_frame(3), root / "__MACOSX" / "patient1" / "seq1" / "._a.png")
    (root / "patient1" / "seq1" / "Thumbs.db").write_bytes(b"\x00" * 10)
    save(gray_frame(4), root / "patient1" / "seq1" / "a_mask.png")
    report = run_import(ProjectFactory.create(), [root])
    assert report.frames_created == 1
    assert report.errors == []
    assert list(skipped_paths(report)) == [f"{pseudonym_for('patient1')}/seq1/a_mask.png"]


@pytest.mark.django_db
def test_files_outside_any_patient_folder_are_skipped_without_a_default_patient(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "loose.png")
    report = run_import(ProjectFactory.create(), [tmp_path / "loose.png"])
    assert report.frames_created == 0
    assert "default patient" in skipped_paths(report)["loose.png"]


@pytest.mark.django_db
def test_examination_and_options_defaults_are_applied(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "visit2" / "seqA" / "1.png")
    save(gray_frame(2), tmp_path / "src" / "patient1" / "2.png")
    run_import(
        ProjectFactory.create(),
        [tmp_path / "src"],
        default_examination="BASE",
        device="pCLE",
        anatomical_site="colon",
    )
    assert sorted(Examination.objects.values_list("code", "device", "anatomical_site")) == [
        ("BASE", "pCLE", "colon"),
        ("visit2", "pCLE", "colon"),
    ]
    loose = Frame.objects.get(source_name__endswith="2.png")
    assert loose.video is None and loose.index_in_video is None


@pytest.mark.django_db
def test_progress_reports_every_file(tmp_path: Path) -> None:
    for index in range(3):
        save(gray_frame(index), tmp_path / "src" / "patient1" / "seq1" / f"{index}.png")
    calls: list[tuple[int, int | None, str]] = []
    run_import(ProjectFactory.create(), [tmp_path / "src"], progress=lambda d, t, m: calls.append((d, t, m)))
    assert calls[0][:2] == (0, 3)
    assert [done for done, _, _ in calls[1:4]] == [1, 2, 3]
    assert calls[-1][0] == calls[-1][1] == 3
