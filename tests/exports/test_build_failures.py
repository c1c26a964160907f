"""An export never leaves a half-written archive, and reads one consistent state of the labels."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connection

import exports.snapshot as snapshot_module
from annotations.models import Annotation
from annotations.splits import NoSplit
from exports.archive import DeterministicZip
from exports.build import export_snapshot_build, scratch_folder
from exports.models import ExportSnapshot
from exports.services import export_snapshot_create
from tests.exports.support import (
    HEALTHY,
    NEOPLASTIC,
    build_dataset,
    build_export,
    export_params,
    metadata_rows,
    read_members,
)


def _noop(done, total, message):
    return None


@pytest.mark.django_db
def test_a_failure_while_writing_leaves_no_file_and_marks_the_snapshot_failed(monkeypatch):
    data = build_dataset(patients=3, frames_per_patient=2)
    snapshot = export_snapshot_create(params=export_params(data, format="imagefolder"), created_by_id=None)
    calls = {"n": 0}
    original = DeterministicZip.add_bytes

    def failing(self, path, data, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the fourth image: three are in the archive already
            raise OSError("disk full")
        return original(self, path, data, **kwargs)

    monkeypatch.setattr(DeterministicZip, "add_bytes", failing)

    with pytest.raises(OSError, match="disk full"):
        export_snapshot_build(snapshot_id=snapshot.pk, progress=_noop)

    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.FAILED and snapshot.error == "disk full"
    assert snapshot.file == "" and snapshot.snapshot_hash == ""
    assert list(scratch_folder().iterdir()) == []


@pytest.mark.django_db
def test_a_stored_file_of_the_wrong_size_fails_the_export():
    data = build_dataset(patients=2, frames_per_patient=1)
    from records import media

    Path(media.storage().path(data.frames[0].file)).write_bytes(b"truncated")
    snapshot = export_snapshot_create(params=export_params(data, split=NoSplit()), created_by_id=None)

    with pytest.raises(OSError, match="damaged"):
        export_snapshot_build(snapshot_id=snapshot.pk, progress=_noop)

    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.FAILED and "damaged" in snapshot.error
    assert list(scratch_folder().iterdir()) == []


@pytest.mark.django_db
def test_a_rerun_removes_what_an_interrupted_run_left_and_builds_afresh():
    data = build_dataset(patients=3, frames_per_patient=2)
    snapshot = export_snapshot_create(params=export_params(data), created_by_id=None)
    folder = scratch_folder()
    # What a SIGKILLed worker leaves: a partial temporary archive and a scratch table; also an
    # archive renamed into place whose row was never updated.
    (folder / f".tmp-snapshot-{snapshot.pk}-abc.zip").write_bytes(b"PK partial")
    (folder / f".tmp-snapshot-{snapshot.pk}-def.csv").write_text("file_name\n")
    (folder / f"snapshot-{snapshot.pk}-0000000000000000.zip").write_bytes(b"old")
    unrelated = folder / "snapshot-999999-0000000000000000.zip"
    unrelated.write_bytes(b"another snapshot's archive")

    export_snapshot_build(snapshot_id=snapshot.pk, progress=_noop)

    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.READY
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted([snapshot.file.rsplit("/", 1)[-1], unrelated.name])
    assert len(metadata_rows(read_members(snapshot))) == 6


@pytest.mark.django_db(transaction=True)
def test_labels_changed_while_the_export_reads_do_not_reach_it(monkeypatch):
    data = build_dataset(patients=2, frames_per_patient=2)
    original = snapshot_module.label_rows

    def relabel_elsewhere() -> None:
        try:
            Annotation.objects.filter(task=data.task).update(value=NEOPLASTIC)
        finally:
            connection.close()

    def read_after_a_concurrent_change(**kwargs):
        # Another request commits new labels after the export read its frames, before it reads labels.
        thread = threading.Thread(target=relabel_elsewhere)
        thread.start()
        thread.join()
        assert Annotation.objects.using("default").count() > 0
        return original(**kwargs)

    monkeypatch.setattr(snapshot_module, "label_rows", read_after_a_concurrent_change)
    # The snapshot is built right here; its job's message would only wait in the broker.
    monkeypatch.setattr("exports.services._enqueue_export", lambda job_id: None)

    snapshot = build_export(export_params(data, split=NoSplit()))

    labels = {row["patient"]: row["label"] for row in metadata_rows(read_members(snapshot))}
    # As it was when the export began: patient 0 healthy, patient 1 neoplastic.
    assert labels == {"P-000": HEALTHY, "P-001": NEOPLASTIC}
    assert set(Annotation.objects.filter(task=data.task).values_list("value", flat=True)) == {NEOPLASTIC}
