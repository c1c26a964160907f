# ruff: noqa: E501  (the table is one request per line)
"""Permission matrix (issue 9 item 2): every API endpoint x every role, with object ownership where
it matters, from one table.

Columns: anonymous, outsider (a coordinator of another project), the project's reader (who also
reads in an open reader study: one session per arm, unaided / prediction / prediction + CAM),
reviewer, study reviewer (a reviewer who reads in that study too: its blinding applies to any
role), coordinator, data manager, admin, and a superuser who is no member. The objects are the
world of permission_world.py; ownership shows in rows on the reader's own annotation / session
and another reader's, and on jobs the data manager or the coordinator started.

Each row is one request; the helpers (matrix.py) give the common patterns:
    members(200)                 every member 200, outsider 404, anonymous 403
    only(MANAGERS, 201)          coordinators/admins/superuser 201, other members 403
    only(MANAGERS, 200, others=404)  ... and the object is invisible to other members
    signed_in(200) / anyone(400) lists and project-less endpoints / login endpoints
    ... | each(STUDY_READERS, 403)   merged cells for a group
and keywords override single cells (`reader=403`). Writes send a valid body (each cell's writes are
rolled back), so an allowed role shows the success status. Besides the status, every 2xx answer
to a study reader is searched for the reference standard and model output, and every answer to
the data manager for CAMs (matrix.forbidden_keys).

To add an endpoint: add a Row below (test_every_endpoint_of_the_schema_has_a_row fails until you
do), and an object to permission_world.py if it needs one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from pytest_django import DjangoDbBlocker

from tests.security.matrix import (
    AI_ALWAYS,
    AI_VISIBLE,
    ANON,
    EDITORS,
    EXPORTERS,
    MANAGERS,
    OVERSEERS,
    STUDY_READERS,
    Case,
    Row,
    Upload,
    anyone,
    call,
    each,
    forbidden_keys,
    leaks,
    members,
    only,
    signed_in,
)
from tests.security.permission_world import ROLES, World, build_world

ANSWER = {"question": "diagnosis", "value": "healthy", "confidence": 3, "time_ms": 1200}
RATINGS_CSV = b"item,rater,value\n1,a,x\n1,b,x\n2,a,y\n2,b,x\n3,a,y\n3,b,y\n"
TRAINING = {
    "project": "{project}",
    "task": "{task}",
    "name": "matrix run",
    "label_source": "reference",
    "config": {"architecture": "cnn_lstm", "input_size": 32, "epochs": 1},
    "evaluation": {"scheme": "lopo"},
}
EXPORT = {"projects": ["{project}"], "task": "diagnosis", "label_source": "reference", "format": "csv"}
SESSION = "/api/reading-sessions/{session_unaided}"

# One row per line, aligned by hand: the formatter and the line length stay off for the table.
# fmt: off
TABLE: list[Case] = [
    # --- auth: login endpoints answer everyone (wrong credentials: 400), the rest needs a login
    Row("POST", "/api/auth/token/", anyone(400), body={"username": "m-reader", "password": "wrong"}),
    Row("POST", "/api/auth/session/", anyone(400), body={"username": "m-reader", "password": "wrong"}),
    Row("DELETE", "/api/auth/session/", anyone(204)),
    Row("GET", "/api/auth/me/", signed_in(200)),
    # --- projects
    Row("GET", "/api/projects/", signed_in(200)),
    Row("POST", "/api/projects/", signed_in(403), superuser=201, body={"name": "New", "slug": "new-one"},
        note="staff only"),
    Row("GET", "/api/projects/{project}/", members(200)),
    Row("PATCH", "/api/projects/{project}/", only(MANAGERS, 200), body={"ai_assistance": "hidden"}),
    Row("GET", "/api/projects/{project}/members/", only(MANAGERS, 200)),
    Row("POST", "/api/projects/{project}/imports/", only(EDITORS, 202), body={"files": Upload("new.png", "png")}),
    Row("POST", "/api/projects/{project}/classify/", only(AI_VISIBLE, 200),
        body={"image": Upload("new.png", "png"), "task": "diagnosis"}),
    Row("GET", "/api/projects/{project}/queue/", members(200), query={"task": "{task}"}),
    Row("GET", "/api/projects/{project}/queue/", only(AI_VISIBLE, 200), query={"task": "{task}", "order": "uncertainty"},
        note="ordering by the model uses its output"),
    Row("GET", "/api/projects/{project}/review/", only(OVERSEERS, 200), query={"task": "{task}"}),
    Row("GET", "/api/projects/{project}/agreement/", only(OVERSEERS, 200), query={"task": "diagnosis", "bootstrap": 0}),
    # --- records: every member reads; data managers and admins edit
    Row("GET", "/api/patients/", signed_in(200)),
    Row("GET", "/api/patients/{patient}/", members(200)),
    Row("PATCH", "/api/patients/{patient}/", only(EDITORS, 200), body={"cohort": "B"}),
    Row("GET", "/api/examinations/", signed_in(200)),
    Row("GET", "/api/examinations/{examination}/", members(200), note="reference blanked for readers"),
    Row("PATCH", "/api/examinations/{examination}/", only(EDITORS, 200), body={"device": "eCLE"}),
    Row("GET", "/api/videos/", signed_in(200)),
    Row("GET", "/api/videos/{video}/", members(200)),
    Row("GET", "/api/frames/", signed_in(200)),
    Row("GET", "/api/frames/{frame}/", members(200)),
    Row("GET", "/api/frames/{frame}/image/", members(200)),
    Row("GET", "/api/frames/{frame}/preview/", members(200)),
    # --- label schema: coordinators and admins edit it
    Row("GET", "/api/label-tasks/", signed_in(200)),
    Row("POST", "/api/label-tasks/", only(MANAGERS, 201), body={"project": "{project}", "key": "new_task", "name": "New"}),
    Row("GET", "/api/label-tasks/{task}/", members(200)),
    Row("PATCH", "/api/label-tasks/{task}/", only(MANAGERS, 200), body={"name": "Renamed"}),
    Row("DELETE", "/api/label-tasks/{spare_task}/", only(MANAGERS, 204)),
    Row("GET", "/api/label-choices/", signed_in(200)),
    Row("POST", "/api/label-choices/", only(MANAGERS, 201), body={"task": "{task}", "value": "other", "label": "Other"}),
    Row("GET", "/api/label-choices/{choice}/", members(200)),
    Row("PATCH", "/api/label-choices/{choice}/", only(MANAGERS, 200), body={"label": "Fine"}),
    Row("DELETE", "/api/label-choices/{spare_choice}/", only(MANAGERS, 204)),
    Row("GET", "/api/label-presets/", signed_in(200)),
    Row("POST", "/api/label-presets/apply/", only(MANAGERS, 201), body={"project": "{project}", "preset": "colon_segment"}),
    Row("GET", "/api/label-context/", signed_in(200), query={"frames": "{frame}"}, note="others' frames left out"),
    # --- annotations: one's own; overseers see everyone's
    Row("GET", "/api/frames/{frame}/annotations/{task}/", members(404), reader=200, note="the caller's own: only the reader has one"),
    Row("PUT", "/api/frames/{frame_free}/annotations/{task}/", members(201), body={"value": "healthy", "confidence": 3}),
    Row("DELETE", "/api/frames/{frame}/annotations/{task}/", members(404), reader=204, headers={"If-Match": '"1"'}),
    Row("GET", "/api/annotations/", signed_in(200)),
    Row("GET", "/api/annotations/{annotation_own}/", only(OVERSEERS | {"reader"}, 200, others=404)),
    Row("GET", "/api/annotations/{annotation_other}/", only(OVERSEERS, 200, others=404)),
    Row("GET", "/api/annotations/{annotation_own}/history/", only(OVERSEERS, 200, others=404), reader=403),
    Row("GET", "/api/annotations/{annotation_other}/history/", only(OVERSEERS, 200, others=404)),
    # --- adjudications: reviewers, coordinators and admins only; nobody else sees one
    Row("GET", "/api/adjudications/", signed_in(200)),
    Row("GET", "/api/adjudications/{adjudication}/", only(OVERSEERS, 200, others=404)),
    Row("GET", "/api/adjudications/{adjudication}/history/", only(OVERSEERS, 200, others=404)),
    Row("GET", "/api/frames/{frame}/adjudications/{task}/", only(OVERSEERS, 200)),
    Row("PUT", "/api/frames/{frame_pending}/adjudications/{task}/", only(OVERSEERS, 201), body={"value": "healthy"}),
    # --- statistics of an uploaded file: nothing stored, no project
    Row("POST", "/api/statistics/ratings/", signed_in(200), body={"file": Upload("ratings.csv", RATINGS_CSV)}),
    # --- model output: overseers always; others by the project's ai_assistance; never a study reader
    Row("GET", "/api/frames/{frame}/predictions/", only(AI_VISIBLE, 200)),
    Row("POST", "/api/frames/{frame}/predict/", only(AI_VISIBLE, 200), body={"task": "diagnosis"}, note="stored: 200"),
    Row("GET", "/api/predictions/{prediction}/cam/", only(AI_ALWAYS, 200), note="CAMs hidden by ai_assistance"),
    # --- models and gates: coordinators and admins manage; members read the versions
    Row("GET", "/api/model-versions/", signed_in(200)),
    Row("POST", "/api/model-versions/", only(MANAGERS, 201),
        body={"project": "{project}", "task": "{task}", "name": "upload", "file": Upload("m.safetensors", "model")}),
    Row("GET", "/api/model-versions/{version}/", members(200)),
    Row("POST", "/api/model-versions/{candidate}/activate/", only(MANAGERS, 200), body={}),
    Row("POST", "/api/model-versions/{version}/retire/", only(MANAGERS, 200)),
    Row("POST", "/api/model-versions/{version}/rescore/", only(MANAGERS, 202), body={}),
    Row("GET", "/api/model-versions/{version}/flips/", only(AI_ALWAYS, 200), query={"against": "{candidate}"},
        note="both versions' predictions: model output"),
    Row("GET", "/api/task-gates/", signed_in(200)),
    Row("POST", "/api/task-gates/", only(MANAGERS, 200),
        body={"project": "{project}", "task": "{lesion_task}", "gate_task": "{quality_task}", "diagnostic_values": ["good", "bad"]},
        note="the task's gate exists: changed, 200"),
    Row("GET", "/api/task-gates/{gate}/", members(200)),
    Row("DELETE", "/api/task-gates/{gate}/", only(MANAGERS, 204)),
    # --- training: runs and policies are the managers' own; other members do not see them
    Row("GET", "/api/pretrained-weights/", signed_in(200)),
    Row("GET", "/api/training-runs/", signed_in(200)),
    Row("POST", "/api/training-runs/", only(MANAGERS, 202), body=TRAINING),
    Row("GET", "/api/training-runs/{run}/", only(MANAGERS, 200, others=404)),
    Row("POST", "/api/training-runs/{run}/cancel/", only(MANAGERS, 200, others=404)),
    Row("GET", "/api/retrain-policies/", signed_in(200)),
    Row("POST", "/api/retrain-policies/", only(MANAGERS, 201, others=400, outsider=400),
        body={"template": "{quality_run}", "min_new_labels": 5}, note="a template run not theirs: 400 naming it"),
    Row("GET", "/api/retrain-policies/{policy}/", only(MANAGERS, 200, others=404)),
    Row("PATCH", "/api/retrain-policies/{policy}/", only(MANAGERS, 200, others=404), body={"min_new_labels": 5}),
    Row("DELETE", "/api/retrain-policies/{policy}/", only(MANAGERS, 204, others=404)),
    # --- reader studies: coordinators and admins design and watch; study readers see the study only
    Row("GET", "/api/studies/", signed_in(200)),
    Row("POST", "/api/studies/", only(MANAGERS, 201, outsider=400),
        body={"project": "{project}", "name": "new study", "design": "fully_crossed"}, note="another project's: 400"),
    Row("GET", "/api/studies/{study}/", only(MANAGERS | STUDY_READERS, 200, others=404)),
    Row("GET", "/api/studies/{draft_study}/", only(MANAGERS, 200, others=404), note="a draft is not shown to readers"),
    Row("PATCH", "/api/studies/{draft_study}/", only(MANAGERS, 200, others=404), body={"description": "x"}),
    Row("PATCH", "/api/studies/{study}/", only(MANAGERS, 409, others=404) | each(STUDY_READERS, 403), body={"description": "x"},
        note="open: frozen"),
    Row("PUT", "/api/studies/{draft_study}/questions/", only(MANAGERS, 200, others=404), body={"questions": [{"task": "diagnosis"}]}),
    Row("PUT", "/api/studies/{draft_study}/arms/", only(MANAGERS, 200, others=404),
        body={"arms": [{"name": "unaided", "assistance": "unaided"}, {"name": "cam", "assistance": "prediction_and_cam"}]}),
    Row("GET", "/api/studies/{study}/cases/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403), note="carry the reference"),
    Row("POST", "/api/studies/{draft_study}/cases/", only(MANAGERS, 201, others=404), body={"cases": [{"frame": "{frame}"}]}),
    Row("PUT", "/api/studies/{draft_study}/readers/", only(MANAGERS, 200, others=404), body={"readers": [{"user": "{reader2}"}]}),
    Row("POST", "/api/studies/{draft_study}/open/", only(MANAGERS, 200, others=404)),
    Row("POST", "/api/studies/{study}/lock/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    Row("GET", "/api/studies/{study}/progress/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    Row("GET", "/api/studies/{study}/sessions/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    Row("GET", "/api/studies/{study}/readings/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    Row("GET", "/api/studies/{study}/readings.csv", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    Row("GET", "/api/studies/{study}/results/", only(MANAGERS, 200, others=404) | each(STUDY_READERS, 403)),
    # --- reading sessions: the reader's own only (nobody else, superuser included); AI per arm
    Row("GET", "/api/reading-sessions/", signed_in(200)),
    Row("GET", SESSION + "/", only({"reader"}, 200, others=404)),
    Row("GET", "/api/reading-sessions/{session_other}/", only({"reader"}, 404, others=404), note="another reader's"),
    Row("POST", SESSION + "/start/", only({"reader"}, 200, others=404)),
    Row("GET", SESSION + "/cases/{position}/", only({"reader"}, 200, others=404)),
    Row("GET", "/api/reading-sessions/{session_other}/cases/{position}/", only({"reader"}, 404, others=404)),
    Row("PUT", SESSION + "/cases/{position}/readings/", only({"reader"}, 201, others=404), body=ANSWER),
    Row("PUT", "/api/reading-sessions/{session_other}/cases/{position}/readings/", only({"reader"}, 404, others=404), body=ANSWER),
    Row("GET", SESSION + "/cases/{position}/ai/", only({"reader"}, 403, others=404), note="unaided arm"),
    Row("GET", "/api/reading-sessions/{session_prediction}/cases/{position}/ai/", only({"reader"}, 200, others=404)),
    Row("GET", "/api/reading-sessions/{session_cam}/cases/{position}/ai/", only({"reader"}, 200, others=404)),
    Row("GET", SESSION + "/cases/{position}/cam/{study_prediction}/", only({"reader"}, 403, others=404)),
    Row("GET", "/api/reading-sessions/{session_prediction}/cases/{position}/cam/{study_prediction}/",
        only({"reader"}, 403, others=404), note="prediction arm: no CAM"),
    Row("GET", "/api/reading-sessions/{session_cam}/cases/{position}/cam/{study_prediction}/", only({"reader"}, 200, others=404)),
    # --- exports: data managers, coordinators and admins of every project named
    Row("GET", "/api/exports/", signed_in(200)),
    Row("POST", "/api/exports/", only(EXPORTERS, 202, outsider=400), body=EXPORT, note="another project's: 400"),
    Row("GET", "/api/exports/{export}/", only(EXPORTERS, 200, others=404)),
    Row("GET", "/api/exports/{export}/download/", only(EXPORTERS, 200, others=404)),
    # --- jobs: members follow the project's jobs; the starter, coordinators and admins stop one
    Row("GET", "/api/jobs/", signed_in(200)),
    Row("GET", "/api/jobs/{dm_job}/", members(200)),
    Row("POST", "/api/jobs/{dm_job}/cancel/", only(MANAGERS | {"data_manager"}, 200), note="started by the data manager"),
    Row("POST", "/api/jobs/{coordinator_job}/cancel/", only(MANAGERS, 200), note="started by the coordinator"),
    # --- one object named with another project's: never a way into either project
    Row("GET", "/api/frames/{frame}/annotations/{other_task}/", members(404), note="another project's task"),
    Row("PUT", "/api/frames/{frame_free}/annotations/{other_task}/", members(404), body={"value": "healthy", "confidence": 3}),
    Row("GET", "/api/projects/{project}/queue/", members(404), query={"task": "{other_task}"}),
    Row("PUT", "/api/frames/{frame_pending}/adjudications/{other_task}/", only(OVERSEERS, 404), body={"value": "healthy"}),
    Row("POST", "/api/task-gates/", only(MANAGERS, 400),
        body={"project": "{project}", "task": "{lesion_task}", "gate_task": "{other_task}", "diagnostic_values": ["healthy"]}),
    Row("POST", "/api/studies/{draft_study}/cases/", only(MANAGERS, 400, others=404), body={"cases": [{"frame": "{other_frame}"}]}),
    Row("PUT", "/api/studies/{draft_study}/readers/", only(MANAGERS, 400, others=404), body={"readers": [{"user": "{outsider_user}"}]},
        note="readers are project members"),
    Row("POST", "/api/exports/", signed_in(400), superuser=202, body={**EXPORT, "projects": ["{project}", "{other_project}"]},
        note="every project named must be the caller's"),
    Row("GET", "/api/reading-sessions/{session_cam}/cases/{position}/cam/{prediction}/", only({"reader"}, 404, others=404),
        note="a CAM of a frame outside the case"),
    # --- outside the schema: the schema and its docs pages
    Row("GET", "/api/schema/", signed_in(200)),
    Row("GET", "/api/docs/", signed_in(200), anon=302, note="pages for people: anonymous to the login page"),
    Row("GET", "/api/redoc/", signed_in(200), anon=302),
]
# fmt: on

# The mark makes pytest-django create the test database; each test then runs in a savepoint of the
# module's world transaction.
pytestmark = pytest.mark.django_db

NOT_IN_SCHEMA = {("GET", "/api/schema/"), ("GET", "/api/docs/"), ("GET", "/api/redoc/")}


# --- The world, built once for the module --------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MEDIA_ROOT for the whole module (the suite's default is one per test), because the
    world's frames, CAMs and export live there for every row. A fast password hasher too: the
    login rows check a wrong password once per role."""
    root = tmp_path_factory.mktemp("matrix-media")
    uploads = tmp_path_factory.mktemp("matrix-uploads")
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(MEDIA_ROOT=root, CLEAR_UPLOAD_ROOT=uploads, PASSWORD_HASHERS=fast):
        yield root


