"""Round trip: a snapshot exported from one project imports into another with the same patients,
examinations, sequences, frames and labels (records/importing/export_archive.py)."""

from __future__ import annotations

import datetime
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from annotations.datasets import LabelSource
from annotations.models import Annotation, LabelTask
from annotations.splits import KFoldSplit, NoSplit
from records.importing.export_archive import ExportArchiveRejected, import_export_archive
from records.models import Examination, Frame, Patient
from tests.exports.support import archive_path, build_dataset, build_export, diagnosis_task, export_params
from tests.factories import ProjectFactory, UserFactory
from tests.records.import_support import run_import

pytestmark = pytest.mark.django_db


def _real_project(realdata: Path):
    """The vocal-folds sample imported for real (2 patients, 8 sequences, 40 RGB frames), with
    examination metadata and two annotators who agree except on one frame per sequence."""
    project = ProjectFactory.create()
    report = run_import(project, [realdata / "imesluh_vocalfolds" / "img"])
    assert report.errors == [] and report.frames_created == 40
    task = diagnosis_task(project)
    for number, examination in enumerate(Examination.objects.filter(patient__project=project).order_by("pk")):
        examination.date = datetime.date(2023, 5, 1 + number)
        examination.device = "laryngoscope"
        examination.anatomical_site = "vocal folds"
        examination.reference_label = "neoplastic" if number else "healthy"
        examination.reference_source = "histopathology"
        examination.save()
        Patient.objects.filter(pk=examination.patient_id).update(cohort=f"cohort-{number}")
    readers = [UserFactory.create(), UserFactory.create()]
    for frame in Frame.objects.filter(examination__patient__project=project).select_related("video"):
        value = "neoplastic" if (frame.index_in_video or 0) % 2 else "healthy"
        for position, reader in enumerate(readers):
            disagree = position == 1 and frame.index_in_video == 0
            Annotation.objects.create(
                frame=frame, task=task, annotator=reader, confidence=4,
                value=("healthy" if value == "neoplastic" else "neoplastic") if disagree else value,
            )  # fmt: skip
    Frame.objects.filter(examination__patient__project=project, index_in_video=4).update(
        reference_label="dysplastic"
    )
    return project, task


def _frames(project) -> dict[tuple[str, str, str, int | None], dict]:
    frames = {}
    for frame in Frame.objects.filter(examination__patient__project=project).select_related(
        "examination__patient", "video"
    ):
        video = frame.video.name if frame.video else ""
        key = (frame.examination.patient.pseudonym, frame.examination.code, video, frame.index_in_video)
        frames[key] = {
            name: getattr(frame, name) for name in ("sha256", "width", "height", "mode", "reference_label")
        }
    return frames


def _examinations(project) -> set[tuple]:
    return set(
        Examination.objects.filter(patient__project=project).values_list(
            "patient__pseudonym", "patient__cohort", "code", "date", "device", "anatomical_site",
            "reference_label", "reference_source",
        )
    )  # fmt: skip


def _labels(project, task_key: str, annotator=None) -> dict[tuple, str]:
    annotations = Annotation.objects.filter(task__project=project, task__key=task_key)
    if annotator is not None:
        annotations = annotations.filter(annotator=annotator)
    return {
        (row["frame__examination__patient__pseudonym"], row["frame__sha256"]): row["value"]
        for row in annotations.values("frame__examination__patient__pseudonym", "frame__sha256", "value")
    }


