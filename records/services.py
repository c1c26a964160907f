"""Writes to records that are not part of the import pipeline itself."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from enum import Enum, auto
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction

from jobs.models import Job
from jobs.services import job_create
from records.importing.options import ImportOptions
from records.models import Examination, Patient, Project, ProjectMembership

IMPORT_JOB_KIND = "records.import"


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    sources: list[Path],
    metadata: Path | None,
    options: ImportOptions,
    created_by_id: int | None,
    cleanup: list[Path] | None = None,
) -> Job:
    """Create an import job for files already on the server and enqueue it on the `cpu` queue.

    `cleanup` lists paths (uploaded files, their staging folder) the job deletes when it is done.
    """
    params = {
        "sources": [str(path) for path in sources],
        "metadata": str(metadata) if metadata else None,
        "options": options.to_json(),
        "cleanup": [str(path) for path in cleanup or []],
    }
    return job_create(
        kind=IMPORT_JOB_KIND,
        params=params,
        project_id=project.pk,
        created_by_id=created_by_id,
        enqueue=_enqueue_import,
    )


def _enqueue_import(job_id: int) -> None:
    from records.tasks import import_job

    import_job.delay(job_id=job_id)


def previews_job_create(
    *, project_id: int, created_since: datetime.datetime | None, created_by_id: int | None
) -> Job:
    """Create a job that renders the missing previews of the project's frames created since
    `created_since` (all of them when None), enqueued on the `cpu` queue after commit."""
    from records.previews import PREVIEWS_JOB_KIND

    return job_create(
        kind=PREVIEWS_JOB_KIND,
        params={"created_since": created_since.isoformat() if created_since else None},
        project_id=project_id,
        created_by_id=created_by_id,
        enqueue=_enqueue_previews,
    )


def _enqueue_previews(job_id: int) -> None:
    from records.tasks import previews_job

    previews_job.delay(job_id=job_id)


# --- Projects and clinical records edited through the API ------------------------------------------


class _Unset(Enum):
    """Marks a keyword the caller did not pass (distinct from None, which can be a real value)."""

    UNSET = auto()


UNSET = _Unset.UNSET


def _apply(instance: models.Model, changes: dict[str, Any]) -> list[str]:
    """Set the given attributes and return the names that actually changed."""
    changed = []
    for name, value in changes.items():
        if value is UNSET or getattr(instance, name) == value:
            continue
        setattr(instance, name, value)
        changed.append(name)
    return changed


@transaction.atomic
def project_create(*, name: str, slug: str, description: str = "", created_by_id: int) -> Project:
    """Create a project; its creator becomes its admin so that someone can manage it from day one."""
    project = Project.objects.create(name=name, slug=slug, description=description)
    ProjectMembership.objects.create(
        project=project, user_id=created_by_id, role=ProjectMembership.Role.ADMIN
    )
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | _Unset = UNSET,
    description: str | _Unset = UNSET,
    ai_assistance: str | _Unset = UNSET,
) -> Project:
    """Change a project's name, description or what model output its readers see."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    changed = _apply(locked, {"name": name, "description": description, "ai_assistance": ai_assistance})
    if changed:
        locked.full_clean(validate_unique=False)
        locked.save(update_fields=changed)
    return locked


@transaction.atomic
def patient_update(
    *,
    patient: Patient,
    cohort: str | _Unset = UNSET,
    sex: str | _Unset = UNSET,
    birth_year: int | _Unset | None = UNSET,
) -> Patient:
    """Correct a patient's descriptive fields; the pseudonym is never edited (it is the HMAC key)."""
    locked = Patient.objects.select_for_update().get(pk=patient.pk)
    changed = _apply(locked, {"cohort": cohort, "sex": sex, "birth_year": birth_year})
    if changed:
        locked.full_clean(exclude=["project"], validate_unique=False)
        locked.save(update_fields=changed)
    return locked


@transaction.atomic
def examination_update(
    *,
    examination: Examination,
    date: datetime.date | _Unset | None = UNSET,
    device: str | _Unset = UNSET,
    anatomical_site: str | _Unset = UNSET,
    reference_label: str | _Unset = UNSET,
    reference_source: str | _Unset = UNSET,
) -> Examination:
    """Correct an examination's date, device, anatomical site or reference standard.

    The row is locked so that two data managers editing at once cannot lose each other's change to
    a field the other did not touch (only changed fields are written).
    """
    locked = Examination.objects.select_for_update().get(pk=examination.pk)
    changed = _apply(
        locked,
        {
            "date": date,
            "device": device,
            "anatomical_site": anatomical_site,
            "reference_label": reference_label,
            "reference_source": reference_source,
        },
    )
    if changed:
        locked.full_clean(exclude=["patient"], validate_unique=False)
        locked.save(update_fields=changed)
    return locked


# --- Import uploads -------------------------------------------------------------------------------


@transaction.atomic
def import_upload_create(
    *,
    project: Project,
    files: list[UploadedFile],
    metadata: UploadedFile | None,
    options: ImportOptions,
    created_by_id: int | None,
) -> Job:
    """Stage uploaded files in a fresh folder below CLEAR_UPLOAD_ROOT and create their import job.

    Names must already be sanitised and unique (the API's input serializer does that). The folder is
    handed to the job for clean-up; if anything fails here it is removed at once, so a failed
    request leaves nothing behind.
    """
    root = Path(settings.CLEAR_UPLOAD_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"import-{project.pk}-", dir=root))
    try:
        sources = [_stage(upload, folder) for upload in files]
        staged_metadata = _stage(metadata, folder / "metadata") if metadata is not None else None
        job = import_job_create(
            project=project,
            sources=sources,
            metadata=staged_metadata,
            options=options,
            created_by_id=created_by_id,
            cleanup=[folder],
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job


def _stage(upload: UploadedFile, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(upload.name or "").name
    target = folder / name
    if not name or target.parent != folder:
        raise ValueError(f"unsafe upload name {upload.name!r}")
    with target.open("xb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target
