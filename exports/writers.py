"""The archive of an export plan, one format each, written member by member.

Layouts (every archive also ends with `manifest.json` and `MANIFEST.sha256`, see `write_archive`):

- csv: `metadata.csv` + `images/<sha256>.png` (ZIP).
- parquet: `metadata.parquet` (same columns, typed) + `images/<sha256>.png` (ZIP).
- json: `dataset.json` (every frame with every free annotation, its adjudication, annotator
  pseudonyms and times) + `images/<sha256>.png` (ZIP).
- imagefolder: `<split>/<class>/<key>.png` + `metadata.csv` (ZIP): torchvision's `ImageFolder` and
  timm's folder reader take `<split>/` as their root.
- hf: `<split>/<key>.png` + `metadata.csv` with `file_name`, `label` and `split` (ZIP): the
  Hugging Face `imagefolder` builder's layout.
- webdataset: `shards/<split>-000000.tar`, ... (an uncompressed tar of tar shards of `shard_size`
  samples, each sample `<key>.png`, `<key>.cls` (class index in `classes`), `<key>.json`).

Tables, shards and the manifest are written to scratch files first; images are copied from the
media store as they are (already metadata-free PNGs), read a few ahead by two threads while the
archive writes the one before: memory stays flat whatever the number of frames. CSV cells are
guarded against spreadsheet formula injection.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import heapq
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path, PurePosixPath
from typing import IO, Any

from annotations.datasets import AdjudicationRecord, AnnotationRecord
from exports.archive import (
    ArchiveWriter,
    DeterministicTar,
    DeterministicZip,
    ManifestEntry,
    SnapshotHasher,
)
from exports.params import Format, canonical_json
from exports.snapshot import ExportPlan, ExportRow
from records import media
from records.csvsafe import spreadsheet_safe

ProgressCallback = Callable[[int, int | None, str], None]
MANIFEST_FORMAT_VERSION = 1
HASH_DEFINITION = (
    "sha256 of: the canonical JSON of `parameters` (keys sorted, no spaces), a newline, then one line "
    "'path<TAB>sha256<TAB>size<LF>' per entry of `files`, sorted by path"
)
METADATA_COLUMNS = (
    "file_name", "split", "label", "label_source", "n_annotators", "votes", "annotator", "confidence",
    "patient", "cohort", "examination", "examination_date", "site", "device", "video", "index_in_video",
    "time_s", "reference_label", "reference_source", "examination_reference_label",
    "examination_reference_source", "frame_id", "sha256", "width", "height", "mode",
)  # fmt: skip
PARQUET_ROW_GROUP = 4096
# Stored files are read this many ahead of the one being written, by READ_THREADS threads (reading
# releases the GIL, so it overlaps the archive's CRC and writes); a file above READ_AHEAD_MAX_BYTES
# is streamed in chunks instead. Either way at most a few MiB are held.
READ_AHEAD = 16
READ_THREADS = 2
READ_AHEAD_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class WrittenArchive:
    files: int  # listed in the manifest
    snapshot_hash: str


@dataclass
class _Member:
    path: str
    source: Path | Callable[[], Path] | None  # a local scratch file (made on demand); None: `stored`
    stored: str = ""  # a stored frame's media name (records/media.py), read through the storage
    compress: bool = False
    temporary: bool = False  # a scratch file, deleted once it is in the archive
    frames: int = 0  # progress units it completes
    sha256: str = ""  # known already: a stored frame's file is named by the sha256 of its bytes
    size: int = -1  # known already (a stored frame's file_bytes): checked against the file


def metadata_values(row: ExportRow) -> list[Any]:
    """One table row in METADATA_COLUMNS order (typed: numbers stay numbers, None stays None)."""
    label, frame = row.label, row.frame
    return [
        row.file_name, row.split, label.value, label.source, label.n_annotators, label.votes, label.annotator,
        label.confidence, frame.patient, frame.cohort, frame.examination, frame.examination_date, frame.site,
        frame.device, frame.video, frame.index_in_video, frame.time_s, frame.reference_label,
        frame.reference_source, frame.examination_reference_label, frame.examination_reference_source,
        frame.frame_id, frame.sha256, frame.width, frame.height, frame.mode,
    ]  # fmt: skip


def _json_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def metadata_dict(row: ExportRow) -> dict[str, Any]:
    return {
        name: _json_value(value) for name, value in zip(METADATA_COLUMNS, metadata_values(row), strict=True)
    }


def write_archive(
    plan: ExportPlan, out: IO[bytes], *, scratch: Path, scratch_prefix: str, progress: ProgressCallback
) -> WrittenArchive:
    """Write the plan's archive to `out`; `scratch` (a folder on the same disk) holds the temporary
    tables, shards and manifest, named with `scratch_prefix` so that a killed run's leftovers can be
    found."""
    made: list[Path] = []

    def scratch_file(suffix: str) -> Path:
        handle, name = tempfile.mkstemp(dir=scratch, prefix=scratch_prefix, suffix=suffix)
        os.close(handle)
        made.append(Path(name))
        return made[-1]

    archive: ArchiveWriter = (
        DeterministicTar(out) if plan.params.format == Format.WEBDATASET else DeterministicZip(out)
    )
    manifest: _ManifestFiles | None = None
    try:
        members, total = _members(plan, scratch_file)
        manifest = _ManifestFiles(plan.params.to_json(), scratch_file(".files"), scratch_file(".sha256"))
        done = 0
        progress(0, total, "Writing the archive")
        with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="clear-export") as pool:
            for member, loaded in _read_ahead(members, pool):
                manifest.add(_add(archive, member, loaded))
                done += member.frames
                progress(done, total, "Writing the archive")
        manifest.close()
        archive.add_file(
            "manifest.json", _manifest_json(plan, manifest, scratch_file(".json")), compress=True
        )
        archive.add_file("MANIFEST.sha256", manifest.sums_path, compress=True)
        archive.close()
    except BaseException:
        # Close now, while the file is open (the caller deletes it); left to the garbage collector,
        # the archive would try to finish itself on a closed file.
        if manifest is not None:
            manifest.close()
        with contextlib.suppress(Exception):
            archive.close()
        raise
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    return WrittenArchive(files=manifest.count, snapshot_hash=manifest.hasher.hexdigest())


class _ManifestFiles:
    """The manifest's entries as they are written (in path order): the snapshot hash kept running,
    the `files` list of manifest.json and the lines of MANIFEST.sha256 written to scratch files, so
    that nothing grows with the number of files."""

    def __init__(self, parameters: dict[str, Any], files_path: Path, sums_path: Path) -> None:
        self.hasher = SnapshotHasher(parameters)
        self.files_path, self.sums_path = files_path, sums_path
        self._files = files_path.open("w", encoding="utf-8")
        self._sums = sums_path.open("w", encoding="utf-8")
        self.count = 0

    def add(self, entry: ManifestEntry) -> None:
        self.hasher.add(entry)
        item = json.dumps(
            {"path": entry.path, "sha256": entry.sha256, "size": entry.size}, ensure_ascii=False
        )
        self._files.write(("," if self.count else "") + "\n  " + item)
        self._sums.write(f"{entry.sha256}  {entry.path}\n")
        self.count += 1

    def close(self) -> None:
        self._files.close()
        self._sums.close()


def _load(member: _Member) -> tuple[bytes, str] | None:
    """A small file's bytes and sha256, read (and hashed, unless known) in a pool thread, or None for
    a large one, which is streamed instead.

    A stored frame's sha256 is not computed again: its file was written under the sha256 of its
    bytes (records/media.py, atomically), so re-hashing gigabytes would only look for disk damage,
    which the archive's CRC-32s and the importer's check of every file against the manifest find
    anyway. Its size is checked, which catches a truncated file for free.
    """
    assert member.stored
    if media.size(member.stored) > READ_AHEAD_MAX_BYTES:
        return None
    data = media.read_bytes(member.stored)
    if member.size >= 0 and len(data) != member.size:
        raise OSError(f"{member.stored} has {len(data)} bytes, its frame row says {member.size}: damaged")
    return data, member.sha256 or hashlib.sha256(data).hexdigest()


def _read_ahead(
    members: Iterable[_Member], pool: ThreadPoolExecutor
) -> Iterator[tuple[_Member, tuple[bytes, str] | None]]:
    """The members in order, each stored file already read and hashed by the pool while the archive
    writes the ones before it: at most READ_AHEAD files (a few MiB) are held at once."""
    window: deque[tuple[_Member, Future[tuple[bytes, str] | None] | None]] = deque()
    for member in members:
        window.append((member, pool.submit(_load, member) if member.stored else None))
        if len(window) > READ_AHEAD:
            ahead, future = window.popleft()
            yield ahead, future.result() if future else None
    while window:
        ahead, future = window.popleft()
        yield ahead, future.result() if future else None


def _add(archive: ArchiveWriter, member: _Member, loaded: tuple[bytes, str] | None) -> ManifestEntry:
    if loaded is not None:
        data, digest = loaded
        return archive.add_bytes(member.path, data, compress=member.compress, sha256=digest)
    if member.stored:
        # A large stored file, streamed.
        with media.open_file(member.stored) as handle:
            return archive.add_stream(
                member.path, handle, media.size(member.stored), compress=member.compress
            )
    assert member.source is not None
    source = member.source() if callable(member.source) else member.source
    try:
        return archive.add_file(member.path, source, compress=member.compress)
    finally:
        if member.temporary:
            source.unlink(missing_ok=True)


def _manifest_json(plan: ExportPlan, manifest: _ManifestFiles, path: Path) -> Path:
    """manifest.json with its keys in sorted order: those before `files`, the files list copied from
    its scratch file, then the rest (the snapshot hash is known only now)."""
    before = {
        "class_folders": plan.class_folders if plan.params.format == Format.IMAGEFOLDER else {},
        "classes": plan.classes,
        "counts": plan.counts,
    }
    after = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "generator": "CLEAR dataset export",
        "notes": plan.notes,
        "parameters": plan.params.to_json(),
        "snapshot_hash": manifest.hasher.hexdigest(),
        "snapshot_hash_definition": HASH_DEFINITION,
    }

    def fields(values: dict[str, Any]) -> str:
        return ",\n".join(
            f" {json.dumps(key)}: {json.dumps(value, sort_keys=True, ensure_ascii=False)}"
            for key, value in values.items()
        )

    with path.open("w", encoding="utf-8") as out:
        out.write("{\n" + fields(before) + ',\n "files": [')
        with manifest.files_path.open(encoding="utf-8") as files:
            shutil.copyfileobj(files, out)
        out.write("\n ],\n" + fields(after) + "\n}\n")
    return path


def _members(plan: ExportPlan, scratch_file: Callable[[str], Path]) -> tuple[Iterator[_Member], int]:
    """The archive's members in path order, made one at a time, and how many frames they carry."""
    fmt = plan.params.format
    if fmt == Format.WEBDATASET:
        shards = _shard_members(plan, scratch_file)
        return iter(shards), sum(member.frames for member in shards)
    images = plan.image_members()
    if fmt == Format.JSON:
        table = _Member(
            "dataset.json", _write_json(plan, scratch_file(".json")), compress=True, temporary=True
        )
    elif fmt == Format.PARQUET:
        table = _Member("metadata.parquet", _write_parquet(plan, scratch_file(".parquet")), temporary=True)
    else:
        table = _Member("metadata.csv", _write_csv(plan, scratch_file(".csv")), compress=True, temporary=True)
    image_members = (
        _Member(path, None, stored=frame.file, frames=1, sha256=frame.sha256, size=frame.file_bytes)
        for path, frame in images
    )
    return heapq.merge(image_members, [table], key=lambda member: member.path), len(images)


