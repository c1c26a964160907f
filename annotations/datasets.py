"""The labels of a set of frames for one task, from a chosen source, as plain rows.

Dataset exports (`exports/`) and training read labels through this module, so that "the label of
a frame" means the same thing everywhere:

- `adjudicated`: the reviewer's decision (the Adjudication row); a frame without one has no label.
- `majority`: the most frequent value among the frame's free-labelling annotations of the task,
  one vote per annotator; a tie has no label and is reported (`LabelSet.ties`).
- `reference`: the reference standard (histopathology): the frame's own reference label, else its
  examination's.
- `every_annotator`: one row per free-labelling annotation (several rows per frame), with the
  annotator's pseudonym.

Every frame gets at least one row; where the source gives no label the row's `value` is None and
the frame is listed in `LabelSet.unlabelled` (or `ties`). Reader-study readings are not
annotations and never count. Annotators appear only as pseudonyms (`annotator_pseudonym`), patients
only by theirs. No torch, nothing written: rows are frozen dataclasses.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from django.db.models import F, QuerySet

from annotations.models import Adjudication, Annotation, LabelTask
from records.models import Frame

ANNOTATOR_PSEUDONYM_PREFIX = "A-"
ANNOTATOR_PSEUDONYM_HEX_CHARS = 16


class LabelSource(StrEnum):
    ADJUDICATED = "adjudicated"
    MAJORITY = "majority"
    REFERENCE = "reference"
    EVERY_ANNOTATOR = "every_annotator"


def annotator_pseudonym(user_id: int, *, secret: str | None = None) -> str:
    """A stable per-installation pseudonym of an annotator: keyed HMAC of the user id with the
    installation's pseudonym secret (as patients' are), never the username. The `annotator:`
    domain keeps it from ever equalling a patient pseudonym of the same text."""
    key = (secret if secret is not None else settings.CLEAR_PSEUDONYM_SECRET).encode()
    digest = hmac.new(key, f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return ANNOTATOR_PSEUDONYM_PREFIX + digest[:ANNOTATOR_PSEUDONYM_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """What a dataset needs to know about a frame (no source file name: it may name a patient)."""

    frame_id: int
    project_id: int
    patient: str  # pseudonym
    cohort: str
    examination_id: int
    examination: str  # code
    examination_date: datetime.date | None
    site: str
    device: str
    video: str  # name, "" for a frame without a sequence
    index_in_video: int | None
    time_s: float | None
    sha256: str
    file: str  # below MEDIA_ROOT
    file_bytes: int
    width: int
    height: int
    mode: str
    reference_label: str  # the frame's, else its examination's; "" when neither has one
    reference_source: str
    examination_reference_label: str
    examination_reference_source: str


@dataclass(frozen=True, slots=True)
class LabelRow:
    frame: FrameRecord
    value: str | None
    source: str
    n_annotators: int  # free-labelling annotators of the task on this frame
    votes: int  # annotations agreeing with `value` (majority), 1 for one annotator's row
    annotator: str = ""  # every_annotator: the annotator's pseudonym
    confidence: int | None = None  # every_annotator: the annotation's confidence


@dataclass
class LabelSet:
    rows: list[LabelRow]
    unlabelled: list[int] = field(default_factory=list)  # frame ids without any label from the source
    ties: list[int] = field(default_factory=list)  # majority: frame ids whose top values tie


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One free-labelling annotation as a dataset publishes it."""

    frame_id: int
    annotator: str  # pseudonym
    value: str
    confidence: int
    time_on_frame_ms: int | None
    ai_shown: bool
    cam_visible_ms: int
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class AdjudicationRecord:
    frame_id: int
    value: str
    rationale: str
    adjudicated_by: str  # pseudonym
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


def frame_records(frames: QuerySet[Frame]) -> list[FrameRecord]:
    """The frames as records, in a fixed order (patient, examination, sequence, index, id)."""
    rows = (
        frames.order_by(
            "examination__patient__pseudonym",
            "examination__code",
            F("video__name").asc(nulls_first=True),
            F("index_in_video").asc(nulls_last=True),
            "id",
        )
        .values_list(
            "id",
            "examination__patient__project_id",
            "examination__patient__pseudonym",
            "examination__patient__cohort",
            "examination_id",
            "examination__code",
            "examination__date",
            "examination__anatomical_site",
            "examination__device",
            "video__name",
            "index_in_video",
            "time_s",
            "sha256",
            "file",
            "file_bytes",
            "width",
            "height",
            "mode",
            "reference_label",
            "examination__reference_label",
            "examination__reference_source",
        )
        .iterator(chunk_size=2000)
    )
    return [_frame_record(row) for row in rows]


