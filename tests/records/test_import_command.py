"""`manage.py import_frames`: the import service from the command line."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from records.models import Examination, Frame
from records.services import IMPORT_JOB_KIND
from tests.factories import ProjectFactory
from tests.records.import_support import gray_frame, save

pytestmark = pytest.mark.django_db


def _folder(tmp_path: Path) -> Path:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq1" / "a.png")
    save(gray_frame(2), tmp_path / "src" / "patient1" / "seq1" / "b.png")
    (tmp_path / "src" / "patient1" / "seq1" / "c.png").write_text("not an image")
    save(gray_frame(3), tmp_path / "src" / "loose.png")
    return tmp_path / "src"


def test_command_imports_and_prints_summary_and_errors(tmp_path: Path) -> None:
    ProjectFactory.create(slug="cle")
    out = StringIO()
    call_command(
        "import_frames", "cle", str(_folder(tmp_path)), "--device", "pCLE", "--site", "colon", "--crop",
        stdout=out, stderr=StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    assert "2 frames imported, 0 duplicates skipped, 1 files skipped, 1 errors" in text
    assert "c.png: not an image" in text
    assert Frame.objects.count() == 2
    assert Examination.objects.get().device == "pCLE"


def test_command_json_output_and_default_patient(tmp_path: Path) -> None:
    ProjectFactory.create(slug="cle")
    out = StringIO()
    call_command(
        "import_frames", "cle", str(_folder(tmp_path)), "--json", "--default-patient", "x1",
        "--default-examination", "BASE", stdout=out,
    )  # fmt: skip
    report = json.loads(out.getvalue())
    assert report["frames_created"] == 3
    assert report["skipped"] == []
    assert set(Examination.objects.values_list("code", flat=True)) == {"BASE"}


def test_command_queue_creates_a_job(tmp_path: Path) -> None:
    ProjectFactory.create(slug="cle")
    out = StringIO()
    call_command("import_frames", "cle", str(_folder(tmp_path)), "--queue", "--every-nth", "5", stdout=out)
    job = Job.objects.get(pk=int(out.getvalue()))
    assert job.kind == IMPORT_JOB_KIND
    assert job.params["options"]["every_nth"] == 5
    assert job.params["sources"] == [str(tmp_path / "src")]
    assert Frame.objects.count() == 0


def test_command_refuses_unknown_project_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no project"):
        call_command("import_frames", "nope", str(tmp_path))
    ProjectFactory.create(slug="cle")
    with pytest.raises(CommandError, match="not found"):
        call_command("import_frames", "cle", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="every_nth"):
        call_command("import_frames", "cle", str(tmp_path), "--every-nth", "0")
