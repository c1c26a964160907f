"""What an export holds, decided before a byte is written: rows, splits, classes and archive paths.

The database is read in one transaction (REPEATABLE READ on PostgreSQL), so the export is one
consistent snapshot even while annotators keep labelling: frames, labels, annotations and
adjudications all come from the same moment. Everything after that (near-duplicate hashing,
splitting, naming) works on the rows in memory: plain records, a few hundred bytes per frame.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.db import connection, transaction

from annotations.datasets import (
    AdjudicationRecord,
    AnnotationRecord,
    FrameRecord,
    LabelRow,
    adjudications_by_frame,
    frame_records,
    free_annotations_by_frame,
    label_rows,
)
from annotations.models import LabelChoice
from annotations.splits import SplitItem, check_patient_grouped, split_items
from exports.nearduplicates import remove_near_duplicates
from exports.params import ExportParams, Format
from exports.selectors import export_tasks, keep_quality, selected_frames
from records import media

ProgressCallback = Callable[[int, int | None, str], None]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class ExportRejected(ValueError):
    """The export cannot be built from these data (the message says why, for the user)."""


@dataclass(frozen=True, slots=True)
class ExportRow:
    label: LabelRow
    split: str
    key: str  # the sample's name: patient, examination and frame id, safe in any file system
    file_name: str  # the frame's image in the archive ("" when the export carries no images)

    @property
    def frame(self) -> FrameRecord:
        return self.label.frame


@dataclass
class ExportPlan:
    params: ExportParams
    rows: list[ExportRow]
    classes: list[str]
    class_folders: dict[str, str]
    annotations: dict[int, list[AnnotationRecord]] = field(default_factory=dict)
    adjudications: dict[int, AdjudicationRecord] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def image_members(self) -> list[tuple[str, FrameRecord]]:
        """Each image file of the archive once (several rows may share one), sorted by path."""
        seen: dict[str, FrameRecord] = {}
        for row in self.rows:
            if row.file_name and row.file_name not in seen:
                seen[row.file_name] = row.frame
        return sorted(seen.items())


@contextmanager
def consistent_read() -> Iterator[None]:
    """One transaction whose reads all see the same committed state. On PostgreSQL the default
    READ COMMITTED would let each query see a newer state; REPEATABLE READ (read only) fixes the
    snapshot at the first query. Inside an outer transaction (tests) the outer one decides."""
    outer = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def safe_name(text: str) -> str:
    """Letters, digits, - and _ only: usable as a file name, a folder and a WebDataset key."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def build_plan(params: ExportParams, progress: ProgressCallback | None = None) -> ExportPlan:
    with consistent_read():
        tasks = export_tasks(params, params.task_key)
        if len(tasks) != len(params.project_ids):
            raise ExportRejected(f"the task {params.task_key!r} is missing from a project of this export")
        frames = keep_quality(params, frame_records(selected_frames(params, tasks)))
        labels = label_rows(frames=frames, tasks=tasks, source=params.label_source)
        annotations: dict[int, list[AnnotationRecord]] = {}
        adjudications: dict[int, AdjudicationRecord] = {}
        if params.format == Format.JSON:
            annotations = free_annotations_by_frame(frames=frames, tasks=tasks)
            adjudications = adjudications_by_frame(frames=frames, tasks=tasks)
        choices = list(
            LabelChoice.objects.filter(task__in=tasks)
            .order_by("task__project_id", "order", "id")
            .values_list("value", flat=True)
        )
    counts: dict[str, Any] = {
        "frames_selected": len(frames),
        "ties": len(labels.ties),
        "unlabelled": len(labels.unlabelled),
    }
    notes: list[str] = []
    if labels.ties:
        notes.append(f"{len(labels.ties)} frame(s) without a label: their annotators' votes tie")
    rows = labels.rows
    if params.class_layout:
        rows = [row for row in rows if row.value is not None]
        counts["unlabelled_left_out"] = len(labels.rows) - len(rows)
    if params.remove_near_duplicates:
        rows = _without_near_duplicates(params, rows, counts, progress)
    if not rows:
        raise ExportRejected(
            "no frame matches the export's filters (and has a label, where the format needs one)"
        )
    split = split_items(
        [
            SplitItem(
                group=row.frame.patient,
                label=row.value,
                attributes={
                    "site": row.frame.site,
                    "device": row.frame.device,
                    "cohort": row.frame.cohort,
                    "examination": row.frame.examination,
                },
            )
            for row in rows
        ],
        params.split,
    )
    notes.extend(split.notes)
    classes = _classes(choices, rows)
    folders = _class_folders(classes)
    export_rows = [
        _export_row(params, row, side, folders) for row, side in zip(rows, split.assignments, strict=True)
    ]
    # Asserted once more on what will be written: a leak here is a bug, and the export fails.
    check_patient_grouped([row.frame.patient for row in export_rows], [row.split for row in export_rows])
    counts.update(_counts(export_rows, split.stratified))
    return ExportPlan(
        params=params,
        rows=export_rows,
        classes=classes,
        class_folders=folders,
        annotations=annotations,
        adjudications=adjudications,
        counts=counts,
        notes=notes,
    )