@pytest.mark.parametrize("fmt", ["imagefolder", "hf", "json", "csv", "parquet"])
def test_an_exported_snapshot_imports_into_another_project_with_the_same_records_and_labels(realdata, fmt):
    source, task = _real_project(realdata)
    data_params = export_params(
        SimpleNamespace(project=source, task=task),
        format=fmt,
        label_source=LabelSource.MAJORITY,
        split=KFoldSplit(k=2, seed=0),
    )
    snapshot = build_export(data_params)
    assert snapshot.status == "ready", snapshot.error
    target = ProjectFactory.create()
    importer = UserFactory.create()

    report = import_export_archive(
        project_id=target.pk,
        archive=archive_path(snapshot),
        labels_as="annotations",
        annotator_id=importer.pk,
    )

    assert report.snapshot_hash == snapshot.snapshot_hash
    assert (report.patients_created, report.examinations_created, report.videos_created) == (2, 2, 8)
    assert report.task_created
    assert _examinations(target) == _examinations(source)
    source_frames, target_frames = _frames(source), _frames(target)
    # Frames whose votes tie have no majority label: the class layouts leave them out.
    tied = {key for key, row in source_frames.items() if key[3] == 0}
    expected = {
        key: row for key, row in source_frames.items() if fmt in ("json", "csv", "parquet") or key not in tied
    }
    assert target_frames == expected
    assert report.frames_created == len(expected) == snapshot.counts["frames"]
    # The labels: each frame's majority label, now an annotation of the importing user.
    majority = {
        (patient, row["sha256"]): ("neoplastic" if (index or 0) % 2 else "healthy")
        for (patient, _, _, index), row in source_frames.items()
        if index
    }
    assert _labels(target, task.key, importer) == majority
    imported_task = LabelTask.objects.get(project=target, key=task.key)
    assert list(imported_task.choices.order_by("order").values_list("value", flat=True)) == [
        "healthy",
        "neoplastic",
    ]

    # Importing the same archive again adds nothing.
    again = import_export_archive(
        project_id=target.pk,
        archive=archive_path(snapshot),
        labels_as="annotations",
        annotator_id=importer.pk,
    )
    assert (again.frames_created, again.frames_existing, again.labels_created) == (0, len(expected), 0)


def test_reference_labels_come_back_as_the_frames_reference_standard(realdata):
    source, task = _real_project(realdata)
    snapshot = build_export(
        export_params(
            SimpleNamespace(project=source, task=task),
            format="json",
            label_source=LabelSource.REFERENCE,
            split=NoSplit(),
        )
    )
    target = ProjectFactory.create()

    import_export_archive(project_id=target.pk, archive=archive_path(snapshot), labels_as="reference")

    effective = {
        row["sha256"]: row["reference_label"] or row["examination__reference_label"]
        for project in (source,)
        for row in Frame.objects.filter(examination__patient__project=project).values(
            "sha256", "reference_label", "examination__reference_label"
        )
    }
    imported = {
        row["sha256"]: row["reference_label"] or row["examination__reference_label"]
        for row in Frame.objects.filter(examination__patient__project=target).values(
            "sha256", "reference_label", "examination__reference_label"
        )
    }
    assert imported == effective
    assert not Annotation.objects.filter(task__project=target).exists()


def test_an_altered_archive_is_refused_before_anything_is_written(tmp_path):
    data = build_dataset(patients=2, frames_per_patient=1)
    snapshot = build_export(export_params(data, format="imagefolder", split=NoSplit()))
    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(archive_path(snapshot)) as original, zipfile.ZipFile(altered, "w") as copy:
        for info in original.infolist():
            content = original.read(info)
            if info.filename == "metadata.csv":
                content = content.replace(b"P-000", b"P-999")
            copy.writestr(info, content)
    target = ProjectFactory.create()

    with pytest.raises(ExportArchiveRejected, match=r"metadata\.csv: does not match the manifest"):
        import_export_archive(project_id=target.pk, archive=altered, labels_as="reference")

    assert not Patient.objects.filter(project=target).exists()


def test_every_annotators_labels_cannot_become_one_users_annotations():
    data = build_dataset(patients=2, frames_per_patient=1)
    snapshot = build_export(export_params(data, format="csv", label_source=LabelSource.EVERY_ANNOTATOR))

    with pytest.raises(ExportArchiveRejected, match="every annotator"):
        import_export_archive(
            project_id=ProjectFactory.create().pk,
            archive=archive_path(snapshot),
            labels_as="annotations",
            annotator_id=UserFactory.create().pk,
        )


def test_the_command_imports_an_export_and_prints_the_report(capsys):
    data = build_dataset(patients=2, frames_per_patient=2)
    snapshot = build_export(export_params(data, format="hf", split=NoSplit()))
    target = ProjectFactory.create()
    user = UserFactory.create()

    call_command(
        "import_export_archive",
        target.slug,
        str(archive_path(snapshot)),
        "--annotator",
        user.username,
        "--json",
    )

    report = json.loads(capsys.readouterr().out)
    assert report["frames_created"] == 4 and report["labels_created"] == 4
    assert Frame.objects.filter(examination__patient__project=target).count() == 4