@pytest.fixture(scope="module")
def world(
    django_db_setup: None,
    django_db_blocker: DjangoDbBlocker,
    media_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """Built once in a transaction that is rolled back after the module; every cell runs in a
    savepoint inside it (matrix.call), so no cell sees another's writes."""
    with django_db_blocker.unblock(), transaction.atomic():
        built = build_world(tmp_path_factory.mktemp("matrix-models"))
        built.ids["position"] = 0
        yield built
        transaction.set_rollback(True)


# --- The tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TABLE, ids=[case.id for case in TABLE])
def test_every_role_gets_the_documented_status(case: Case, world: World) -> None:
    wrong: list[str] = []
    known: list[str] = []
    for role in ROLES:
        outcome = call(world, case, role)
        problems = []
        if outcome.status != case.expected[role]:
            problems.append(f"{outcome.status}, expected {case.expected[role]}")
        if 200 <= outcome.status < 300:
            leaked = leaks(outcome.body, forbidden_keys(case, role))
            if leaked:
                problems.append(f"shows {', '.join(leaked)}")
        if role in case.xfail:
            if problems:
                known.append(f"{role}: {'; '.join(problems)} ({case.xfail[role]})")
            else:
                wrong.append(f"{role}: passes now; remove its xfail ({case.xfail[role]})")
        elif problems:
            wrong.append(f"{role}: {'; '.join(problems)}")
    assert not wrong, f"{case.id}{f' ({case.note})' if case.note else ''}:\n" + "\n".join(wrong)
    if known:
        pytest.xfail("; ".join(known))


def _template(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def test_every_endpoint_of_the_schema_has_a_row() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (method.upper(), _template(path))
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    rows = {(case.method, _template(case.path)) for case in TABLE}
    extra = {(method, _template(path)) for method, path in NOT_IN_SCHEMA}
    assert sorted(operations - rows) == [], "endpoints without a row in the permission matrix"
    assert sorted(rows - operations - extra) == [], "rows for endpoints the schema does not have"


def test_the_table_is_well_formed() -> None:
    for case in TABLE:
        assert set(case.expected) == set(ROLES)
        assert case.expected["anon"] in {ANON, 302, 400, 204}, case.id
        assert all(status < 500 for status in case.expected.values()), case.id
