"""Label sources over a set of frames (annotations/datasets.py)."""

from __future__ import annotations

import pytest

from annotations.datasets import (
    LabelSource,
    annotator_pseudonym,
    decided_values,
    frame_records,
    free_annotations_by_frame,
    label_rows,
    majority_value,
)
from annotations.models import Annotation
from records.models import Frame
from tests.exports.support import HEALTHY, NEOPLASTIC, adjudicate, build_dataset
from tests.factories import FrameFactory, UserFactory

pytestmark = pytest.mark.django_db


def _records(data):
    return frame_records(Frame.objects.filter(examination__patient__project=data.project))


def test_frame_records_come_in_patient_examination_sequence_order_with_pseudonyms():
    data = build_dataset(patients=3, frames_per_patient=2)

    records = _records(data)

    assert [record.frame_id for record in records] == [frame.pk for frame in data.frames]
    first = records[0]
    assert (first.patient, first.examination, first.site, first.device) == ("P-000", "E0", "tongue", "pCLE")
    assert first.reference_label == HEALTHY and first.reference_source == "histopathology"
    assert first.sha256 == data.frames[0].sha256 and first.file == data.frames[0].file


def test_a_frames_own_reference_label_wins_over_its_examinations():
    data = build_dataset(patients=1, frames_per_patient=2, annotate=False)
    Frame.objects.filter(pk=data.frames[1].pk).update(reference_label=NEOPLASTIC)

    rows = label_rows(frames=_records(data), tasks=[data.task], source=LabelSource.REFERENCE).rows

    assert [row.value for row in rows] == [HEALTHY, NEOPLASTIC]
    assert [row.frame.reference_source for row in rows] == ["histopathology", ""]


def test_majority_takes_the_most_frequent_value_and_reports_ties():
    data = build_dataset(patients=2, frames_per_patient=2)
    tied = data.frames[1]
    Annotation.objects.filter(frame=tied, task=data.task, annotator=data.annotators[2]).delete()
    Annotation.objects.filter(frame=tied, task=data.task, annotator=data.annotators[1]).update(
        value=NEOPLASTIC
    )
    unlabelled = FrameFactory.create(examination=data.examinations[1])

    labels = label_rows(frames=_records(data), tasks=[data.task], source=LabelSource.MAJORITY)

    by_frame = {row.frame.frame_id: row for row in labels.rows}
    # Patient 0's first frame: two say healthy, one neoplastic.
    assert (by_frame[data.frames[0].pk].value, by_frame[data.frames[0].pk].votes) == (HEALTHY, 2)
    assert by_frame[data.frames[0].pk].n_annotators == 3
    assert by_frame[tied.pk].value is None and labels.ties == [tied.pk]
    assert by_frame[unlabelled.pk].value is None and labels.unlabelled == [unlabelled.pk]
    assert by_frame[data.frames[2].pk].value == NEOPLASTIC


def test_adjudicated_labels_come_only_from_adjudications():
    data = build_dataset(patients=1, frames_per_patient=2)
    adjudicate(data, data.frames[0], NEOPLASTIC, rationale="=cmd")

    labels = label_rows(frames=_records(data), tasks=[data.task], source=LabelSource.ADJUDICATED)

    assert [(row.value, row.votes, row.n_annotators) for row in labels.rows] == [
        (NEOPLASTIC, 1, 3),
        (None, 0, 3),
    ]
    assert labels.unlabelled == [data.frames[1].pk]


def test_every_annotator_gives_one_row_per_annotation_with_pseudonyms_never_usernames():
    data = build_dataset(patients=1, frames_per_patient=1)
    # A reader-study reading is not an annotation of free labelling and never counts.
    Annotation.objects.create(
        frame=data.frames[0], task=data.task, annotator=UserFactory.create(), value=HEALTHY, confidence=2,
        context=Annotation.Context.STUDY,
    )  # fmt: skip

    rows = label_rows(frames=_records(data), tasks=[data.task], source=LabelSource.EVERY_ANNOTATOR).rows

    assert len(rows) == 3
    assert {row.annotator for row in rows} == {annotator_pseudonym(user.pk) for user in data.annotators}
    assert all(row.annotator.startswith("A-") and len(row.annotator) == 18 for row in rows)
    assert not {user.username for user in data.annotators} & {row.annotator for row in rows}
    assert sorted(row.value or "" for row in rows) == [HEALTHY, HEALTHY, NEOPLASTIC]
    assert {row.confidence for row in rows} == {4}


def test_annotator_pseudonyms_are_stable_and_depend_on_the_installation_secret():
    assert annotator_pseudonym(7) == annotator_pseudonym(7)
    assert annotator_pseudonym(7) != annotator_pseudonym(8)
    assert annotator_pseudonym(7, secret="one") != annotator_pseudonym(7, secret="two")


def test_annotations_of_frames_outside_the_set_are_left_out():
    data = build_dataset(patients=2, frames_per_patient=1)
    records = _records(data)[:1]

    found = free_annotations_by_frame(frames=records, tasks=[data.task])

    assert list(found) == [data.frames[0].pk]
    assert [annotation.time_on_frame_ms for annotation in found[data.frames[0].pk]] == [900, 900, 900]


def test_decided_values_prefer_the_adjudication_then_the_majority():
    data = build_dataset(patients=1, frames_per_patient=3)
    adjudicate(data, data.frames[2], "good", task=data.quality)

    decided = decided_values(frames=_records(data), tasks=[data.quality])

    # Every annotator said bad for the last frame, but the adjudication says good.
    assert decided == {data.frames[0].pk: "good", data.frames[1].pk: "good", data.frames[2].pk: "good"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], (None, 0)), (["a"], ("a", 1)), (["a", "b", "a"], ("a", 2)), (["a", "b"], (None, 1))],
)
def test_majority_value(values, expected):
    assert majority_value(values) == expected