def _write_csv(plan: ExportPlan, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(METADATA_COLUMNS)
        for row in plan.rows:
            writer.writerow([spreadsheet_safe(_csv_cell(value)) for value in metadata_values(row)])
    return path


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _parquet_schema() -> Any:
    import pyarrow as pa

    types = {
        "n_annotators": pa.int32(), "votes": pa.int32(), "confidence": pa.int32(),
        "examination_date": pa.date32(), "index_in_video": pa.int64(), "time_s": pa.float64(),
        "frame_id": pa.int64(), "width": pa.int32(), "height": pa.int32(),
    }  # fmt: skip
    return pa.schema([(name, types.get(name, pa.string())) for name in METADATA_COLUMNS])


def _write_parquet(plan: ExportPlan, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for start in range(0, len(plan.rows), PARQUET_ROW_GROUP):
            chunk = plan.rows[start : start + PARQUET_ROW_GROUP]
            columns = list(zip(*(metadata_values(row) for row in chunk), strict=True))
            writer.write_table(pa.Table.from_arrays([list(column) for column in columns], schema=schema))
    return path


def _annotation_json(record: AnnotationRecord) -> dict[str, Any]:
    return {
        "annotator": record.annotator,
        "value": record.value,
        "confidence": record.confidence,
        "time_on_frame_ms": record.time_on_frame_ms,
        "ai_shown": record.ai_shown,
        "cam_visible_ms": record.cam_visible_ms,
        "version": record.version,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def _adjudication_json(record: AdjudicationRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "value": record.value,
        "rationale": record.rationale,
        "adjudicated_by": record.adjudicated_by,
        "version": record.version,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


FRAME_JSON_DROPPED = ("label_source", "annotator", "confidence", "votes")


def _frames_json(plan: ExportPlan) -> Iterator[dict[str, Any]]:
    """One object per frame (rows of one frame are adjacent): its metadata, its label under the
    export's source (null for every annotator's labels: see `annotations`), every free annotation
    and the adjudication."""
    single = plan.params.label_source != "every_annotator"
    for frame_id, group in groupby(plan.rows, key=lambda row: row.frame.frame_id):
        first = next(group)
        entry = {key: value for key, value in metadata_dict(first).items() if key not in FRAME_JSON_DROPPED}
        entry["label"] = first.label.value if single else None
        entry["annotations"] = [_annotation_json(record) for record in plan.annotations.get(frame_id, [])]
        entry["adjudication"] = _adjudication_json(plan.adjudications.get(frame_id))
        yield entry


def _write_json(plan: ExportPlan, path: Path) -> Path:
    header = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "task": plan.params.task_key,
        "label_source": str(plan.params.label_source),
        "classes": plan.classes,
    }
    with path.open("w", encoding="utf-8") as handle:
        handle.write(canonical_json(header)[:-1] + ',"frames":[\n')
        for position, entry in enumerate(_frames_json(plan)):
            handle.write(("," if position else "") + canonical_json(entry) + "\n")
        handle.write("]}\n")
    return path


def _shard_members(plan: ExportPlan, scratch_file: Callable[[str], Path]) -> list[_Member]:
    """One member per shard; each shard is written to a scratch file only when its turn comes."""
    size = max(1, plan.params.shard_size)
    index = {value: position for position, value in enumerate(plan.classes)}
    members: list[_Member] = []
    by_split: dict[str, list[ExportRow]] = {}
    for row in plan.rows:
        by_split.setdefault(row.split, []).append(row)
    for side, rows in sorted(by_split.items()):
        for number, start in enumerate(range(0, len(rows), size)):
            chunk = rows[start : start + size]

            def build(chunk: list[ExportRow] = chunk) -> Path:
                return _write_shard(chunk, index, scratch_file(".tar"))

            members.append(
                _Member(f"shards/{side}-{number:06d}.tar", build, temporary=True, frames=len(chunk))
            )
    return members


def _write_shard(rows: Sequence[ExportRow], class_index: dict[str, int], path: Path) -> Path:
    with path.open("wb") as handle:
        shard = DeterministicTar(handle)
        for row in rows:
            assert row.label.value is not None
            stored = media.checked(row.frame.file)
            shard.add_bytes(f"{row.key}.cls", f"{class_index[row.label.value]}\n".encode())
            shard.add_bytes(f"{row.key}.json", canonical_json(metadata_dict(row)).encode())
            with media.open_file(stored) as image:
                suffix = PurePosixPath(stored).suffix or ".png"
                shard.add_stream(f"{row.key}{suffix}", image, media.size(stored))
        shard.close()
    return path
