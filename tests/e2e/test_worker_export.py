"""Exports through a real Celery worker process: requested over the API, built on the cpu queue,
downloaded; and a worker killed in the middle of writing the archive leaves no half-written export."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from annotations.datasets import LabelSource
from annotations.models import Annotation
from annotations.splits import NoSplit
from exports.build import scratch_folder
from exports.models import ExportSnapshot
from exports.services import export_snapshot_create
from jobs.models import Job
from records import media
from records.models import Frame, ProjectMembership
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.exports.support import build_dataset, build_export, diagnosis_task, export_params
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import client_for, member_of
from tests.records.import_support import run_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _finished(job_id: int) -> bool:
    return Job.objects.get(pk=job_id).is_finished


def _verify(content: bytes) -> dict:
    """The archive's manifest, after checking every listed file against it."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            data = archive.read(entry["path"])
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"])
    return manifest


def test_an_export_requested_over_the_api_is_built_by_the_worker_and_downloaded(
    celery_worker_process: CeleryWorker, realdata: Path
) -> None:
    project = ProjectFactory.create()
    assert run_import(project, [realdata / "imesluh_vocalfolds" / "img"]).frames_created == 40
    task = diagnosis_task(project)
    reader = UserFactory.create()
    for frame in Frame.objects.filter(examination__patient__project=project):
        value = "neoplastic" if (frame.index_in_video or 0) % 2 else "healthy"
        Annotation.objects.create(frame=frame, task=task, annotator=reader, value=value, confidence=3)
    client = client_for(member_of(project, ProjectMembership.Role.DATA_MANAGER))

    response = client.post(
        "/api/exports/",
        {
            "projects": [project.pk],
            "task": task.key,
            "label_source": "majority",
            "split": {"scheme": "kfold", "k": 2, "seed": 1},
            "format": "imagefolder",
        },
        format="json",
    )

    assert response.status_code == 202, response.content
    created = response.json()
    wait_for(lambda: _finished(created["job"]["id"]), timeout=180, describe="the export job to finish")
    job = Job.objects.get(pk=created["job"]["id"])
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    assert job.progress_done == job.progress_total == 40
    detail = client.get(response["Location"]).json()
    assert detail["status"] == "ready" and detail["counts"]["frames"] == 40
    download = client.get(detail["download_url"])
    assert download.status_code == 200
    manifest = _verify(b"".join(download.streaming_content))  # type: ignore[attr-defined]
    assert manifest["snapshot_hash"] == detail["snapshot_hash"]
    assert {entry["path"].split("/")[0] for entry in manifest["files"]} == {
        "fold_0",
        "fold_1",
        "metadata.csv",
    }


def test_a_worker_killed_while_writing_leaves_no_half_written_export_and_the_job_is_rebuilt_cleanly(
    celery_worker_process: CeleryWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_dataset(patients=4, frames_per_patient=3)
    params = export_params(data, format="imagefolder", label_source=LabelSource.REFERENCE, split=NoSplit())

    # The last image of the archive is made a named pipe: reading it blocks, so the worker is caught
    # in the middle of the archive, deterministically, with the earlier members already written.
    def member(frame: Frame) -> str:
        examination = frame.examination
        return (
            f"all/{examination.reference_label}/{examination.patient.pseudonym}_{examination.code}_{frame.pk}"
        )

    last = max(data.frames, key=member)
    stored = Path(media.storage().path(last.file))
    original = stored.read_bytes()
    stored.unlink()
    os.mkfifo(stored)

    snapshot = export_snapshot_create(params=params, created_by_id=None)
    assert snapshot.job is not None
    job_id = snapshot.job.pk
    folder = scratch_folder()

    def blocked_mid_archive() -> bool:
        partial = list(folder.glob(f".tmp-snapshot-{snapshot.pk}-*.zip"))
        return Job.objects.get(pk=job_id).status == Job.Status.RUNNING and any(
            path.stat().st_size > 0 for path in partial
        )

    wait_for(blocked_mid_archive, timeout=120, interval=0.1, describe="the export to be writing its archive")
    celery_worker_process.kill()

    # What the killed worker left: a partial temporary file, no archive under a real name, the
    # snapshot not ready and the job still running.
    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.RUNNING and snapshot.file == ""
    assert not list(folder.glob(f"snapshot-{snapshot.pk}-*"))
    assert list(folder.glob(f".tmp-snapshot-{snapshot.pk}-*"))

    stored.unlink()
    stored.write_bytes(original)
    celery_worker_process.start()
    wait_for(lambda: _finished(job_id), timeout=300, describe=f"export job {job_id} to finish")

    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.READY
    # Only the finished archive is left, complete and identical to one built from scratch.
    assert sorted(path.name for path in folder.iterdir()) == [Path(snapshot.file).name]
    manifest = _verify(media.read_bytes(snapshot.file))
    assert len([entry for entry in manifest["files"] if entry["path"].endswith(".png")]) == 12
    # Built here in the test process (its job is not sent to the worker).
    monkeypatch.setattr("exports.services._enqueue_export", lambda job_id: None)
    fresh = build_export(params)
    assert fresh.snapshot_hash == snapshot.snapshot_hash
    assert media.read_bytes(fresh.file) == media.read_bytes(snapshot.file)