def _frame_record(row: tuple[object, ...]) -> FrameRecord:
    (frame_id, project_id, patient, cohort, examination_id, code, date, site, device, video, index,
     time_s, sha256, file, file_bytes, width, height, mode, frame_reference, exam_reference,
     exam_source) = row  # fmt: skip
    reference = str(frame_reference or exam_reference or "")
    # The examination's source names where its label came from; a frame's own label has no field
    # for its source, so it is reported as the examination's source only when it is that label.
    source = str(exam_source or "") if not frame_reference or frame_reference == exam_reference else ""
    return FrameRecord(
        frame_id=int(frame_id),  # type: ignore[call-overload]
        project_id=int(project_id),  # type: ignore[call-overload]
        patient=str(patient),
        cohort=str(cohort or ""),
        examination_id=int(examination_id),  # type: ignore[call-overload]
        examination=str(code),
        examination_date=date,  # type: ignore[arg-type]
        site=str(site or ""),
        device=str(device or ""),
        video=str(video or ""),
        index_in_video=index,  # type: ignore[arg-type]
        time_s=time_s,  # type: ignore[arg-type]
        sha256=str(sha256),
        file=str(file),
        file_bytes=int(file_bytes),  # type: ignore[call-overload]
        width=int(width),  # type: ignore[call-overload]
        height=int(height),  # type: ignore[call-overload]
        mode=str(mode),
        reference_label=reference,
        reference_source=source,
        examination_reference_label=str(exam_reference or ""),
        examination_reference_source=str(exam_source or ""),
    )


def label_rows(*, frames: Sequence[FrameRecord], tasks: Sequence[LabelTask], source: LabelSource) -> LabelSet:
    """The label rows of `frames` for `tasks` (the same task key, at most one task per project)."""
    if source == LabelSource.REFERENCE:
        return _reference_rows(frames)
    votes = _votes_by_frame(frames=frames, tasks=tasks)
    if source == LabelSource.MAJORITY:
        return _majority_rows(frames, votes)
    if source == LabelSource.EVERY_ANNOTATOR:
        return _every_annotator_rows(frames, votes)
    return _adjudicated_rows(frames, votes, adjudications_by_frame(frames=frames, tasks=tasks))


@dataclass(frozen=True, slots=True)
class _Vote:
    annotator: str  # pseudonym
    value: str
    confidence: int


def _votes_by_frame(*, frames: Sequence[FrameRecord], tasks: Sequence[LabelTask]) -> dict[int, list[_Vote]]:
    """Each frame's free-labelling votes: what the label sources need of an annotation, and no more
    (a dataset of 30,000 frames has about 100,000 of them)."""
    wanted = {frame.frame_id for frame in frames}
    found: dict[int, list[_Vote]] = defaultdict(list)
    pseudonyms: dict[int, str] = {}
    rows = (
        Annotation.objects.filter(task__in=list(tasks), context=Annotation.Context.FREE)
        .order_by("frame_id", "annotator_id", "id")
        .values_list("frame_id", "annotator_id", "value", "confidence")
        .iterator(chunk_size=5000)
    )
    for frame_id, annotator_id, value, confidence in rows:
        if frame_id in wanted:
            if annotator_id not in pseudonyms:
                pseudonyms[annotator_id] = annotator_pseudonym(annotator_id)
            found[frame_id].append(_Vote(pseudonyms[annotator_id], value, confidence))
    return dict(found)


def free_annotations_by_frame(
    *, frames: Sequence[FrameRecord], tasks: Sequence[LabelTask]
) -> dict[int, list[AnnotationRecord]]:
    """Each frame's free-labelling annotations of the tasks, by annotator pseudonym."""
    wanted = {frame.frame_id for frame in frames}
    found: dict[int, list[AnnotationRecord]] = defaultdict(list)
    pseudonyms: dict[int, str] = {}
    rows = (
        Annotation.objects.filter(task__in=list(tasks), context=Annotation.Context.FREE)
        .order_by("frame_id", "annotator_id", "id")
        .values_list(
            "frame_id",
            "annotator_id",
            "value",
            "confidence",
            "time_on_frame_ms",
            "ai_shown",
            "cam_visible_ms",
            "version",
            "created_at",
            "updated_at",
        )
        .iterator(chunk_size=5000)
    )
    for (
        frame_id,
        annotator_id,
        value,
        confidence,
        time_ms,
        ai_shown,
        cam_ms,
        version,
        created,
        updated,
    ) in rows:
        if frame_id not in wanted:
            continue
        if annotator_id not in pseudonyms:
            pseudonyms[annotator_id] = annotator_pseudonym(annotator_id)
        found[frame_id].append(
            AnnotationRecord(
                frame_id=frame_id,
                annotator=pseudonyms[annotator_id],
                value=value,
                confidence=confidence,
                time_on_frame_ms=time_ms,
                ai_shown=ai_shown,
                cam_visible_ms=cam_ms,
                version=version,
                created_at=created,
                updated_at=updated,
            )
        )
    return dict(found)


