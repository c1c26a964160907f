"""Building an export snapshot's archive: the work of the export job.

The archive is streamed to a temporary file in a local scratch folder (`media.scratch_dir`: the
storage's own exports folder on the local backend, so that storing it is an atomic rename; the media
cache folder when the storage is remote, then uploaded), fsynced, and stored under its final name
through the storage API; only then does the snapshot row say `ready`. A run that fails removes its
temporary files and marks the snapshot failed. A worker killed mid-run leaves a temporary file and a
snapshot still `running`; the job is taken over when its message comes back (acks_late), and the new
run first deletes every leftover of this snapshot (temporary files and any stored archive no row
points at), then builds it afresh. So there is never a half-written archive under a real name, and
the snapshot's file is either complete or absent.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from django.utils import timezone

from exports.models import ExportSnapshot
from exports.params import ExportParams
from exports.snapshot import build_plan
from exports.writers import ProgressCallback, write_archive
from records import media

logger = logging.getLogger(__name__)
EXPORTS_FOLDER = "exports"
# The archive's small writes (ZIP headers, rewritten after each member) go out in large blocks.
OUTPUT_BUFFER_BYTES = 1024 * 1024


def scratch_folder() -> Path:
    return media.scratch_dir(EXPORTS_FOLDER)


def temporary_prefix(snapshot_id: int) -> str:
    return f".tmp-snapshot-{snapshot_id}-"


def final_name(snapshot: ExportSnapshot, digest: str) -> str:
    return f"snapshot-{snapshot.pk}-{digest[:16]}{snapshot.archive_suffix}"


def remove_leftovers(snapshot_id: int) -> list[str]:
    """Delete what an earlier, interrupted run of this snapshot left: temporary files in the scratch
    folder and stored archives of the snapshot."""
    removed = []
    for path in scratch_folder().glob(f"{temporary_prefix(snapshot_id)}*"):
        path.unlink(missing_ok=True)
        removed.append(str(path))
    for name in media.list_folder(EXPORTS_FOLDER):
        if PurePosixPath(name).name.startswith(f"snapshot-{snapshot_id}-"):
            media.delete(name)
            removed.append(name)
    if removed:
        logger.warning(
            "export %s: removed %d leftover file(s) of an interrupted run", snapshot_id, len(removed)
        )
    return removed


def export_snapshot_build(*, snapshot_id: int, progress: ProgressCallback) -> dict[str, Any]:
    """Build the snapshot's archive; returns the job's result. Raises (after marking the snapshot
    failed) when it cannot be built."""
    snapshot = ExportSnapshot.objects.get(pk=snapshot_id)
    ExportSnapshot.objects.filter(pk=snapshot_id).update(status=ExportSnapshot.Status.RUNNING, error="")
    folder = scratch_folder()
    remove_leftovers(snapshot_id)
    prefix = temporary_prefix(snapshot_id)
    handle, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=snapshot.archive_suffix)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb", buffering=OUTPUT_BUFFER_BYTES) as out:
            plan = build_plan(ExportParams.from_snapshot(snapshot), progress)
            written = write_archive(plan, out, scratch=folder, scratch_prefix=prefix, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        relative = f"{EXPORTS_FOLDER}/{final_name(snapshot, written.snapshot_hash)}"
        # The name holds the snapshot hash: a file already there has these bytes.
        media.save_file(relative, temporary, move=True)
        file_bytes = media.size(relative)
    except Exception as exc:
        for path in folder.glob(f"{prefix}*"):
            path.unlink(missing_ok=True)
        ExportSnapshot.objects.filter(pk=snapshot_id).update(
            status=ExportSnapshot.Status.FAILED, error=f"{exc}"[:2000], finished_at=timezone.now()
        )
        raise
    except BaseException:
        # Worker shutdown or a hard time limit: leave the row running for the re-run, but no files.
        for path in folder.glob(f"{prefix}*"):
            path.unlink(missing_ok=True)
        raise
    ExportSnapshot.objects.filter(pk=snapshot_id).update(
        status=ExportSnapshot.Status.READY,
        file=relative,
        file_bytes=file_bytes,
        snapshot_hash=written.snapshot_hash,
        counts=plan.counts,
        notes=plan.notes,
        finished_at=timezone.now(),
    )
    counts = plan.counts
    summary = (
        f"{counts['frames']} frames of {counts['patients']} patients in {len(counts['splits'])} split(s), "
        f"{written.files} files, snapshot {written.snapshot_hash[:12]}"
    )
    return {
        "snapshot_id": snapshot_id,
        "snapshot_hash": written.snapshot_hash,
        "file_bytes": file_bytes,
        "counts": counts,
        "summary": summary,
    }
