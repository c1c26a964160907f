"""Import a CLEAR dataset export (exports/) into a project: the other half of the round trip.

Accepted: the ZIP formats that carry images and a table of frames, i.e. `json` (dataset.json),
`imagefolder`, `hf` and `csv` (metadata.csv) and `parquet` (metadata.parquet), made with images.
WebDataset tars are for training loaders and are refused.

What comes across:

- Patients by their pseudonyms, stored as they are (never hashed again: the export's pseudonyms
  already are the exporting installation's keyed HMACs), with their cohort.
- Examinations by (patient, code), with date, device, anatomical site and reference standard.
- Sequences by name, frames with their index and time in it; each image is decoded under the import's
  safety rules and stored re-encoded, as any import, so identical pixels give the same sha256.
  A frame already in the examination (same content) is left as it is: importing twice is a no-op.
- Labels, in one of two ways (`labels_as`), decided by the importer:
  - `annotations` (default): each frame's exported label becomes a free-labelling annotation of the
    export's task by the importing user (`annotator_id`), confidence 5 (it is the dataset's decided
    label, not one reader's guess), no time and no AI exposure. The task is created with the
    export's classes when the project lacks it; its existing choices must cover the labels.
    Every annotator's labels (several per frame) cannot become one user's annotations: refused.
  - `reference`: each frame's exported label becomes the frame's own reference label (the standard
    reader studies and the `reference` label source use).
  Either way the examination's own reference standard comes across as metadata.

Nothing is trusted before the manifest agrees: the archive is extracted under the ZIP caps of every
import (records/importing/safety.py), every file is checked against the manifest's sha256 and size,
and a file the manifest does not list is refused. Everything is written in one transaction.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from annotations.models import Annotation, LabelChoice, LabelTask
from records.csvsafe import spreadsheet_unguarded
from records.importing.images import ImageRejected, prepare_image_file
from records.importing.safety import ArchiveRejected, extract_zip
from records.models import Examination, Frame, Patient, Project, Video

ProgressCallback = Callable[[int, int | None, str], None]
LABELS_AS = ("annotations", "reference")
IMPORTED_CONFIDENCE = 5
MANIFEST_FILES = frozenset({"manifest.json", "MANIFEST.sha256"})
TABLES = ("dataset.json", "metadata.parquet", "metadata.csv")


class ExportArchiveRejected(Exception):
    """The archive cannot be imported; the message says why, for the user."""


@dataclass
class ExportImportReport:
    format: str = ""
    snapshot_hash: str = ""
    patients_created: int = 0
    examinations_created: int = 0
    videos_created: int = 0
    frames_created: int = 0
    frames_existing: int = 0
    labels_created: int = 0
    labels_updated: int = 0
    task_created: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.frames_created} frames imported ({self.frames_existing} already there), "
            f"{self.patients_created} patients, {self.examinations_created} examinations, "
            f"{self.labels_created + self.labels_updated} labels"
        )


@dataclass
class _SourceFrame:
    """One frame of the export's table (rows of several annotators folded into one)."""

    file_name: str
    values: dict[str, Any]
    labels: list[str | None]


