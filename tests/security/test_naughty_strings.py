"""Naughty strings in text fields are stored exactly as given (or refused with a 400), never a 5xx,
and shown escaped. Null bytes, lone surrogates and over-long values are refused; nothing else is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations.models import LabelTask
from jobs.models import Job
from records.models import Examination, Patient, Project
from records.pseudonyms import pseudonym_for
from studies.models import ReaderStudy
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, member_of
from tests.records.import_support import gray_frame, run_import, save

pytestmark = pytest.mark.django_db

# Kept as given: markup, bidirectional text, combining marks, emoji, SQL, templates, paths, keywords.
NAUGHTY = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "\u202eexe.gpj\u202c invoice",  # right-to-left override
    "שלום עולם مرحبا",
    "Ω≈ç√∫˜µ≤≥÷ 👩🏽‍⚕️🔬 ﷽",  # noqa: RUF001 (lookalike characters on purpose)
    "Z̴̡̛a̷l̶g̵o̵ t̸e̷x̶t̵",
    "'; DROP TABLE records_project; --",
    "1' OR '1'='1",
    "{{7*7}} ${7*7} %s%n %(name)s",
    "../../etc/passwd",
    "a\u00a0b\u200bc\ufeffd",  # no-break space, zero-width space, byte order mark
    "null",
    '=HYPERLINK("http://x")',
    "\\x00 \\u0000",  # the escapes as text, not the characters
]
NUL = "before\x00after"
SURROGATE = "a\ud800b"


@pytest.fixture
def project() -> Project:
    return ProjectFactory.create(name="Before")


@pytest.fixture
def coordinator(project: Project) -> Any:
    return member_of(project, Role.COORDINATOR)


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a JSON body sent as escaped ASCII, so that a lone surrogate (which
    UTF-8 cannot encode) reaches the server as the escape `\\ud800`, as any JSON client sends it."""
    return {"data": json.dumps(body), "content_type": "application/json"}


def test_project_names_are_stored_as_given(project: Project, coordinator: Any) -> None:
    client = client_for(coordinator)
    for text in NAUGHTY:
        response = client.patch(f"/api/projects/{project.pk}/", **_json({"name": text}))
        assert response.status_code == 200, (text, response.content)
        assert response.json()["name"] == text
        project.refresh_from_db()
        assert project.name == text
        assert client.get(f"/api/projects/{project.pk}/").json()["name"] == text


@pytest.mark.parametrize(
    ("text", "why"), [(NUL, "Null characters"), (SURROGATE, "Surrogate"), ("n" * 201, "200")]
)
def test_project_names_that_cannot_be_stored_are_a_400(
    project: Project, coordinator: Any, text: str, why: str
) -> None:
    response = client_for(coordinator).patch(f"/api/projects/{project.pk}/", **_json({"name": text}))
    assert response.status_code == 400
    assert why in response.json()["name"][0]
    project.refresh_from_db()
    assert project.name == "Before"


def test_label_task_names_are_stored_as_given(project: Project, coordinator: Any) -> None:
    client = client_for(coordinator)
    for number, text in enumerate(NAUGHTY):
        body = {"project": project.pk, "key": f"task_{number}", "name": text, "description": text * 50}
        response = client.post("/api/label-tasks/", **_json(body))
        assert response.status_code == 201, (text, response.content)
        task = LabelTask.objects.get(project=project, key=f"task_{number}")
        assert (task.name, task.description) == (text, text * 50)
    for bad in (NUL, SURROGATE, "n" * 201):
        response = client.post(
            "/api/label-tasks/", **_json({"project": project.pk, "key": "bad", "name": bad})
        )
        assert response.status_code == 400
    assert not LabelTask.objects.filter(key="bad").exists()


def test_study_names_and_descriptions_are_stored_as_given(project: Project, coordinator: Any) -> None:
    client = client_for(coordinator)
    long_description = "".join(NAUGHTY) * 2000  # about 250,000 characters: a text field takes it
    for text in NAUGHTY:
        body = {
            "project": project.pk,
            "name": text,
            "description": long_description,
            "design": "fully_crossed",
        }
        response = client.post("/api/studies/", **_json(body))
        assert response.status_code == 201, (text, response.content[:300])
        study = ReaderStudy.objects.get(pk=response.json()["id"])
        assert (study.name, study.description) == (text, long_description)
    for bad in (NUL, SURROGATE, "n" * 201):
        response = client.post(
            "/api/studies/", **_json({"project": project.pk, "name": bad, "design": "fully_crossed"})
        )
        assert response.status_code == 400
    assert ReaderStudy.objects.count() == len(NAUGHTY)


def test_import_options_are_kept_as_given(project: Project) -> None:
    client = client_for(member_of(project, Role.DATA_MANAGER))
    for text in NAUGHTY:
        response = client.post(
            f"/api/projects/{project.pk}/imports/",
            {
                "files": [SimpleUploadedFile("a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 32)],
                "default_patient": text,
                "default_examination": text,
                "device": text,
                "anatomical_site": text,
            },
            format="multipart",
        )
        assert response.status_code == 202, (text, response.content)
        options = Job.objects.get(pk=response.json()["id"]).params["options"]
        assert [options[k] for k in ("default_examination", "device", "anatomical_site")] == [text] * 3
        assert options["default_patient"] == text.strip()
    jobs = Job.objects.count()
    for bad in (NUL, "p" * 201):
        response = client.post(
            f"/api/projects/{project.pk}/imports/",
            {"files": [SimpleUploadedFile("a.png", b"\x89PNG")], "default_patient": bad},
            format="multipart",
        )
        assert response.status_code == 400
    assert Job.objects.count() == jobs


def test_metadata_sheets_with_naughty_cells_import_and_a_nul_row_is_reported(tmp_path: Path) -> None:
    """A sheet's patient cells become pseudonyms; its other cells are stored as given, except a
    row with a NUL character, which PostgreSQL cannot store: reported by row and left out."""
    project = ProjectFactory.create()
    texts = [text for text in NAUGHTY if not set(text) & set(';"\n')][:8]  # one CSV cell each
    rows = ["file;patient;examination;device;site;reference_label"]
    for number, text in enumerate(texts):
        save(gray_frame(number), tmp_path / "flat" / f"img{number}.png")
        rows.append(f"img{number}.png;{text};{text[:100]};{text};{text};{text}")
    save(gray_frame(99), tmp_path / "flat" / "nul.png")
    rows.append(f"nul.png;P-nul;{NUL};d;s;r")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(rows) + "\n", encoding="utf-8")

    report = run_import(project, [tmp_path / "flat"], metadata=sheet)

    assert report.frames_created == len(texts)
    assert [error["error"] for error in report.errors] == [
        f"row {len(texts) + 2}: contains a NUL character, so the row is ignored"
    ]
    for text in texts:
        examination = Examination.objects.get(patient__pseudonym=pseudonym_for(text))
        assert (examination.code, examination.device, examination.anatomical_site) == (text[:100], text, text)
    assert not Patient.objects.filter(pseudonym__in=texts).exists()  # identifiers never stored


def test_names_are_escaped_where_django_shows_them(project: Project) -> None:
    project.name = NAUGHTY[0]
    project.save()
    admin = UserFactory.create(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)

    page = client.get("/admin/records/project/").content.decode()

    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert('x')</script>" not in page