def _without_near_duplicates(
    params: ExportParams, rows: list[LabelRow], counts: dict[str, Any], progress: ProgressCallback | None
) -> list[LabelRow]:
    frames = list({row.frame.frame_id: row.frame for row in rows}.values())

    def report(done: int) -> None:
        if progress is not None:
            progress(done, len(frames), "Looking for near-duplicate frames")

    found = remove_near_duplicates(
        frames,
        distance=params.near_duplicate_distance,
        read=lambda frame: media.read_bytes(frame.file),
        progress=report,
    )
    counts["near_duplicates_removed"] = len(found.removed)
    return [row for row in rows if row.frame.frame_id not in found.removed]


def _classes(choices: Sequence[str], rows: Sequence[LabelRow]) -> list[str]:
    """The task's choices in their order (across projects: the first project's first), then any
    other value the rows hold (reference labels need not be choices), sorted."""
    classes = list(dict.fromkeys(choices))
    present = {row.value for row in rows if row.value is not None}
    return classes + sorted(present - set(classes))


def _class_folders(classes: Sequence[str]) -> dict[str, str]:
    """A folder name per class; two classes that would share a name are told apart by a suffix."""
    folders: dict[str, str] = {}
    used: set[str] = set()
    for value in classes:
        base = safe_name(value)
        name, number = base, 2
        while name.lower() in used:
            name, number = f"{base}-{number}", number + 1
        used.add(name.lower())
        folders[value] = name
    return folders


def _export_row(params: ExportParams, row: LabelRow, side: str, folders: dict[str, str]) -> ExportRow:
    frame = row.frame
    key = f"{safe_name(frame.patient)}_{safe_name(frame.examination)}_{frame.frame_id}"
    suffix = PurePosixPath(frame.file).suffix or ".png"
    if params.format == Format.IMAGEFOLDER:
        assert row.value is not None
        file_name = f"{side}/{folders[row.value]}/{key}{suffix}"
    elif params.format == Format.HF:
        file_name = f"{side}/{key}{suffix}"
    elif params.format == Format.WEBDATASET:
        file_name = ""  # samples live inside the shards
    elif params.include_images:
        file_name = f"images/{frame.sha256}{suffix}"
    else:
        file_name = ""
    return ExportRow(label=row, split=side, key=key, file_name=file_name)


def _counts(rows: Sequence[ExportRow], stratified: bool) -> dict[str, Any]:
    per_split: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"rows": 0, "frames": set(), "patients": set()}
    )
    for row in rows:
        entry = per_split[row.split]
        entry["rows"] += 1
        entry["frames"].add(row.frame.frame_id)
        entry["patients"].add(row.frame.patient)
    labels = Counter(row.label.value for row in rows if row.label.value is not None)
    return {
        "rows": len(rows),
        "frames": len({row.frame.frame_id for row in rows}),
        "patients": len({row.frame.patient for row in rows}),
        "examinations": len({row.frame.examination_id for row in rows}),
        "labels": {value: labels[value] for value in sorted(labels)},
        "rows_without_label": sum(1 for row in rows if row.label.value is None),
        "splits": {
            side: {"rows": entry["rows"], "frames": len(entry["frames"]), "patients": len(entry["patients"])}
            for side, entry in sorted(per_split.items())
        },
        "stratified": stratified,
    }
