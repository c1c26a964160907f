"""`manage.py import_export_archive PROJECT_SLUG ARCHIVE.zip`: import a CLEAR dataset export.

The round trip of exports: patients (pseudonyms), examinations, sequences, frames and labels, as
records/importing/export_archive.py describes; previews are rendered afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from records.importing.export_archive import LABELS_AS, ExportArchiveRejected, import_export_archive
from records.models import Project
from records.previews import frame_previews_make


class Command(BaseCommand):
    help = "Import a CLEAR dataset export (ZIP) into a project: patients, examinations, frames, labels."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="slug of the project to import into")
        parser.add_argument("archive", type=Path, help="the export's .zip")
        parser.add_argument(
            "--labels-as",
            choices=LABELS_AS,
            default="annotations",
            help="annotations of --annotator (default) or the frames' reference labels",
        )
        parser.add_argument("--annotator", help="username whose annotations the labels become")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        archive: Path = options["archive"].resolve()
        if not archive.is_file():
            raise CommandError(f"not found: {archive}")
        annotator_id = None
        if options["annotator"]:
            user = get_user_model().objects.filter(username=options["annotator"]).first()
            if user is None:
                raise CommandError(f"no user {options['annotator']!r}")
            annotator_id = user.pk
        started = timezone.now()
        try:
            report = import_export_archive(
                project_id=project.pk,
                archive=archive,
                labels_as=options["labels_as"],
                annotator_id=annotator_id,
            )
        except ExportArchiveRejected as exc:
            raise CommandError(str(exc)) from exc
        frame_previews_make(project_id=project.pk, created_since=started, progress=None)
        self.stdout.write(json.dumps(report.to_json(), indent=2) if options["json"] else report.summary())
