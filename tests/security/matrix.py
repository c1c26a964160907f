"""The machinery of the permission matrix (test_permission_matrix.py holds the table): rows, the
expectation helpers rows are written with, and the runner that asks every role. Not a test module.

A row is one request (method, path with placeholders, optional body / query / headers) and the
status every role must get. The placeholders ("{frame}") are ids of the world in
permission_world.py. Each cell runs in a savepoint that is rolled back, so a write in one cell
never changes what the next cell sees: a row may send a valid body and expect 200/201/202/204.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework.test import APIClient

from tests.security.permission_world import ROLES, World

# --- Who is who: groups of columns, named after the rules in docs/architecture.md ----------------

MEMBERS = frozenset(
    {"reader", "reviewer", "study_reviewer", "coordinator", "data_manager", "admin", "superuser"}
)
# Those who read in the world's open reader study.
STUDY_READERS = frozenset({"reader", "study_reviewer"})
# Coordinators and project admins manage the label schema, models, training and reader studies.
MANAGERS = frozenset({"coordinator", "admin", "superuser"})
# Data managers and admins edit records and import.
EDITORS = frozenset({"data_manager", "admin", "superuser"})
# Reviewers, coordinators and admins oversee labels: every annotation, adjudications, agreement.
OVERSEERS = frozenset({"reviewer", "study_reviewer", "coordinator", "admin", "superuser"})
# Data managers, coordinators and admins export.
EXPORTERS = frozenset({"data_manager", "coordinator", "admin", "superuser"})
# Who sees model output in free labelling (inference.selectors.ai_visibility): reviewers,
# coordinators and admins always (CAMs included); data managers and readers what the project's
# ai_assistance allows (the world's project: predictions, no CAMs); nobody who reads in an open
# study of the project, whatever their role.
AI_ALWAYS = frozenset({"reviewer", "coordinator", "admin", "superuser"})
AI_VISIBLE = AI_ALWAYS | {"data_manager"}

# Anonymous callers: SessionAuthentication comes first in DEFAULT_AUTHENTICATION_CLASSES and sends
# no WWW-Authenticate challenge, so DRF answers 403 (not 401) to a request without credentials.
ANON = 403


def anyone(status: int) -> dict[str, int]:
    """Every caller, signed in or not (login endpoints)."""
    return dict.fromkeys(ROLES, status)


def signed_in(status: int) -> dict[str, int]:
    """Every signed-in user (lists, scoped to what each may see; project-less endpoints)."""
    return {**dict.fromkeys(ROLES, status), "anon": ANON}


def only(allowed: Iterable[str], status: int, *, others: int = 403, outsider: int = 404) -> dict[str, int]:
    """`allowed` get `status`; the project's other members `others` (403: a member without the
    role; 404 where the object is not even visible to them); another project's coordinator
    `outsider` (404: the API never confirms that another project's object exists)."""
    allowed = frozenset(allowed)
    cells = {role: (status if role in allowed else others) for role in MEMBERS}
    return {"anon": ANON, "outsider": outsider, **cells}


def each(roles: Iterable[str], status: int) -> dict[str, int]:
    """Cells to merge into a pattern: `only(MANAGERS, 200) | each(STUDY_READERS, 403)`."""
    return dict.fromkeys(roles, status)


def members(status: int) -> dict[str, int]:
    """Every member of the project (a superuser counts as one)."""
    return only(MEMBERS, status)


@dataclass(frozen=True)
class Upload:
    """A file in a multipart body: `content` names one of World.files, or is the bytes."""

    name: str
    content: str | bytes


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: Mapping[str, int]
    body: Any = None
    query: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    multipart: bool = False
    note: str = ""
    xfail: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        query = f"?{urlencode(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query}"


def Row(  # named like a class: it reads as a table row
    method: str,
    path: str,
    expected: Mapping[str, int],
    /,
    *,
    body: Any = None,
    query: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    note: str = "",
    xfail: Mapping[str, str] | None = None,
    **cells: int,
) -> Case:
    """One line of the table: `expected` from a helper above, single cells overridden by keyword
    (`reader=403`); `xfail={"reader": "why"}` marks a cell known to be wrong in the product."""
    unknown = set(cells) - set(ROLES)
    assert not unknown, f"{path}: no such role column {unknown}"
    statuses = {**expected, **cells}
    assert set(statuses) == set(ROLES), f"{path}: a status for every role, got {sorted(statuses)}"
    multipart = isinstance(body, Mapping) and any(isinstance(value, Upload) for value in body.values())
    return Case(
        method=method,
        path=path,
        expected=statuses,
        body=body,
        query=query,
        headers=dict(headers or {}),
        multipart=multipart,
        note=note,
        xfail=dict(xfail or {}),
    )


# --- Running a cell -------------------------------------------------------------------------------

_WHOLE_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")


def fill(value: Any, world: World) -> Any:
    """Placeholders replaced by the world's ids: a string that is only "{name}" becomes the int id
    (for bodies), any other string is formatted; Uploads become fresh files."""
    if isinstance(value, str):
        whole = _WHOLE_PLACEHOLDER.match(value)
        if whole:
            return world.ids[whole.group(1)]
        return value.format_map(world.ids)
    if isinstance(value, Upload):
        content = world.files[value.content] if isinstance(value.content, str) else value.content
        return SimpleUploadedFile(value.name, content)
    if isinstance(value, Mapping):
        return {key: fill(item, world) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill(item, world) for item in value]
    return value


@dataclass
class Outcome:
    status: int
    body: Any  # parsed JSON, or None


def call(world: World, case: Case, role: str) -> Outcome:
    """One cell: the request as `role`, inside a savepoint rolled back afterwards."""
    with transaction.atomic():
        cache.clear()  # login throttles count per client address; each cell starts afresh
        client = APIClient(raise_request_exception=False)  # a crash is a 500 cell, not an error
        if role != "anon":
            client.force_login(world.user(role))
        path = fill(case.path, world)
        headers: dict[str, Any] = {
            f"HTTP_{name.upper().replace('-', '_')}": value for name, value in case.headers.items()
        }
        if case.method == "GET":
            response = client.get(path, fill(case.query or {}, world), **headers)
        else:
            if case.query:
                path = f"{path}?{urlencode(fill(case.query, world))}"
            body = fill(case.body, world)
            send = getattr(client, case.method.lower())
            if case.multipart:
                response = send(path, body, format="multipart", **headers)
            else:
                response = send(path, body, format="json", **headers)
        if getattr(response, "streaming", False):
            # Reading a streamed file to its end closes it through the test client, which keeps
            # the connection open (calling response.close() here would end this transaction).
            b"".join(getattr(response, "streaming_content", []))
        outcome = Outcome(status=response.status_code, body=_json(response))
        transaction.set_rollback(True)
    return outcome


def _json(response: Any) -> Any:
    if "json" not in response.get("Content-Type", "") or getattr(response, "streaming", False):
        return None
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


# --- What a role must never read, whatever the status -------------------------------------------

REFERENCE_KEYS = frozenset({"reference_label", "reference_source", "reference"})
PREDICTION_KEYS = frozenset({"predicted_value", "probabilities", "predictions", "cam_url", "cam_png_base64"})
CAM_KEYS = frozenset({"cam_url", "cam_png_base64"})


def forbidden_keys(case: Case, role: str) -> frozenset[str]:
    """Keys that must be empty wherever they occur in what `role` reads: whoever reads in the open
    study never sees the reference standard, nor model output outside the study's own endpoints
    (which show it per arm, checked by status here and by content in tests/studies/test_reading.py);
    a data manager sees predictions here but never a CAM."""
    if role in STUDY_READERS:
        in_study = case.path.startswith("/api/reading-sessions/")
        return REFERENCE_KEYS if in_study else REFERENCE_KEYS | PREDICTION_KEYS
    if role == "data_manager":
        return CAM_KEYS
    return frozenset()


def leaks(body: Any, keys: frozenset[str], where: str = "$") -> list[str]:
    """Paths in `body` where one of `keys` has a non-empty value."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key in keys and value not in (None, "", [], {}):
                found.append(f"{where}.{key}")
            found.extend(leaks(value, keys, f"{where}.{key}"))
    elif isinstance(body, list):
        for index, item in enumerate(body):
            found.extend(leaks(item, keys, f"{where}[{index}]"))
    return found