def adjudications_by_frame(
    *, frames: Sequence[FrameRecord], tasks: Sequence[LabelTask]
) -> dict[int, AdjudicationRecord]:
    wanted = {frame.frame_id for frame in frames}
    found: dict[int, AdjudicationRecord] = {}
    rows = (
        Adjudication.objects.filter(task__in=list(tasks))
        .order_by("frame_id")
        .values_list(
            "frame_id", "value", "rationale", "adjudicated_by_id", "version", "created_at", "updated_at"
        )
        .iterator(chunk_size=5000)
    )
    for frame_id, value, rationale, adjudicator_id, version, created, updated in rows:
        if frame_id in wanted:
            found[frame_id] = AdjudicationRecord(
                frame_id=frame_id,
                value=value,
                rationale=rationale,
                adjudicated_by=annotator_pseudonym(adjudicator_id),
                version=version,
                created_at=created,
                updated_at=updated,
            )
    return found


def majority_value(values: Iterable[str]) -> tuple[str | None, int]:
    """The most frequent value and its count; (None, count) when the top values tie."""
    counts = Counter(values).most_common()
    if not counts:
        return None, 0
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, counts[0][1]
    return counts[0]


def decided_values(*, frames: Sequence[FrameRecord], tasks: Sequence[LabelTask]) -> dict[int, str]:
    """Each frame's decided value of the tasks: the adjudication where there is one, else the
    majority of the free annotations (frames with a tie or no annotation are left out). Used to
    filter frames by image quality before a dataset is built."""
    decided = {
        frame_id: record.value
        for frame_id, record in adjudications_by_frame(frames=frames, tasks=tasks).items()
    }
    for frame_id, given in free_annotations_by_frame(frames=frames, tasks=tasks).items():
        if frame_id not in decided:
            value, _ = majority_value(annotation.value for annotation in given)
            if value is not None:
                decided[frame_id] = value
    return decided


def _reference_rows(frames: Sequence[FrameRecord]) -> LabelSet:
    labels = LabelSet(rows=[])
    for frame in frames:
        value = frame.reference_label or None
        labels.rows.append(LabelRow(frame, value, LabelSource.REFERENCE, n_annotators=0, votes=0))
        if value is None:
            labels.unlabelled.append(frame.frame_id)
    return labels


def _majority_rows(frames: Sequence[FrameRecord], votes: dict[int, list[_Vote]]) -> LabelSet:
    labels = LabelSet(rows=[])
    for frame in frames:
        given = votes.get(frame.frame_id, [])
        value, count = majority_value(annotation.value for annotation in given)
        labels.rows.append(LabelRow(frame, value, LabelSource.MAJORITY, len(given), count if value else 0))
        if not given:
            labels.unlabelled.append(frame.frame_id)
        elif value is None:
            labels.ties.append(frame.frame_id)
    return labels


def _every_annotator_rows(frames: Sequence[FrameRecord], votes: dict[int, list[_Vote]]) -> LabelSet:
    labels = LabelSet(rows=[])
    for frame in frames:
        given = votes.get(frame.frame_id, [])
        if not given:
            labels.rows.append(LabelRow(frame, None, LabelSource.EVERY_ANNOTATOR, 0, 0))
            labels.unlabelled.append(frame.frame_id)
        for annotation in given:
            labels.rows.append(
                LabelRow(
                    frame,
                    annotation.value,
                    LabelSource.EVERY_ANNOTATOR,
                    n_annotators=len(given),
                    votes=1,
                    annotator=annotation.annotator,
                    confidence=annotation.confidence,
                )
            )
    return labels


def _adjudicated_rows(
    frames: Sequence[FrameRecord],
    votes: dict[int, list[_Vote]],
    decisions: dict[int, AdjudicationRecord],
) -> LabelSet:
    labels = LabelSet(rows=[])
    for frame in frames:
        given = votes.get(frame.frame_id, [])
        decision = decisions.get(frame.frame_id)
        value = decision.value if decision else None
        agreeing = sum(1 for annotation in given if annotation.value == value)
        labels.rows.append(LabelRow(frame, value, LabelSource.ADJUDICATED, len(given), agreeing))
        if value is None:
            labels.unlabelled.append(frame.frame_id)
    return labels
