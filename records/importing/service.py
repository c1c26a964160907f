"""The import service: sources in, patients / examinations / videos / frames out, with a report.

Guarantees:
- One bad file never stops the import; it becomes an entry in the report's `errors`.
- Each image frame is stored atomically (its parents, if new, in the same transaction), and a video
  as a whole: its Video row and all its frames in one transaction, or nothing.
- Media files are written before the rows that reference them (content-addressed, atomic renames);
  when a row cannot be written, the files this attempt created and no row references are removed.
- A frame whose content (sha256 of the stored PNG) is already in the examination is a duplicate:
  skipped and reported. So running the same import twice (a redelivered Celery task) stores
  nothing new, and a concurrent insert of the same frame (the unique constraint) counts as one.

Speed: decoding, re-encoding, hashing and file writes run in a small thread pool (Pillow and
ISA-L release the GIL; previews are rendered afterwards, see records.previews); the main thread only
talks to the database, with patients, examinations, sequences and each examination's known hashes
cached, so a frame costs one INSERT.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, Max
from django.utils import timezone
from psycopg.types.json import Jsonb

from records import media
from records.importing.images import ImageRejected, PreparedFrame, prepare_image_file, prepare_pixels
from records.importing.layout import FileKind
from records.importing.metadata import MetadataRejected, read_metadata
from records.importing.options import ImportOptions, ImportReport
from records.importing.plan import Candidate, Plan, build_plan
from records.importing.video import DecodedFrame, VideoInfo, VideoRejected, decode_frames, probe_video
from records.models import Examination, Frame, Patient, Project, Video
from records.pseudonyms import pseudonym_for

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None, str], None]

# Frames prepared ahead of the database writes, per worker thread: enough to keep every thread
# busy while the main thread inserts, little enough that memory stays flat for any source size.
PREFETCH_PER_WORKER = 4
VIDEO_INSERT_BATCH = 500
# Image frames are written to the database in batches of this many, one transaction (one commit,
# one WAL flush) per batch instead of per frame; a batch that collides with a concurrent import is
# rolled back and written frame by frame.
IMAGE_INSERT_BATCH = 64
# A video whose rows collide with a concurrent import is retried this often, re-reading what the
# other import stored (its frames then count as duplicates).
VIDEO_ATTEMPTS = 2


def import_sources(
    *,
    project_id: int,
    sources: list[Path],
    metadata: Path | None,
    options: ImportOptions,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import folders, ZIP archives, images and videos into project `project_id`.

    `metadata` is an optional CSV/XLSX sheet (records/importing/metadata.py). `progress(done,
    total, message)` is called as work proceeds: one unit per image, and per kept frame of a video
    (estimated from its header until it is decoded).
    """
    project = Project.objects.get(pk=project_id)
    report = ImportReport()
    sheet = None
    if metadata is not None:
        try:
            sheet = read_metadata(metadata)
        except MetadataRejected as exc:
            report.add_error(metadata.name, str(exc))
    with tempfile.TemporaryDirectory(prefix="clear-import-", dir=_scratch_root()) as scratch:
        plan = build_plan(
            sources=sources,
            metadata=sheet,
            metadata_path=metadata,
            options=options,
            report=report,
            scratch=Path(scratch),
        )
        workers = _worker_count()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clear-import") as pool:
            importer = _Importer(
                project=project, options=options, report=report, progress=progress, pool=pool, workers=workers
            )
            importer.run(plan)
    return report


