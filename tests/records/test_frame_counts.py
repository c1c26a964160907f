"""records.ExaminationFrameCount: frames per examination, kept by triggers on records_frame (migration
0006) through every way frames come and go, and computed for the frames already there."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from records.models import Examination, ExaminationFrameCount, Frame, Patient, Video
from tests.factories import ExaminationFactory, FrameFactory, ProjectFactory, VideoFactory
from tests.records.import_support import gray_frame, run_import, save

pytestmark = pytest.mark.django_db


def counts() -> dict[int, int]:
    """The maintained count of every examination that has a count row."""
    return dict(ExaminationFrameCount.objects.values_list("examination_id", "frames"))


def actual() -> dict[int, int]:
    """The frames each examination really has (examinations without frames: 0)."""
    real = {exam.pk: exam.frames.count() for exam in Examination.objects.all()}
    return real


def assert_counts_right() -> None:
    maintained = counts()
    assert {exam: maintained.get(exam, 0) for exam in actual()} == actual()
    # No count row of an examination that is gone.
    assert set(maintained) <= set(actual())


def test_the_import_counts_its_frames_per_examination(tmp_path: Path, media_root: Path) -> None:
    project = ProjectFactory.create()
    folder = tmp_path / "import"
    for number in range(3):
        save(gray_frame(number), folder / "patient1" / "seq1" / f"f{number}.png")
    for number in range(3, 5):
        save(gray_frame(number), folder / "patient2" / "seq1" / f"f{number}.png")

    run_import(project, [folder])

    assert sorted(counts().values()) == [2, 3]
    assert_counts_right()

    # Importing the same files again adds nothing; two new files add two.
    run_import(project, [folder])
    assert sorted(counts().values()) == [2, 3]
    save(gray_frame(10), folder / "patient2" / "seq1" / "f10.png")
    save(gray_frame(11), folder / "patient2" / "seq1" / "f11.png")
    run_import(project, [folder])
    assert sorted(counts().values()) == [3, 4]
    assert_counts_right()


def test_creates_bulk_creates_and_deletes_keep_the_counts(media_root: Path) -> None:
    exam, other = ExaminationFactory.create(), ExaminationFactory.create()
    video = VideoFactory.create(examination=exam)
    loose = FrameFactory.create_batch(3, examination=exam)
    for index in range(4):
        FrameFactory.create(video=video, index_in_video=index)
    FrameFactory.create_batch(2, examination=other)
    template = loose[0]
    Frame.objects.bulk_create(
        Frame(
            examination=other,
            source_name=f"bulk{number}.png",
            sha256=f"{number:064d}",
            file=template.file,
            file_bytes=template.file_bytes,
            width=8,
            height=6,
            mode="L",
            preview_file=template.preview_file,
            preview_width=8,
            preview_height=6,
        )
        for number in range(5)
    )
    assert counts() == {exam.pk: 7, other.pk: 7}

    loose[0].delete()  # one frame
    assert counts()[exam.pk] == 6
    video.delete()  # cascades to its 4 frames
    assert counts()[exam.pk] == 2
    Frame.objects.filter(examination=other, source_name__startswith="bulk").delete()  # one statement
    assert counts()[other.pk] == 2
    assert_counts_right()

    exam.delete()  # the count row goes with the examination
    assert counts() == {other.pk: 2}
    Patient.objects.filter(pk=other.patient_id).delete()
    assert counts() == {}


def test_a_frame_moved_to_another_examination_moves_in_the_counts(media_root: Path) -> None:
    exam, other = ExaminationFactory.create(), ExaminationFactory.create()
    frames = FrameFactory.create_batch(3, examination=exam)

    Frame.objects.filter(pk=frames[0].pk).update(examination=other)
    Frame.objects.filter(pk=frames[1].pk).update(source_name="renamed.png")  # not a move

    assert counts() == {exam.pk: 2, other.pk: 1}
    assert_counts_right()


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_frames_already_there(media_root: Path) -> None:
    executor = MigrationExecutor(connection)
    # Every app's latest migration, not only records': going back to records 0005 also unapplies
    # the other apps' migrations that depend on later records ones (exports' for one), and they must
    # come back too, or the tests after this one find their tables gone.
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([("records", "0005_project_ai_assistance")])
    try:
        # Frames created without the triggers (and without the table).
        exam = ExaminationFactory.create()
        video = VideoFactory.create(examination=exam)
        FrameFactory.create_batch(3, examination=exam)
        FrameFactory.create(video=video, index_in_video=0)
        empty = ExaminationFactory.create()
        assert "records_examinationframecount" not in connection.introspection.table_names()
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)

    assert counts() == {exam.pk: 4}
    assert empty.pk not in counts()
    FrameFactory.create(examination=empty)  # and the triggers are back
    assert counts() == {exam.pk: 4, empty.pk: 1}
    assert Video.objects.count() == 1
    # The whole schema is back, other apps' tables included.
    assert set(MigrationRecorder(connection).applied_migrations()) >= set(latest)
    assert "exports_exportsnapshot" in connection.introspection.table_names()
