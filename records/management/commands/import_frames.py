"""`manage.py import_frames PROJECT_SLUG PATH [PATH ...]`: import folders, archives, images and videos.

Runs the same service as the background import job (records.importing.service.import_sources),
synchronously with a progress bar, then renders the new frames' previews as the previews job would;
`--queue` creates the import job instead (which queues its previews job) and prints its id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from records.importing.options import ImportOptions, ImportReport
from records.importing.service import import_sources
from records.models import Project
from records.previews import frame_previews_make
from records.services import import_job_create

# How many per-file problems are printed in the human-readable report; --json prints them all.
MAX_LISTED = 50


class Command(BaseCommand):
    help = "Import frames from folders, ZIP archives, image files and video files into a project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="slug of the project to import into")
        parser.add_argument("paths", nargs="+", type=Path, help="folders, .zip archives, images, videos")
        parser.add_argument("--metadata", type=Path, help="CSV or XLSX sheet describing files/examinations")
        parser.add_argument("--every-nth", type=int, default=1, help="keep every n-th video frame")
        parser.add_argument("--crop", action="store_true", help="detect the black border / circular field")
        parser.add_argument("--default-examination", default="E1", help="examination code if none is known")
        parser.add_argument("--default-patient", help="patient identifier for files outside patient folders")
        parser.add_argument("--device", default="", help="device of examinations the metadata leaves open")
        parser.add_argument("--site", default="", help="anatomical site of such examinations")
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")
        parser.add_argument("--queue", action="store_true", help="queue a background job instead")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        try:
            import_options = ImportOptions(
                every_nth=options["every_nth"],
                crop=options["crop"],
                default_examination=options["default_examination"],
                default_patient=options["default_patient"],
                device=options["device"],
                anatomical_site=options["site"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        sources = [path.resolve() for path in options["paths"]]
        missing = [str(path) for path in sources if not path.exists()]
        if missing:
            raise CommandError(f"not found: {', '.join(missing)}")
        metadata = options["metadata"].resolve() if options["metadata"] else None
        if metadata is not None and not metadata.is_file():
            raise CommandError(f"metadata file not found: {metadata}")

        if options["queue"]:
            job = import_job_create(
                project=project,
                sources=sources,
                metadata=metadata,
                options=import_options,
                created_by_id=None,
            )
            self.stdout.write(json.dumps({"job_id": job.pk}) if options["json"] else str(job.pk))
            return

        quiet = options["json"] or options["verbosity"] == 0
        started = timezone.now()
        with tqdm(unit="frame", disable=quiet) as bar:
            report = import_sources(
                project_id=project.pk,
                sources=sources,
                metadata=metadata,
                options=import_options,
                progress=_progress_to(bar),
            )
        if report.frames_created:
            with tqdm(unit="preview", desc="previews", disable=quiet) as bar:
                frame_previews_make(project_id=project.pk, created_since=started, progress=_progress_to(bar))
        if options["json"]:
            self.stdout.write(json.dumps(report.to_json(), indent=2))
        else:
            self._print_report(report)

    def _print_report(self, report: ImportReport) -> None:
        self.stdout.write(self.style.SUCCESS(report.summary()))
        self.stdout.write(
            f"created: {report.patients_created} patients, {report.examinations_created} examinations, "
            f"{report.videos_created} videos/sequences, {report.frames_created} frames"
        )
        for title, entries, key in (
            ("errors", report.errors, "error"),
            ("warnings", report.warnings, "warning"),
            ("skipped", report.skipped, "reason"),
        ):
            if not entries:
                continue
            style = self.style.ERROR if key == "error" else self.style.WARNING
            self.stdout.write(style(f"{title} ({len(entries)}):"))
            for entry in entries[:MAX_LISTED]:
                self.stdout.write(f"  {entry['path']}: {entry[key]}")
            if len(entries) > MAX_LISTED:
                self.stdout.write(f"  ... and {len(entries) - MAX_LISTED} more (use --json for all)")


def _progress_to(bar: tqdm[Any]) -> Any:
    def progress(done: int, total: int | None, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message[-60:], refresh=False)
        bar.refresh()

    return progress
