"""Schema fuzzing (issue 9 item 4): schemathesis generates requests for every operation of the
OpenAPI schema (drf-spectacular) and sends them, in process, to the Django WSGI application as
each of six callers: anonymous, a reader, a coordinator, a data manager and an admin of the
permission matrix's project, and a reader of another project. Every answer must be below 500 and
conform to the schema: its status documented for the operation, its content type and body what
the schema says for that status, its documented headers well-formed.

The callers meet the permission matrix's populated world (tests/security/permission_world.py):
frames, annotations, a model with predictions and CAMs, reader studies, a training run, an
export and jobs. Each operation is asked
  - once with the matrix's own request for it (its row's real object ids, query and JSON body):
    the success path, whose answers must match the documented 2xx bodies;
  - with generated valid data on those real objects (schemathesis's positive mode);
  - with generated invalid data on those objects (negative mode), where the operation takes a
    query or a body: bad input must be a documented 4xx, never a 500;
  - with generated path ids (mostly objects that do not exist, or belong to someone else).
Every request runs in a savepoint that is rolled back (the WSGI wrapper below), so every request,
DELETE included, meets the same untouched world; work that a request would enqueue after commit
never starts, because nothing commits.

Bounded for CI on two cores: CLEAR_FUZZ_EXAMPLES (default 2) generated examples per operation and
mode, no shrinking, no deadline, derandomized (the same examples every run, so a red CI run
reproduces; set CLEAR_FUZZ_SEED to explore other examples locally).
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pytest_django import DjangoDbBlocker
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from records.models import Project, ProjectMembership
from tests.factories import UserFactory
from tests.security.matrix import Upload
from tests.security.permission_world import World, build_world
from tests.security.test_permission_matrix import TABLE

# The callers: the matrix world's roles, and a reader of another project (added below).
FUZZ_ROLES = ("anon", "reader", "coordinator", "data_manager", "admin", "other_reader")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

EXAMPLES = int(os.environ.get("CLEAR_FUZZ_EXAMPLES", "2"))
SEED = os.environ.get("CLEAR_FUZZ_SEED")

# Operations not fuzzed, each with its reason. (None so far: file downloads are small files of
# the world and read to the end in process; jobs that requests start are enqueued only on commit,
# and nothing commits here.)
EXCLUDED: dict[tuple[str, str], str] = {}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _template(path: str) -> str:
    return _PLACEHOLDER.sub("{}", path)


# --- The application, in process, one savepoint per request --------------------------------------


class RolledBackApp:
    """Django's WSGI handler, each request inside a savepoint rolled back afterwards, with the
    cache (login throttles) cleared first. Streamed bodies are read to the end inside the savepoint.
    Django's per-request connection housekeeping is switched off as its test client does, because
    it would close the connection that holds the world's open transaction."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.errors: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            started["status"], started["headers"] = status, headers
            return lambda data: None

        with transaction.atomic():
            cache.clear()
            result = self.handler(environ, keep)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            transaction.set_rollback(True)
        start_response(started["status"], started["headers"])
        return [body]

    def record(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        """got_request_exception: the traceback of a 500, for the failure message."""
        self.errors.append(traceback.format_exc())


@pytest.fixture(scope="module")
def app() -> Iterator[RolledBackApp]:
    wrapped = RolledBackApp()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(wrapped.record)
    try:
        yield wrapped
    finally:
        got_request_exception.disconnect(wrapped.record)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# --- The world ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MEDIA_ROOT for the module, as in the permission matrix (the world's files live there),
    and a fast password hasher (generated logins check passwords)."""
    root = tmp_path_factory.mktemp("fuzz-media")
    uploads = tmp_path_factory.mktemp("fuzz-uploads")
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
    """The permission matrix's world plus a reader of the other project, built once in a
    transaction rolled back after the module; a token per caller."""
    with django_db_blocker.unblock(), transaction.atomic():
        built = build_world(tmp_path_factory.mktemp("fuzz-models"))
        built.ids["position"] = 0  # the matrix's reading-session rows name the first case
        other_reader: User = UserFactory.create(username="f-other-reader")
        ProjectMembership.objects.create(
            project=Project.objects.get(pk=built.ids["other_project"]),
            user=other_reader,
            role=ProjectMembership.Role.READER,
        )
        built.users["other_reader"] = other_reader
        built.files["tokens"] = json.dumps(
            {role: Token.objects.create(user=built.users[role]).key for role in FUZZ_ROLES if role != "anon"}
        ).encode()
        yield built
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def api_schema(app: RolledBackApp) -> Any:
    # Through JSON, as /api/schema/ serves it (enums and lazy strings become plain values).
    generated = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(generated, default=str)))
    loaded.app = app
    return loaded


# --- The matrix's request for each operation -------------------------------------------------------


def _matrix_requests(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(method, path template) -> every matrix row's real path ids, query and JSON body for it."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in TABLE:
        ids = [world.ids[name] for name in _PLACEHOLDER.findall(row.path)]
        query = {name: _fill(value, world) for name, value in (row.query or {}).items()}
        body = None if row.multipart else _fill(row.body, world)
        headers = dict(row.headers) or None
        found.setdefault((row.method, _template(row.path)), []).append(
            {"ids": ids, "query": query, "body": body, "headers": headers}
        )
    return found


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        whole = re.fullmatch(r"\{(\w+)\}", value)
        return world.ids[whole.group(1)] if whole else value.format_map(world.ids)
    if isinstance(value, dict):
        return {key: _fill(item, world) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(item, world) for item in value]
    assert not isinstance(value, Upload)
    return value


# --- The fuzzing ----------------------------------------------------------------------------------


def _run(strategy: Any, examples: int, send: Callable[[Any], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        send(case)

    if SEED is not None:
        fuzz = seed(int(SEED))(fuzz)
    fuzz()


@pytest.mark.django_db
@pytest.mark.parametrize("role", FUZZ_ROLES)
def test_every_operation_answers_as_documented(role: str, world: World, api_schema: Any, app: Any) -> None:
    tokens = json.loads(world.files["tokens"])
    headers = {} if role == "anon" else {"Authorization": f"Token {tokens[role]}"}
    requests = _matrix_requests(world)
    problems: list[str] = []

    def send(case: Any) -> None:
        app.errors.clear()
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:
            if app.errors:
                exc.add_note("Server traceback:\n" + app.errors[-1])
            raise

    for result in api_schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), _template(operation.path))
        if key in EXCLUDED:
            continue
        rows = requests.get(key, [])
        names = _PLACEHOLDER.findall(operation.path)
        plans: list[tuple[str, Any, int]] = []
        for row in rows:
            path = dict(zip(names, row["ids"], strict=True))
            body = {"body": row["body"], "media_type": "application/json"} if row["body"] is not None else {}
            matrix = operation.Case(
                path_parameters=path, query=row["query"] or None, headers=row["headers"], **body
            )
            plans.append((f"the matrix's request {path}", st.just(matrix), 1))
        if rows:
            # Generated data on the first row's objects (the matrix lists the ordinary case first).
            kwargs: dict[str, Any] = (
                {"path_parameters": dict(zip(names, rows[0]["ids"], strict=True))} if names else {}
            )
            plans.append(("valid data, real objects", operation.as_strategy(**kwargs), EXAMPLES))
            if operation.body or operation.query:
                negative = operation.as_strategy(GenerationMode.NEGATIVE, **kwargs)
                plans.append(("invalid data, real objects", negative, EXAMPLES))
        if names or not rows:
            plans.append(("valid data, generated ids", operation.as_strategy(), EXAMPLES))
        for label, strategy, examples in plans:
            try:
                _run(strategy, examples, send)
            # schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception.
            except (Exception, BaseExceptionGroup) as exc:
                text = "\n".join([str(exc), *getattr(exc, "__notes__", [])])
                problems.append(f"--- {key[0]} {operation.path} ({label}):\n{text[:4000]}")
    assert not problems, f"{len(problems)} failing operation(s) for {role}:\n" + "\n".join(problems)
