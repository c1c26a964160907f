"""`manage.py seed_demo`: demo users, the "Demo CLE" project, synthetic frames and their import job.

Idempotent, because `./dev demo` runs it on every start: users, project and memberships are created
once (an existing user's password is left alone), the source files are rewritten only if missing or
changed, and an import job is created only when the project has none that succeeded or is pending.
A pending one is dispatched again instead: its message may have been lost with the broker folder,
and a second message for a job is harmless (the worker claims a job once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotations.models import LabelTask
from annotations.presets import PRESETS
from annotations.services import label_preset_apply
from jobs.models import Job
from records.demo import DemoSource, write_demo_source
from records.importing.options import ImportOptions
from records.models import Project, ProjectMembership
from records.services import IMPORT_JOB_KIND, import_job_create

# Printed by ./dev demo and in the README: a demo login, never a real credential.
DEMO_PASSWORD = "clear-demo"  # noqa: S105
DEMO_PROJECT_SLUG = "demo-cle"
DATA_MANAGER_GROUP = "Data managers"  # created by records/migrations/0002_data_manager_group.py
DEMO_PROJECT_NAME = "Demo CLE"
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("admin", ProjectMembership.Role.ADMIN),
    ("coordinator", ProjectMembership.Role.COORDINATOR),
    ("datamanager", ProjectMembership.Role.DATA_MANAGER),
    ("reader1", ProjectMembership.Role.READER),
    ("reader2", ProjectMembership.Role.READER),
    ("reviewer", ProjectMembership.Role.REVIEWER),
)
# The demo frames are healthy or neoplastic CLE-like mucosa: readers label their quality and diagnosis.
DEMO_LABEL_PRESETS = ("quality", "diagnosis_neoplasia")


class Command(BaseCommand):
    help = "Create demo users, the 'Demo CLE' project and synthetic CLE frames, and queue their import."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "demo-source",
            help="Folder for the generated frames and metadata.csv (default: var/demo-source).",
        )

    def handle(self, *args: Any, source: Path, **options: Any) -> None:
        demo = write_demo_source(source.resolve())
        self.stdout.write(
            f"demo source: {demo.frames} frames in {demo.root} ({demo.written} written, "
            f"{demo.frames - demo.written} already there)"
        )
        with transaction.atomic():
            project = self._users_and_project()
            self._label_tasks(project)
            self._import(project, demo)

    def _users_and_project(self) -> Project:
        users = get_user_model()
        project, created = Project.objects.get_or_create(
            slug=DEMO_PROJECT_SLUG,
            defaults={
                "name": DEMO_PROJECT_NAME,
                "description": "Synthetic CLE-like frames of three demo patients; no real patient data.",
            },
        )
        self.stdout.write(f"project {project.name!r}: {'created' if created else 'already there'}")
        for username, role in DEMO_USERS:
            user, user_created = users.objects.get_or_create(
                username=username,
                defaults={
                    # The data manager curates records in the admin; the others use the API/app.
                    "is_staff": role in (ProjectMembership.Role.ADMIN, ProjectMembership.Role.DATA_MANAGER),
                    "is_superuser": username == "admin",
                },
            )
            if user_created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
                if role == ProjectMembership.Role.DATA_MANAGER:
                    user.groups.add(Group.objects.get(name=DATA_MANAGER_GROUP))
            _, member_created = ProjectMembership.objects.get_or_create(
                project=project, user=user, defaults={"role": role}
            )
            self.stdout.write(
                f"user {username}: {'created' if user_created else 'already there'}"
                + (f", member as {role}" if member_created else "")
            )
        return project

    def _label_tasks(self, project: Project) -> None:
        for preset in DEMO_LABEL_PRESETS:
            if LabelTask.objects.filter(project=project, key=PRESETS[preset].key).exists():
                self.stdout.write(f"label task {preset}: already there")
                continue
            label_preset_apply(project=project, preset_key=preset, changed_by=None)
            self.stdout.write(f"label task {preset}: created from its preset")

    def _import(self, project: Project, demo: DemoSource) -> None:
        imports = Job.objects.filter(project=project, kind=IMPORT_JOB_KIND)
        done = imports.filter(status=Job.Status.SUCCEEDED).first()
        if done is not None:
            self.stdout.write(f"import: job #{done.pk} already succeeded; nothing to queue")
            return
        pending = imports.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).first()
        if pending is not None:
            from records.tasks import import_job

            job_id = pending.pk
            transaction.on_commit(lambda: import_job.delay(job_id=job_id))
            self.stdout.write(f"import: job #{job_id} is still {pending.status}; dispatched it again")
            return
        job = import_job_create(
            project=project,
            sources=[demo.root],
            metadata=demo.metadata,
            options=ImportOptions(device="pCLE (synthetic demo probe)", crop=True),
            created_by_id=None,
        )
        self.stdout.write(f"import: queued job #{job.pk} ({demo.frames} frames); the worker imports them")
