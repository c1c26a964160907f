"""Frame previews: small JPEGs for lists and thumbnails, rendered from the stored frame.

An import records each frame's preview path and size (both follow from the frame) but does not
render the file: that is the previews job's work on the `cpu` queue, enqueued by the import job, so
that importing costs only what makes frames available for labelling. A preview that is requested
before the job reaches it is rendered on the spot. Either way a preview is rendered once: the file
is content-addressed and written atomically, and rendering skips files that exist, so the job can
run twice, and race a request, without harm.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db.models import QuerySet
from PIL import Image

from records import media
from records.importing.images import render_preview
from records.models import Frame

PREVIEWS_JOB_KIND = "records.previews"
# Previews rendered per database page; the files of one page are checked and rendered together.
PAGE_SIZE = 500

ProgressCallback = Callable[[int, int | None, str], None]


def frame_preview_ensure(*, frame: Frame) -> bool:
    """Render the frame's preview unless its file exists; True when this call wrote it."""
    if media.exists(frame.preview_file):
        return False
    # The stored PNG was written by CLEAR itself (metadata-free, size checked at import), so it is
    # opened without the import's safety checks.
    with media.open_file(frame.file) as handle, Image.open(handle) as image:
        image.load()
        data = render_preview(image, (frame.preview_width, frame.preview_height))
    return media.save_bytes(frame.preview_file, data)


def frame_previews_make(
    *,
    project_id: int,
    created_since: datetime.datetime | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 2,
) -> dict[str, int | str]:
    """Render every missing preview of the project's frames (those created since `created_since`,
    when given), a page of frames at a time, in a small thread pool (Pillow releases the GIL)."""
    frames: QuerySet[Frame] = Frame.objects.filter(examination__patient__project_id=project_id)
    if created_since is not None:
        frames = frames.filter(created_at__gte=created_since)
    frames = frames.only("id", "file", "preview_file", "preview_width", "preview_height").order_by("id")
    total = frames.count()
    checked = made = 0
    last_id = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="previews") as pool:
        while True:
            page = list(frames.filter(id__gt=last_id)[:PAGE_SIZE])
            if not page:
                break
            last_id = page[-1].pk
            made += sum(pool.map(lambda frame: frame_preview_ensure(frame=frame), page))
            checked += len(page)
            if progress is not None:
                progress(checked, total, f"{made} previews rendered")
    summary = f"{made} previews rendered, {checked - made} already there"
    return {"frames_checked": checked, "previews_rendered": made, "summary": summary}