def _scratch_root() -> Path:
    """Archives are extracted next to the uploads (the big disk), not into a small /tmp."""
    root = Path(settings.CLEAR_UPLOAD_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _worker_count() -> int:
    configured = getattr(settings, "CLEAR_IMPORT_THREADS", None)
    return int(configured) if configured else max(1, min(4, os.cpu_count() or 1))


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _Created:
    """Rows created inside one unit of work; counted in the report only once it commits."""

    patients: int = 0
    examinations: int = 0
    videos: int = 0


@dataclass
class _VideoFrame:
    decoded_index: int
    time_s: float
    prepared: PreparedFrame


@dataclass
class _DecodedVideo:
    frames: list[_VideoFrame] = field(default_factory=list)
    created_files: list[str] = field(default_factory=list)
    frame_count: int = 0


class _Importer:
    def __init__(
        self,
        *,
        project: Project,
        options: ImportOptions,
        report: ImportReport,
        progress: ProgressCallback | None,
        pool: ThreadPoolExecutor,
        workers: int,
    ) -> None:
        self.project = project
        self.options = options
        self.report = report
        self.progress = progress
        self.pool = pool
        self.window = PREFETCH_PER_WORKER * workers
        self.examination_values: dict[tuple[str, str], dict[str, Any]] = {}
        self.done = 0
        self.total = 0
        self._clear_caches()
        self._touched_sequences: set[int] = set()
        self._image_batch: list[tuple[Candidate, PreparedFrame, str]] = []
        self._examinations_seen: set[tuple[str, str]] = set()

    # -- caches ---------------------------------------------------------------------------------

    def _clear_caches(self) -> None:
        """Forget everything cached; called after a rollback, when cached rows may not exist."""
        self._patients: dict[str, Patient] = {}
        self._examinations: dict[tuple[int, str], Examination] = {}
        self._sequences: dict[tuple[int, str], Video] = {}
        self._known_frames: dict[int, dict[str, int]] = {}  # examination id -> sha256 -> frame id
        self._next_index: dict[int, int] = {}  # sequence (Video) id -> next free index_in_video

    def _patient(self, identifier: str, created: _Created) -> Patient:
        pseudonym = pseudonym_for(identifier)
        patient = self._patients.get(pseudonym)
        if patient is None:
            patient, was_created = Patient.objects.get_or_create(project=self.project, pseudonym=pseudonym)
            created.patients += was_created
            self._patients[pseudonym] = patient
        return patient

    def _examination(self, patient: Patient, identifier: str, code: str, created: _Created) -> Examination:
        key = (patient.pk, code)
        examination = self._examinations.get(key)
        if examination is not None:
            return examination
        values = self.examination_values.get((identifier, code), {})
        defaults = {"device": self.options.device, "anatomical_site": self.options.anatomical_site, **values}
        examination, was_created = Examination.objects.get_or_create(
            patient=patient, code=code, defaults=defaults
        )
        created.examinations += was_created
        self._examinations_seen.add((identifier, code))
        if not was_created:
            # The sheet is the user's explicit word and updates an examination imported before;
            # the command-line defaults only fill what is still empty.
            changed = [name for name, value in values.items() if getattr(examination, name) != value]
            for name in changed:
                setattr(examination, name, values[name])
            for name in ("device", "anatomical_site"):
                if not getattr(examination, name) and defaults[name] and name not in values:
                    setattr(examination, name, defaults[name])
                    changed.append(name)
            if changed:
                examination.save(update_fields=changed)
        self._examinations[key] = examination
        return examination

    def _sequence(self, examination: Examination, name: str, created: _Created) -> Video:
        key = (examination.pk, name)
        video = self._sequences.get(key)
        if video is None:
            video, was_created = Video.objects.get_or_create(
                examination=examination, name=name, defaults={"kind": Video.Kind.IMAGE_SEQUENCE}
            )
            created.videos += was_created
            self._sequences[key] = video
        return video

    def _known(self, examination: Examination) -> dict[str, int]:
        known = self._known_frames.get(examination.pk)
        if known is None:
            known = dict(Frame.objects.filter(examination=examination).values_list("sha256", "id"))
            self._known_frames[examination.pk] = known
        return known

    def _index_after_last(self, video: Video) -> int:
        index = self._next_index.get(video.pk)
        if index is None:
            last = Frame.objects.filter(video=video).aggregate(last=Max("index_in_video"))["last"]
            index = 0 if last is None else last + 1
            self._next_index[video.pk] = index
        return index

    @contextmanager
    def _unit(self) -> Iterator[_Created]:
        """One atomic unit of work: its rows commit together or not at all.

        After a rollback the caches may hold rows that no longer exist, so they are dropped; the
        creation counts reach the report only on commit. Media files are the caller's to clean up:
        a retry still needs them.
        """
        created = _Created()
        try:
            with transaction.atomic():
                yield created
        except BaseException:
            self._clear_caches()
            raise
        self.report.patients_created += created.patients
        self.report.examinations_created += created.examinations
        self.report.videos_created += created.videos

    # -- the run --------------------------------------------------------------------------------

    def run(self, plan: Plan) -> None:
        self.examination_values = plan.examination_values
        infos: dict[int, VideoInfo | VideoRejected] = {}
        for candidate in plan.candidates:
            if candidate.kind is FileKind.VIDEO:
                try:
                    info = probe_video(candidate.path)
                    infos[id(candidate)] = info
                    self.total += self._video_units(info)
                except VideoRejected as exc:
                    infos[id(candidate)] = exc
                    self.total += 1
            else:
                self.total += 1
        self._report_progress("starting")

        pending: deque[tuple[Candidate, Future[PreparedFrame]]] = deque()
        for candidate in plan.candidates:
            if candidate.kind is FileKind.IMAGE:
                pending.append(
                    (candidate, self.pool.submit(prepare_image_file, candidate.path, crop=self.options.crop))
                )
                if len(pending) >= self.window:
                    self._finish_image(*pending.popleft())
                continue
            while pending:
                self._finish_image(*pending.popleft())
            self._flush_images()
            info_or_error = infos[id(candidate)]
            if isinstance(info_or_error, VideoRejected):
                self.report.add_error(candidate.stored_name(), str(info_or_error))
                self._advance(1, candidate)
            else:
                self._import_video(candidate, info_or_error)
        while pending:
            self._finish_image(*pending.popleft())
        self._flush_images()

        self._update_sequence_counts()
        self._apply_examination_values_without_files()
        self._report_progress("done: " + self.report.summary())

    def _advance(self, units: int, candidate: Candidate) -> None:
        self.done += units
        self._report_progress(candidate.stored_name())

    def _report_progress(self, message: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, message)

    def _video_units(self, info: VideoInfo) -> int:
        if not info.estimated_frames:
            return 1
        return max(1, -(-info.estimated_frames // self.options.every_nth))

    # -- images ---------------------------------------------------------------------------------

    def _finish_image(self, candidate: Candidate, future: Future[PreparedFrame]) -> None:
        name = candidate.stored_name()
        try:
            prepared = future.result()
            self._image_batch.append((candidate, prepared, name))
            if len(self._image_batch) >= IMAGE_INSERT_BATCH:
                self._flush_images()
        except ImageRejected as exc:
            self.report.add_error(name, str(exc))
        except Exception as exc:  # one bad file must never end the import
            logger.exception("importing %s failed", name)
            self.report.add_error(name, f"{type(exc).__name__}: {exc}")
        self._advance(1, candidate)

    def _flush_images(self) -> None:
        """Write the prepared image frames waiting in the batch: together, or else one by one."""
        batch, self._image_batch = self._image_batch, []
        if not batch:
            return
        try:
            self._insert_image_batch(batch)
            return
        except IntegrityError:
            logger.info(
                "a batch of %d frames collided with another import; writing them one by one", len(batch)
            )
        except Exception:
            logger.exception("writing a batch of %d frames failed; writing them one by one", len(batch))
        for candidate, prepared, name in batch:
            try:
                self._store_image(candidate, prepared, name)
            except Exception as exc:  # one bad file must never end the import
                logger.exception("importing %s failed", name)
                self.report.add_error(name, f"{type(exc).__name__}: {exc}")

    def _insert_image_batch(self, batch: list[tuple[Candidate, PreparedFrame, str]]) -> None:
        rows: list[Frame] = []
        # (path, id of the frame already stored, or the (examination id, sha256) inserted by this batch)
        duplicates: list[tuple[str, int | tuple[int, str]]] = []
        in_batch: set[tuple[int, str]] = set()  # (examination id, sha256) inserted by this batch
        next_index: dict[int, int] = {}
        with self._unit() as created:
            for candidate, prepared, name in batch:
                placement = candidate.placement
                assert placement is not None
                patient = self._patient(placement.patient_identifier, created)
                examination = self._examination(
                    patient, placement.patient_identifier, placement.examination, created
                )
                existing = self._known(examination).get(prepared.sha256)
                if existing is not None:
                    duplicates.append((name, existing))
                    continue
                if (examination.pk, prepared.sha256) in in_batch:
                    duplicates.append((name, (examination.pk, prepared.sha256)))
                    continue
                in_batch.add((examination.pk, prepared.sha256))
                video = None
                index = None
                if placement.group is not None:
                    video = self._sequence(examination, placement.group, created)
                    index = next_index.get(video.pk, self._index_after_last(video))
                    next_index[video.pk] = index + 1
                rows.append(
                    Frame(
                        **_frame_fields(prepared),
                        examination=examination,
                        video=video,
                        index_in_video=index,
                        source_name=name,
                        reference_label=candidate.reference_label,
                    )
                )
            stored = Frame.objects.bulk_create(rows)
        # Committed: only now may the caches and the report learn about the new rows.
        for row in stored:
            self._known_frames[row.examination_id][row.sha256] = row.pk
        self._next_index.update(next_index)
        self._touched_sequences.update(next_index)
        self.report.frames_created += len(stored)
        # bulk_create sets every pk on PostgreSQL and SQLite (RETURNING).
        by_content: dict[tuple[int, str], int] = {(row.examination_id, row.sha256): row.id for row in stored}
        for name, original in duplicates:
            first = by_content[original] if isinstance(original, tuple) else original
            self.report.add_duplicate(name, kind="frame", duplicate_of=first)

    def _store_image(self, candidate: Candidate, prepared: PreparedFrame, name: str) -> None:
        try:
            self._insert_image(candidate, prepared, name)
        except BaseException:
            _remove_unreferenced(prepared.created_files)
            raise

    def _insert_image(self, candidate: Candidate, prepared: PreparedFrame, name: str) -> None:
        placement = candidate.placement
        assert placement is not None
        for attempt in (1, 2):
            try:
                with self._unit() as created:
                    patient = self._patient(placement.patient_identifier, created)
                    examination = self._examination(
                        patient, placement.patient_identifier, placement.examination, created
                    )
                    existing = self._known(examination).get(prepared.sha256)
                    if existing is not None:
                        self.report.add_duplicate(name, kind="frame", duplicate_of=existing)
                        return
                    video = None
                    index = None
                    if placement.group is not None:
                        video = self._sequence(examination, placement.group, created)
                        index = self._index_after_last(video)
                    frame = Frame.objects.create(
                        **_frame_fields(prepared),
                        examination=examination,
                        video=video,
                        index_in_video=index,
                        source_name=name,
                        reference_label=candidate.reference_label,
                    )
            except IntegrityError:
                # Another import inserted this content (or took this sequence index) meanwhile; the
                # caches were cleared, so the next attempt reads what it stored.
                if attempt == 2:
                    raise
                continue
            self._known(examination)[prepared.sha256] = frame.pk
            if video is not None:
                assert index is not None
                self._next_index[video.pk] = index + 1
                self._touched_sequences.add(video.pk)
            self.report.frames_created += 1
            return

    # -- videos ---------------------------------------------------------------------------------

    def _import_video(self, candidate: Candidate, info: VideoInfo) -> None:
        name = candidate.stored_name()
        units = self._video_units(info)
        start = self.done
        try:
            self._store_video(candidate, info, name, start, units)
        except (VideoRejected, ImageRejected) as exc:
            self.report.add_error(name, str(exc))
        except Exception as exc:
            logger.exception("importing %s failed", name)
            self.report.add_error(name, f"{type(exc).__name__}: {exc}")
        self.done = start
        self._advance(units, candidate)

    def _store_video(self, candidate: Candidate, info: VideoInfo, name: str, start: int, units: int) -> None:
        placement = candidate.placement
        assert placement is not None and placement.group is not None
        if self._already_imported(candidate, name):
            return
        # The source file is hashed and stored by a pool thread while its frames are decoded: done
        # after the last frame, it was 5-10 ms of a 3 MB pCLE video's 0.3 s import with one core
        # idle (bench/README.md, import).
        source = self.pool.submit(_store_source_file, candidate.path)
        try:
            decoded = self._decode_video(candidate, name, start, units)
        except BaseException:
            _discard_source_file(source)
            raise
        try:
            source_sha256, source_file, source_created = source.result()
        except BaseException:
            _remove_unreferenced(decoded.created_files)
            raise
        if source_created:
            decoded.created_files.append(source_file)
        video_fields = {
            "name": placement.group,
            "kind": Video.Kind.VIDEO_FILE,
            "source_sha256": source_sha256,
            "source_file": source_file,
            "codec": info.codec,
            "frame_rate": info.frame_rate,
            "frame_count": decoded.frame_count,
            "duration_s": _duration(info, decoded.frame_count),
            "width": info.width,
            "height": info.height,
            "every_nth": self.options.every_nth,
        }
        try:
            for attempt in range(1, VIDEO_ATTEMPTS + 1):
                # A concurrent import of the same video is found here on the second attempt.
                if attempt > 1 and self._already_imported(candidate, name, source_sha256):
                    _remove_unreferenced(decoded.created_files)
                    return
                try:
                    with self._unit() as created:
                        self._insert_video(candidate, video_fields, decoded, name, created)
                    return
                except IntegrityError:
                    if attempt == VIDEO_ATTEMPTS:
                        raise
        except BaseException:
            _remove_unreferenced(decoded.created_files)
            raise

    def _already_imported(self, candidate: Candidate, name: str, source_sha256: str | None = None) -> bool:
        """True (and reported) when this very video is stored; raises when another one has its name.
        The source file is hashed here, when not given, only if a video of its name exists."""
        placement = candidate.placement
        assert placement is not None and placement.group is not None
        existing = (
            Video.objects.filter(
                examination__patient__project=self.project,
                examination__patient__pseudonym=pseudonym_for(placement.patient_identifier),
                examination__code=placement.examination,
                name=placement.group,
            )
            .only("id", "source_sha256", "every_nth")
            .first()
        )
        if existing is None:
            return False
        if source_sha256 is None:
            source_sha256 = sha256_of_file(candidate.path)
        if existing.source_sha256 == source_sha256 and existing.every_nth == self.options.every_nth:
            self.report.add_duplicate(name, kind="video", duplicate_of=existing.pk)
            return True
        raise VideoRejected(
            f"examination {placement.examination} already has a video '{placement.group}' from another "
            f"file or with another every_nth ({existing.every_nth}); rename the file to import it"
        )

    def _decode_video(self, candidate: Candidate, name: str, start: int, units: int) -> _DecodedVideo:
        """Decode and prepare every kept frame (files written, no rows yet)."""
        result = _DecodedVideo()
        counter = [0]
        pending: deque[tuple[DecodedFrame, Future[PreparedFrame]]] = deque()

        def collect() -> None:
            decoded_frame, future = pending.popleft()
            prepared = future.result()
            result.created_files.extend(prepared.created_files)
            result.frames.append(
                _VideoFrame(decoded_index=decoded_frame.index, time_s=decoded_frame.time_s, prepared=prepared)
            )
            self.done = start + min(len(result.frames), units)
            self._report_progress(f"{name}: frame {decoded_frame.index}")

        try:
            frames = decode_frames(candidate.path, every_nth=self.options.every_nth, counter=counter)
            for decoded_frame in frames:
                future = self.pool.submit(_prepare_video_frame, decoded_frame, crop=self.options.crop)
                pending.append((decoded_frame, future))
                if len(pending) >= self.window:
                    collect()
            while pending:
                collect()
        except BaseException:
            for _, future in pending:
                future.cancel()
            for _, future in pending:
                if not future.cancelled() and future.exception() is None:
                    result.created_files.extend(future.result().created_files)
            _remove_unreferenced(result.created_files)
            raise
        result.frame_count = counter[0]
        return result

    def _insert_video(
        self,
        candidate: Candidate,
        video_fields: dict[str, Any],
        decoded: _DecodedVideo,
        display: str,
        created: _Created,
    ) -> None:
        placement = candidate.placement
        assert placement is not None
        patient = self._patient(placement.patient_identifier, created)
        examination = self._examination(patient, placement.patient_identifier, placement.examination, created)
        video = Video.objects.create(examination=examination, **video_fields)
        created.videos += 1
        known = self._known(examination)
        first_of_content: dict[str, int] = {}  # sha256 -> decoded index of its first frame here
        rows: list[Frame] = []
        duplicates: list[tuple[str, str | int]] = []  # (frame path, existing frame id or sha256)
        for frame in decoded.frames:
            sha256 = frame.prepared.sha256
            path = f"{display}#frame={frame.decoded_index}"
            if sha256 in known:
                duplicates.append((path, known[sha256]))
                continue
            if sha256 in first_of_content:
                duplicates.append((path, sha256))  # a still repeated within this video
                continue
            first_of_content[sha256] = frame.decoded_index
            rows.append(
                Frame(
                    **_frame_fields(frame.prepared),
                    examination=examination,
                    video=video,
                    index_in_video=frame.decoded_index,
                    time_s=frame.time_s,
                    source_name=path,
                    reference_label=candidate.reference_label,
                )
            )
        stored = _insert_frames(rows, video)
        for row in stored:
            known[row.sha256] = row.pk
        for path, existing in duplicates:
            frame_id = known[existing] if isinstance(existing, str) else existing
            self.report.add_duplicate(path, kind="frame", duplicate_of=frame_id)
        self.report.frames_created += len(stored)

    # -- after the files ------------------------------------------------------------------------

    def _update_sequence_counts(self) -> None:
        """An image sequence's frame_count is the number of frames it holds."""
        if not self._touched_sequences:
            return
        counts = (
            Video.objects.filter(pk__in=self._touched_sequences)
            .annotate(stored=Count("frames"))
            .values_list("pk", "stored")
        )
        for pk, stored in counts:
            Video.objects.filter(pk=pk).update(frame_count=stored)

    def _apply_examination_values_without_files(self) -> None:
        """Sheet rows for examinations no imported file belonged to update those already stored."""
        for (identifier, code), values in self.examination_values.items():
            if (identifier, code) in self._examinations_seen or not values:
                continue
            examination = Examination.objects.filter(
                patient__project=self.project, patient__pseudonym=pseudonym_for(identifier), code=code
            ).first()
            if examination is None:
                self.report.add_warning(
                    "metadata", f"examination '{code}' of a patient in the sheet was not found; row ignored"
                )
                continue
            for attribute, value in values.items():
                setattr(examination, attribute, value)
            examination.save(update_fields=list(values))


# Field types whose Python value is already what psycopg adapts (Django's get_db_prep_save returns
# it unchanged); see _copy_value.
_PLAIN_FIELDS = (
    models.CharField,
    models.IntegerField,
    models.FloatField,
    models.BooleanField,
    models.ForeignKey,
)


def _copy_value(field: models.Field[Any, Any], now: datetime) -> Callable[[Frame], Any]:
    """How COPY gets `field`'s value from a new row: plain values as they are, JSON as Jsonb,
    auto_now_add times as `now`, anything else as Model.save would prepare it."""
    if isinstance(field, _PLAIN_FIELDS):
        attname = field.attname
        return lambda row: getattr(row, attname)
    if isinstance(field, models.JSONField):
        attname = field.attname
        return lambda row: None if getattr(row, attname) is None else Jsonb(getattr(row, attname))
    if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
        return lambda row: now
    return lambda row: field.get_db_prep_save(field.pre_save(row, True), connection)


def _insert_frames(rows: list[Frame], video: Video) -> list[Frame]:
    """Insert a video's new frame rows (in the caller's transaction) and return them with their ids.

    On PostgreSQL through COPY with the rows' values as they are: bulk_create compiled one INSERT
    with a prepared parameter per value, 0.15 s for the 260 frames of a pCLE video, after the
    decoding and alone on one core, about a fifth of the import (bench/import_bench.py). The ids are
    read back by index in the video, unique within it. Elsewhere (SQLite) bulk_create."""
    if connection.vendor != "postgresql" or not rows:
        return Frame.objects.bulk_create(rows, batch_size=VIDEO_INSERT_BATCH)
    fields = [field for field in Frame._meta.concrete_fields if not field.primary_key]
    values = [_copy_value(field, timezone.now()) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(Frame._meta.db_table)
    # COPY is a method of psycopg's own cursor, under Django's wrapper.
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([value(row) for value in values])
    ids = dict(Frame.objects.filter(video=video).values_list("index_in_video", "pk"))
    for row in rows:
        row.pk = ids[row.index_in_video]
        row._state.adding = False
        row._state.db = connection.alias
    return rows


def _store_source_file(path: Path) -> tuple[str, str, bool]:
    """Hash and store a video's source file: its sha256, its media name, and whether this call
    created the file."""
    sha256 = sha256_of_file(path)
    name = media.content_path("videos", sha256, path.suffix.lower())
    return sha256, name, media.save_file(name, path)


def _discard_source_file(stored: Future[tuple[str, str, bool]]) -> None:
    """Remove the source file a failed import stored (once the thread storing it is done with it);
    a failure to store it is not reported: the decoding's error is."""
    try:
        _sha256, name, created = stored.result()
    except Exception:
        return
    if created:
        _remove_unreferenced([name])


def _prepare_video_frame(decoded: DecodedFrame, *, crop: bool) -> PreparedFrame:
    return prepare_pixels(decoded.pixels(), crop=crop)


def _frame_fields(prepared: PreparedFrame) -> dict[str, Any]:
    return {
        "sha256": prepared.sha256,
        "file": prepared.file,
        "file_bytes": prepared.file_bytes,
        "width": prepared.width,
        "height": prepared.height,
        "mode": prepared.mode,
        "preview_file": prepared.preview_file,
        "preview_width": prepared.preview_width,
        "preview_height": prepared.preview_height,
        "crop_box": prepared.crop_box,
    }


def _duration(info: VideoInfo, frame_count: int) -> float | None:
    if info.frame_rate:
        return frame_count / info.frame_rate
    return info.duration_s


def _remove_unreferenced(relatives: tuple[str, ...] | list[str]) -> None:
    """Delete media files this attempt created unless some row (of any import) points to them."""
    for relative in relatives:
        kind = relative.split("/", 1)[0]
        if kind == "frames":
            referenced = Frame.objects.filter(file=relative).exists()
        elif kind == "videos":
            referenced = Video.objects.filter(source_file=relative).exists()
        else:
            referenced = True
        if not referenced:
            media.delete(relative)
