"""Builders shared by the export tests (not a test module itself)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from annotations.models import Adjudication, Annotation, LabelTask
from records.models import Examination, Frame, Patient, Project
from tests.factories import (
    ExaminationFactory,
    ImageFrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    PatientFactory,
    ProjectFactory,
    UserFactory,
)

HEALTHY = "healthy"
NEOPLASTIC = "neoplastic"


@dataclass
class Dataset:
    project: Project
    task: LabelTask
    quality: LabelTask
    annotators: list[Any]
    reviewer: Any
    patients: list[Patient] = field(default_factory=list)
    examinations: list[Examination] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


def diagnosis_task(project: Project, key: str = "diagnosis") -> LabelTask:
    task = LabelTaskFactory.create(project=project, key=key, name="Diagnosis")
    LabelChoiceFactory.create(task=task, value=HEALTHY, label="Healthy", order=0)
    LabelChoiceFactory.create(task=task, value=NEOPLASTIC, label="Neoplastic", order=1)
    return task


def quality_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="quality", name="Quality")
    LabelChoiceFactory.create(task=task, value="good", label="Good", order=0)
    LabelChoiceFactory.create(task=task, value="bad", label="Bad", order=1)
    return task


def build_dataset(
    *,
    patients: int = 6,
    frames_per_patient: int = 3,
    project: Project | None = None,
    sites: tuple[str, ...] = ("tongue", "larynx"),
    annotate: bool = True,
) -> Dataset:
    """Patients P-000.. with one examination each (site alternating, device pCLE/eCLE alternating),
    48x40 random-texture frames, and three annotators who agree on every frame (label by patient
    parity: even healthy, odd neoplastic) except that annotator 3 says the other label on each
    patient's first frame; every frame's quality is good except each patient's last frame."""
    project = project or ProjectFactory.create()
    data = Dataset(
        project=project,
        task=diagnosis_task(project),
        quality=quality_task(project),
        annotators=[UserFactory.create() for _ in range(3)],
        reviewer=UserFactory.create(),
    )
    for number in range(patients):
        patient = PatientFactory.create(project=project, pseudonym=f"P-{number:03d}", cohort=f"C{number % 2}")
        examination = ExaminationFactory.create(
            patient=patient,
            code=f"E{number}",
            date=datetime.date(2024, 1, 1) + datetime.timedelta(days=30 * number),
            anatomical_site=sites[number % len(sites)],
            device="pCLE" if number % 2 == 0 else "eCLE",
            reference_label=NEOPLASTIC if number % 2 else HEALTHY,
            reference_source="histopathology",
        )
        data.patients.append(patient)
        data.examinations.append(examination)
        for index in range(frames_per_patient):
            frame = ImageFrameFactory.create(examination=examination, source_name=f"p{number}/f{index}.png")
            data.frames.append(frame)
            if annotate:
                _annotate(data, frame, number, index, frames_per_patient)
    return data


def _annotate(data: Dataset, frame: Frame, number: int, index: int, frames_per_patient: int) -> None:
    label = NEOPLASTIC if number % 2 else HEALTHY
    other = HEALTHY if number % 2 else NEOPLASTIC
    for position, annotator in enumerate(data.annotators):
        value = other if (position == 2 and index == 0) else label
        Annotation.objects.create(
            frame=frame, task=data.task, annotator=annotator, value=value, confidence=4, time_on_frame_ms=900
        )
        quality = "bad" if index == frames_per_patient - 1 else "good"
        Annotation.objects.create(
            frame=frame, task=data.quality, annotator=annotator, value=quality, confidence=5
        )


def adjudicate(
    data: Dataset, frame: Frame, value: str, rationale: str = "", task: LabelTask | None = None
) -> Adjudication:
    return Adjudication.objects.create(
        frame=frame, task=task or data.task, value=value, rationale=rationale, adjudicated_by=data.reviewer
    )


def export_params(data: Any, **overrides: Any) -> Any:
    """ExportParams over `data.project` and `data.task` (a Dataset, or anything with both): majority
    labels, 50/25/25 ratio split, CSV."""
    from annotations.datasets import LabelSource
    from annotations.splits import RatioSplit
    from exports.params import ExportFilters, ExportParams

    values: dict[str, Any] = {
        "project_ids": (data.project.pk,),
        "task_key": data.task.key,
        "label_source": LabelSource.MAJORITY,
        "filters": ExportFilters(),
        "split": RatioSplit(train=0.5, val=0.25, test=0.25, seed=1),
        "format": "csv",
    }
    values.update(overrides)
    return ExportParams(**values)


def build_export(params: Any, created_by: Any = None) -> Any:
    """Create the snapshot and build it in this process (what the job does); returns it refreshed."""
    from exports.build import export_snapshot_build
    from exports.services import export_snapshot_create

    snapshot = export_snapshot_create(params=params, created_by_id=created_by.pk if created_by else None)
    export_snapshot_build(snapshot_id=snapshot.pk, progress=lambda done, total, message: None)
    snapshot.refresh_from_db()
    return snapshot


def archive_path(snapshot: Any) -> Any:
    """The archive's real file (the tests' local media storage)."""
    from pathlib import Path

    from records import media

    return Path(media.storage().path(snapshot.file))


def read_members(snapshot: Any) -> dict[str, bytes]:
    """Every member of the snapshot's archive (ZIP or tar) by path, in archive order, read through
    the media storage (whatever its backend)."""
    import io
    import tarfile
    import zipfile

    from records import media

    data = io.BytesIO(media.read_bytes(snapshot.file))
    if snapshot.file.endswith(".tar"):
        with tarfile.open(fileobj=data) as tar:
            return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}  # type: ignore[union-attr]
    with zipfile.ZipFile(data) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def metadata_rows(members: dict[str, bytes]) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(members["metadata.csv"].decode())))


def frame_from_pixels(examination: Examination, pixels: Any, **fields: Any) -> Frame:
    """A frame of the given 8-bit grayscale pixels (a numpy array), stored as the import would."""
    import hashlib

    from PIL import Image

    from records import media
    from records.importing.images import encode_png

    png = encode_png(Image.fromarray(pixels, mode="L"))
    sha256 = hashlib.sha256(png).hexdigest()
    media.save_bytes(media.content_path("frames", sha256, ".png"), png)
    height, width = pixels.shape
    values = {
        "examination": examination,
        "source_name": f"{sha256[:8]}.png",
        "sha256": sha256,
        "file": media.content_path("frames", sha256, ".png"),
        "file_bytes": len(png),
        "width": width,
        "height": height,
        "mode": "L",
        "preview_file": media.content_path("previews", sha256, ".jpg"),
        "preview_width": width,
        "preview_height": height,
    }
    values.update(fields)
    return Frame.objects.create(**values)