def import_export_archive(
    *,
    project_id: int,
    archive: Path,
    labels_as: str = "annotations",
    annotator_id: int | None = None,
    progress: ProgressCallback | None = None,
) -> ExportImportReport:
    if labels_as not in LABELS_AS:
        raise ExportArchiveRejected(f"labels_as must be one of {', '.join(LABELS_AS)}, not {labels_as!r}")
    if labels_as == "annotations" and annotator_id is None:
        raise ExportArchiveRejected("importing labels as annotations needs the importing user")
    project = Project.objects.get(pk=project_id)
    root = Path(settings.CLEAR_UPLOAD_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clear-export-import-", dir=root) as scratch:
        folder = Path(scratch)
        manifest = _extract_and_verify(archive, folder)
        params = manifest.get("parameters", {})
        report = ExportImportReport(
            format=str(params.get("format", "")), snapshot_hash=manifest["snapshot_hash"]
        )
        frames = list(_source_frames(folder))
        if any(not frame.file_name for frame in frames):
            raise ExportArchiveRejected("the export was made without images; there is nothing to import")
        if labels_as == "annotations" and any(len(frame.labels) > 1 for frame in frames):
            raise ExportArchiveRejected(
                "every annotator's labels cannot become one user's annotations; import them as reference "
                "labels or export a single label per frame"
            )
        with transaction.atomic():
            task = None
            if labels_as == "annotations":
                task = _task(project, params, manifest.get("classes", []), frames, report)
            _Writer(project, folder, labels_as, task, annotator_id, report).write(frames, progress)
    return report


def export_table(archive: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and the table of frames of a CLEAR export ZIP (what a training run reads to learn
    from an export snapshot). Only these two members are extracted and the table is checked against
    the manifest: the run takes the frames themselves from this installation's storage, by id and
    content hash, so reading gigabytes of images out of the archive would be wasted."""
    root = Path(settings.CLEAR_UPLOAD_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clear-export-table-", dir=root) as scratch:
        folder = Path(scratch)
        manifest = _extract_and_verify(archive, folder, only=frozenset({"manifest.json", *TABLES}))
        return manifest, list(_table_rows(folder))


def _extract_and_verify(archive: Path, folder: Path, *, only: frozenset[str] | None = None) -> dict[str, Any]:
    """Extract the archive (or just the members named in `only`) and check every extracted file
    against the manifest: listed, of its size and sha256; with `only`, the named members the
    manifest lists must be there, without it every member it lists."""
    if archive.suffix.lower() == ".tar":
        raise ExportArchiveRejected("WebDataset archives are for training loaders; import a ZIP export")
    try:
        extracted = extract_zip(archive, folder, only=only)
    except ArchiveRejected as exc:
        raise ExportArchiveRejected(str(exc)) from exc
    if extracted.errors:
        name, why = extracted.errors[0]
        raise ExportArchiveRejected(f"{name}: {why}")
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ExportArchiveRejected("no manifest.json: this is not a CLEAR export")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportArchiveRejected(f"the manifest cannot be read: {exc}") from exc
    if not isinstance(manifest.get("snapshot_hash"), str):
        raise ExportArchiveRejected("the manifest has no snapshot hash")
    present = {path.relative_to(folder).as_posix() for path in extracted.files} - MANIFEST_FILES
    if present - set(listed):
        raise ExportArchiveRejected(f"{sorted(present - set(listed))[0]}: not listed in the manifest")
    expected = set(listed) if only is None else set(listed) & only
    if expected - present:
        raise ExportArchiveRejected(f"{sorted(expected - present)[0]}: listed in the manifest but missing")
    for path in sorted(present):
        member, entry = folder / path, listed[path]
        if member.stat().st_size != entry["size"] or _sha256(member) != entry["sha256"]:
            raise ExportArchiveRejected(f"{path}: does not match the manifest (damaged or altered)")
    return dict(manifest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _source_frames(folder: Path) -> Iterator[_SourceFrame]:
    """The table's frames in its order; table rows of the same frame are folded together."""
    rows = list(_table_rows(folder))
    order: list[str] = []
    frames: dict[str, _SourceFrame] = {}
    for row in rows:
        key = str(row.get("frame_id") or row["file_name"])
        if key not in frames:
            frames[key] = _SourceFrame(file_name=str(row.get("file_name") or ""), values=row, labels=[])
            order.append(key)
        frames[key].labels.append(row.get("label") or None)
    for key in order:
        yield frames[key]


def _table_rows(folder: Path) -> Iterator[dict[str, Any]]:
    if (folder / "dataset.json").is_file():
        dataset = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        yield from dataset["frames"]
    elif (folder / "metadata.parquet").is_file():
        import pyarrow.parquet as pq

        yield from pq.read_table(folder / "metadata.parquet").to_pylist()
    elif (folder / "metadata.csv").is_file():
        with (folder / "metadata.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield {name: spreadsheet_unguarded(value) for name, value in row.items()}
    else:
        raise ExportArchiveRejected(f"no table of frames ({', '.join(TABLES)}) in the archive")


def _task(
    project: Project,
    params: dict[str, Any],
    classes: list[str],
    frames: list[_SourceFrame],
    report: ExportImportReport,
) -> LabelTask:
    key = str(params.get("task") or "")
    if not key:
        raise ExportArchiveRejected("the manifest names no task")
    labels = {label for frame in frames for label in frame.labels if label}
    task = LabelTask.objects.filter(project=project, key=key).first()
    if task is None:
        task = LabelTask.objects.create(project=project, key=key, name=key.replace("_", " ").capitalize())
        for order, value in enumerate([*classes, *sorted(labels - set(classes))]):
            LabelChoice.objects.create(task=task, value=value, label=value, order=order)
        report.task_created = True
        return task
    unknown = sorted(labels - set(task.choices.values_list("value", flat=True)))
    if unknown:
        raise ExportArchiveRejected(f"the task {key!r} has no choice(s) {', '.join(unknown)}")
    return task


def _date(value: Any) -> datetime.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    return None if value in (None, "") else kind(value)


class _Writer:
    def __init__(
        self,
        project: Project,
        folder: Path,
        labels_as: str,
        task: LabelTask | None,
        annotator_id: int | None,
        report: ExportImportReport,
    ) -> None:
        self.project = project
        self.folder = folder
        self.labels_as = labels_as
        self.task = task
        self.annotator_id = annotator_id
        self.report = report
        self.patients: dict[str, Patient] = {}
        self.examinations: dict[tuple[int, str], Examination] = {}
        self.videos: dict[tuple[int, str], Video] = {}

    def write(self, frames: list[_SourceFrame], progress: ProgressCallback | None) -> None:
        for done, source in enumerate(frames, start=1):
            frame = self._frame(source)
            self._label(frame, source.labels[0])
            if progress is not None:
                progress(done, len(frames), source.file_name)

    def _patient(self, values: dict[str, Any]) -> Patient:
        pseudonym = str(values["patient"])
        patient = self.patients.get(pseudonym)
        if patient is None:
            patient, created = Patient.objects.get_or_create(
                project=self.project, pseudonym=pseudonym, defaults={"cohort": values.get("cohort") or ""}
            )
            self.report.patients_created += created
            self.patients[pseudonym] = patient
        return patient

    def _examination(self, values: dict[str, Any]) -> Examination:
        patient = self._patient(values)
        code = str(values["examination"])
        examination = self.examinations.get((patient.pk, code))
        if examination is None:
            examination, created = Examination.objects.get_or_create(
                patient=patient,
                code=code,
                defaults={
                    "date": _date(values.get("examination_date")),
                    "device": values.get("device") or "",
                    "anatomical_site": values.get("site") or "",
                    "reference_label": values.get("examination_reference_label") or "",
                    "reference_source": values.get("examination_reference_source") or "",
                },
            )
            self.report.examinations_created += created
            self.examinations[(patient.pk, code)] = examination
        return examination

    def _video(self, examination: Examination, name: str) -> Video | None:
        if not name:
            return None
        video = self.videos.get((examination.pk, name))
        if video is None:
            video, created = Video.objects.get_or_create(
                examination=examination, name=name, defaults={"kind": Video.Kind.IMAGE_SEQUENCE}
            )
            self.report.videos_created += created
            self.videos[(examination.pk, name)] = video
        return video

    def _frame(self, source: _SourceFrame) -> Frame:
        values = source.values
        examination = self._examination(values)
        try:
            prepared = prepare_image_file(self.folder / source.file_name, crop=False)
        except ImageRejected as exc:
            raise ExportArchiveRejected(f"{source.file_name}: {exc}") from exc
        existing = Frame.objects.filter(examination=examination, sha256=prepared.sha256).first()
        if existing is not None:
            self.report.frames_existing += 1
            return existing
        own_reference = str(values.get("reference_label") or "")
        if own_reference == (values.get("examination_reference_label") or ""):
            own_reference = ""  # the examination's label, shown through the frame: not the frame's own
        frame = Frame.objects.create(
            examination=examination,
            video=self._video(examination, str(values.get("video") or "")),
            index_in_video=_number(values.get("index_in_video"), int),
            time_s=_number(values.get("time_s"), float),
            source_name=source.file_name,
            sha256=prepared.sha256,
            file=prepared.file,
            file_bytes=prepared.file_bytes,
            width=prepared.width,
            height=prepared.height,
            mode=prepared.mode,
            preview_file=prepared.preview_file,
            preview_width=prepared.preview_width,
            preview_height=prepared.preview_height,
            reference_label=own_reference,
        )
        self.report.frames_created += 1
        return frame

    def _label(self, frame: Frame, value: str | None) -> None:
        if not value:
            return
        if self.labels_as == "reference":
            if frame.reference_label != value:
                frame.reference_label = value
                frame.save(update_fields=["reference_label"])
                self.report.labels_updated += 1
            return
        assert self.task is not None and self.annotator_id is not None
        _, created = Annotation.objects.get_or_create(
            frame=frame,
            task=self.task,
            annotator_id=self.annotator_id,
            defaults={"value": value, "confidence": IMPORTED_CONFIDENCE, "context": Annotation.Context.FREE},
        )
        self.report.labels_created += created
