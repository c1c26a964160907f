"""Server time of "next frame + submit label" with 100,000 frames and 8 annotators working at once.

    .venv/bin/python bench/label_bench.py                              # this checkout alone
    .venv/bin/python bench/label_bench.py --compare-with ../clear-before  # against another checkout

(PostgreSQL on 127.0.0.1 as for bench/import_bench.py; BENCH_ADMIN_DATABASE_URL overrides the
server's `postgres` database URL used to create and drop the bench database.)

Issue 3's speed goal: p95 of the server time for "next frame + submit label" under 20 ms, with
100,000 frames and 8 concurrent annotators on PostgreSQL.

1. A throw-away `clear_label_bench` database is created and migrated, and a realistic project is
   bulk-created in it: 40 patients, 2 examinations each, 2 videos per examination plus loose still
   images (100,000 frames in all, pointing at a few real small PNG/JPEG files written once to a
   temporary MEDIA_ROOT), the `head_neck_site` and `quality` presets, 8 readers, and prior work:
   reader k has already labelled the first k * 1,500 frames of the queue for the site task (with
   history rows and Idempotency records, as the API would have written), half of them also rated
   quality. Then VACUUM ANALYZE, as autovacuum would have done on a live installation.
2. The real HTTP stack serves it: gunicorn with `config.wsgi`, as `platform/` runs it (3 sync
   workers, CLEAR_MODE=production, no persistent database connections). The only addition is a
   Server-Timing middleware, which lives in this script and in a settings overlay written to the
   temporary folder (the project's own MIDDLEWARE is untouched): it measures the time from the
   outermost middleware until the response is rendered, and the database time, query count and CPU
   time of the request.
3. 8 client processes, one per reader, each with a token from POST /api/auth/token/, loop: GET
   /api/projects/{p}/queue/?task=...&limit=5&after=<cursor of the frame labelled last> ("next"; the
   first call of each round has no cursor, and a server without cursors ignores it), then PUT
   /api/frames/{first}/annotations/{task}/ with a fresh Idempotency-Key ("submit"), then a pause.
   The goal's phase: 8 readers at a fast human pace, each pausing 0.5-1.5 s per frame (--think 1,
   its mean) from a random start, so that the team labels about 8 frames a second (an expert
   labelling CLE frames takes seconds per frame). Then the stress phase: the same 8 readers without
   any pause (a closed loop, each one about 19 frames a second on this machine: far more load than
   8 people, on purpose; --stress-duration). Each measured round follows a short warm-up. Then one
   reader alone (the one with the most prior work) without pause, followed by GET /api/auth/me/ as a
   reference for what any authenticated request costs on the machine at that moment. Server,
   clients and PostgreSQL share the cores.
4. With `--compare-with DIR` (another checkout of CLEAR, e.g. the commit before a change, using
   the same migrations) a second gunicorn serves that code from the same database, and the
   measured rounds alternate between the two servers, so that both sides of the comparison meet
   the same background load in the same run.

Prints one markdown table: server time (Server-Timing) and client-observed latency, p50/p95/p99, per
request kind and per pair, with the mean query count, database time and server CPU time. Nothing is
written into the repository. `--index` adds a raw SQL index inside the bench database to measure
it, `--pg-set` a PostgreSQL setting of the bench database, `--url-options` options of the server's
DATABASE_URL (e.g. conn_max_age=60), `--explain` prints EXPLAIN ANALYZE of the queue's queries.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
PASSWORD = "label-bench-password"  # noqa: S105 (a throw-away database's users)
SITE_PRESET, QUALITY_PRESET = "head_neck_site", "quality"

# The settings the bench server runs with: the project's own, plus the timing middleware outermost.
SETTINGS_OVERLAY = """\
from config.settings import *  # noqa: F403

MIDDLEWARE = ["label_bench.ServerTimingMiddleware", *MIDDLEWARE]  # noqa: F405
"""


class ServerTimingMiddleware:
    """Adds `Server-Timing: app;dur=<ms>, db;dur=<ms>, cpu;dur=<ms>, q;desc=<queries>` to every
    response. Only the bench server's settings overlay installs it."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        from django.db import connection

        database = [0.0, 0]

        def timed(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                database[0] += time.perf_counter() - start
                database[1] += 1

        start, cpu_start = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(timed):
            response = self.get_response(request)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        app = time.perf_counter() - start
        cpu = time.thread_time() - cpu_start
        response["Server-Timing"] = (
            f"app;dur={app * 1000:.3f}, db;dur={database[0] * 1000:.3f}, cpu;dur={cpu * 1000:.3f}, "
            f"q;desc={database[1]}"
        )
        return response


# --- Setup ------------------------------------------------------------------------------------------


def setup_django(database: str) -> str:
    """Create the bench database afresh and migrate it; returns its URL."""
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    url = admin_url.rsplit("/", 1)[0] + "/" + database
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def drop_database(database: str) -> None:
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def write_media(media_root: Path, count: int = 4) -> list[dict[str, Any]]:
    """A few real small frames and previews, content-addressed as records/media.py stores them."""
    from PIL import Image

    files = []
    for seed in range(count):
        image = Image.effect_noise((96, 80), 40 + 10 * seed).convert("L")
        png, jpg = io.BytesIO(), io.BytesIO()
        image.save(png, format="PNG")
        image.save(jpg, format="JPEG", quality=85)
        sha = hashlib.sha256(png.getvalue()).hexdigest()
        paths = {"file": f"frames/{sha[:2]}/{sha}.png", "preview_file": f"previews/{sha[:2]}/{sha}.jpg"}
        for field, data in (("file", png.getvalue()), ("preview_file", jpg.getvalue())):
            target = media_root / paths[field]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        files.append({**paths, "file_bytes": len(png.getvalue()), "width": 96, "height": 80})
    return files


def build_project(args: argparse.Namespace, media_root: Path) -> dict[str, Any]:
    """The project, its frames, schema, readers and prior annotations; returns what clients need."""
    from django.contrib.auth.models import User
    from django.db import connection
    from simple_history.utils import bulk_create_with_history

    from annotations.models import Annotation, IdempotencyRecord
    from annotations.selectors import queue_frames
    from annotations.services import label_preset_apply
    from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video

    rng = random.Random(7)
    files = write_media(media_root)
    project = Project.objects.create(name="Label bench", slug="label-bench")
    coordinator = User.objects.create_user("bench-coordinator", password=PASSWORD)
    ProjectMembership.objects.create(
        project=project, user=coordinator, role=ProjectMembership.Role.COORDINATOR
    )
    site_task = label_preset_apply(project=project, preset_key=SITE_PRESET, changed_by=coordinator).task
    quality_task = label_preset_apply(project=project, preset_key=QUALITY_PRESET, changed_by=coordinator).task

    patients = Patient.objects.bulk_create(
        Patient(project=project, pseudonym="P-" + hashlib.sha256(f"patient {i}".encode()).hexdigest()[:16])
        for i in range(args.patients)
    )
    sites, devices = ["oral_cavity", "oropharynx", "larynx", "sinonasal"], ["pCLE", "eCLE"]
    exams = Examination.objects.bulk_create(
        Examination(
            patient=patient,
            code=f"E{number + 1}",
            device=rng.choice(devices),
            anatomical_site=rng.choice(sites),
            reference_label=rng.choice(["healthy", "neoplastic"]),
            reference_source="histopathology",
        )
        for patient in patients
        for number in range(2)
    )
    videos = Video.objects.bulk_create(
        Video(
            examination=exam,
            name=f"seq{number + 1}.mpeg",
            kind=Video.Kind.VIDEO_FILE,
            codec="mpeg1video",
            frame_rate=25.0,
            every_nth=1,
        )
        for exam in exams
        for number in range(2)
    )
    videos_of: dict[int, list[Video]] = {}
    for video in videos:
        videos_of.setdefault(video.examination_id, []).append(video)

    frames: list[Frame] = []
    serial = 0

    def frame(exam: Examination, video: Video | None, index: int | None, source: str) -> Frame:
        nonlocal serial
        serial += 1
        stored = files[serial % len(files)]
        # The files are shared, but each row needs its own sha256 (unique per examination).
        return Frame(
            examination=exam,
            video=video,
            index_in_video=index,
            time_s=None if index is None else index / 25,
            source_name=source,
            sha256=hashlib.sha256(f"label bench frame {serial}".encode()).hexdigest(),
            mode="L",
            preview_width=stored["width"],
            preview_height=stored["height"],
            crop_box=[4, 4, 92, 76] if serial % 3 else None,
            reference_label="",
            **stored,
        )

    per_exam, extra = divmod(args.frames, len(exams))
    for position, exam in enumerate(exams):
        count = per_exam + (1 if position < extra else 0)
        loose = count // 25  # still images taken beside the videos
        in_videos = count - loose
        exam_videos = videos_of[exam.pk]
        for number, video in enumerate(exam_videos):
            share = in_videos // len(exam_videos) + (1 if number < in_videos % len(exam_videos) else 0)
            frames.extend(frame(exam, video, index, f"{video.name}#{index}") for index in range(share))
        frames.extend(frame(exam, None, None, f"stills/img{index:04d}.png") for index in range(loose))
    Frame.objects.bulk_create(frames, batch_size=5000)

    readers = []
    for number in range(args.annotators):
        user = User.objects.create_user(f"bench-reader-{number}", password=PASSWORD)
        ProjectMembership.objects.create(project=project, user=user, role=ProjectMembership.Role.READER)
        readers.append(user)

    order = list(queue_frames(task=site_task).values_list("id", flat=True))
    site_values = list(site_task.choices.values_list("value", flat=True))
    quality_values = list(quality_task.choices.values_list("value", flat=True))
    prior = 0
    for number, user in enumerate(readers):
        done = order[: number * args.prior_step]
        batch = [
            Annotation(
                frame_id=frame_id,
                task=site_task,
                annotator=user,
                value=rng.choice(site_values),
                confidence=rng.randint(1, 5),
                time_on_frame_ms=rng.randint(400, 8000),
                version=1,
            )
            for frame_id in done
        ]
        batch += [
            Annotation(
                frame_id=frame_id,
                task=quality_task,
                annotator=user,
                value=rng.choice(quality_values),
                confidence=rng.randint(1, 5),
                version=1,
            )
            for frame_id in done[::2]
        ]
        created = bulk_create_with_history(batch, Annotation, batch_size=5000, default_user=user)
        IdempotencyRecord.objects.bulk_create(
            (
                IdempotencyRecord(
                    user=user,
                    key=str(uuid.uuid4()),
                    fingerprint=hashlib.sha256(str(annotation.pk).encode()).hexdigest(),
                    status_code=201,
                    response={"id": annotation.pk, "frame_id": annotation.frame_id, "version": 1},
                )
                for annotation in created
            ),
            batch_size=5000,
        )
        prior += len(batch)

    with connection.cursor() as cursor:
        for statement in args.index:
            cursor.execute(statement)
        for setting in args.pg_set:
            name, _, value = setting.partition("=")
            cursor.execute(f"ALTER DATABASE {args.database} SET {name} = {value}")
        cursor.execute("VACUUM ANALYZE")
    return {
        "project": project.pk,
        "task": site_task.pk,
        "values": site_values,
        "readers": [user.username for user in readers],
        "frames": len(order),
        "prior": prior,
    }


def explain_queue(scene: dict[str, Any]) -> None:
    """EXPLAIN ANALYZE every query of one work-queue call, for the reader with the most prior work."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotations.models import LabelTask
    from annotations.selectors import work_queue

    user = User.objects.get(username=scene["readers"][-1])
    task = LabelTask.objects.get(pk=scene["task"])
    first = work_queue(user=user, task=task, limit=5)  # warm the caches
    with CaptureQueriesContext(connection) as captured:
        work_queue(user=user, task=task, limit=5)
        cursor = getattr(first.frames[0], "queue_cursor", None) if first.frames else None
        if cursor is not None:  # the page after the first frame, as the clients ask for it
            from annotations.selectors import QueueKey

            work_queue(user=user, task=task, limit=5, after=QueueKey.decode(cursor))
    for query in captured.captured_queries:
        print(f"\n-- {query['sql']}\n")
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            print("\n".join(row[0] for row in cursor.fetchall()))


# --- Server and clients -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    args: argparse.Namespace, url: str, tmp: Path, media_root: Path, code: Path
) -> tuple[Any, int]:
    """gunicorn serving the checkout at `code` (this one, or the --compare-with one)."""
    (tmp / "label_bench_settings.py").write_text(SETTINGS_OVERLAY)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url + (f"?{args.url_options}" if args.url_options else ""),
        "DJANGO_SETTINGS_MODULE": "label_bench_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp), str(BENCH_DIR), str(code)]),
        "CLEAR_MODE": "production",
        "DJANGO_SECRET_KEY": "label-bench-not-secret",
        "CLEAR_PSEUDONYM_SECRET": "label-bench-not-secret",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CLEAR_MEDIA_ROOT": str(media_root),
        "CLEAR_LOG_LEVEL": "WARNING",
        # In production TLS ends at the reverse proxy in front of gunicorn; the bench's clients talk
        # to gunicorn directly over plain HTTP, which the HTTPS redirect would answer with a 301.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
        "--backlog",
        "256",
    ]
    server = subprocess.Popen(command, cwd=code, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, port
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up") from None
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not start listening within 60 s")


def request(
    port: int, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, float], float]:
    """One request on a fresh connection (gunicorn's sync workers close every connection);
    returns the status, the JSON body, the Server-Timing values and the client-observed ms."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json", **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    elapsed = (time.perf_counter() - start) * 1000
    timing: dict[str, float] = {}
    for part in (response.getheader("Server-Timing") or "").split(","):
        name, _, value = part.strip().partition(";")
        if value.startswith("dur="):
            timing[name] = float(value[4:])
        elif value.startswith("desc="):
            timing[name] = float(value[5:])
    return response.status, json.loads(payload) if payload else {}, timing, elapsed


def obtain_token(port: int, username: str) -> str:
    status, body, _, _ = request(
        port, "POST", "/api/auth/token/", body={"username": username, "password": PASSWORD}
    )
    assert status == 200, (status, body)
    return str(body["token"])


def warm_up(port: int, tokens: list[str], scene: dict[str, Any], workers: int) -> None:
    """Concurrent queue requests, so that every gunicorn worker has imported the URLconf and the
    views and opened its database connection before anything is measured: a cold worker takes
    seconds (more on a busy machine) on its first request, longer than a round's warm-up, which
    otherwise made the side that did not hand out the tokens lose part of its first round."""
    from concurrent.futures import ThreadPoolExecutor

    path = f"/api/projects/{scene['project']}/queue/?task={scene['task']}&limit=5"

    def one(token: str) -> None:
        status, body, _, _ = request(port, "GET", path, headers={"Authorization": f"Token {token}"})
        assert status == 200, (status, body)

    with ThreadPoolExecutor(max(len(tokens), workers)) as pool:
        for _ in range(3):
            list(pool.map(one, [tokens[i % len(tokens)] for i in range(max(len(tokens), 2 * workers))]))


def annotator(job: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One reader's loop (in its own process): next frame, then submit a label for it. Samples are
    (kind, server ms, db ms, cpu ms, queries, client ms) of the measured period only."""
    port, task, auth = job["port"], job["task"], {"Authorization": f"Token {job['token']}"}
    rng = random.Random(job["seed"])
    queue_path = f"/api/projects/{job['project']}/queue/?task={task}&limit={job['limit']}"
    # Like the browser app, each "next" continues after the frame labelled last (its `cursor`), so the
    # server starts there instead of walking the queue from the start; a server without cursors
    # ignores `after` and answers no `cursor` (then every call starts at the start, as before).
    after: str | None = None
    samples: list[tuple[Any, ...]] = []
    while time.time() < job["start_at"]:
        time.sleep(0.01)
    if job["think"]:
        # People do not start, nor finish each frame, in lockstep: each reader starts at a random
        # moment of the first pause and then pauses 0.5-1.5 times --think per frame. (A fixed pause
        # from a common start made the 8 readers send their requests in bursts of 8 at once.)
        time.sleep(rng.uniform(0, job["think"]))
    measure_from = job["start_at"] + job["warmup"]
    stop_at = measure_from + job["duration"]
    while True:
        now = time.time()
        if now >= stop_at:
            break
        path = queue_path if after is None else f"{queue_path}&after={after}"
        status, body, timing, elapsed = request(port, "GET", path, headers=auth)
        assert status == 200, (status, body)
        if not body["frames"]:
            break
        frame_id = body["frames"][0]["id"]
        after = body["frames"][0].get("cursor")
        label = {
            "value": rng.choice(job["values"]),
            "confidence": rng.randint(1, 5),
            "time_on_frame_ms": 1200,
        }
        status2, body2, timing2, elapsed2 = request(
            port,
            "PUT",
            f"/api/frames/{frame_id}/annotations/{task}/",
            body=label,
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert status2 == 201, (status2, body2)
        if now >= measure_from:
            for kind, values, ms in (("next", timing, elapsed), ("submit", timing2, elapsed2)):
                samples.append((kind, values["app"], values["db"], values["cpu"], values["q"], ms))
        if job["think"]:
            time.sleep(rng.uniform(0.5, 1.5) * job["think"])
    return samples


def floor(port: int, token: str, duration: float) -> list[tuple[Any, ...]]:
    """GET /api/auth/me/ in a loop: what any authenticated API request costs here, for reference."""
    samples: list[tuple[Any, ...]] = []
    stop_at = time.time() + duration
    while time.time() < stop_at:
        status, body, timing, elapsed = request(
            port, "GET", "/api/auth/me/", headers={"Authorization": f"Token {token}"}
        )
        assert status == 200, (status, body)
        samples.append(("floor", timing["app"], timing["db"], timing["cpu"], timing["q"], elapsed))
    return samples[3:]


# --- Report -----------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float, float]:
    import numpy as np

    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return float(p50), float(p95), float(p99)


def table_rows(label: str, samples: list[tuple[Any, ...]], duration: float) -> list[str]:
    """Markdown rows for the next, submit and floor samples of one phase, and for the pairs."""
    import numpy as np

    def row(kind: str, server: list[float], client: list[float], rest: list[tuple[float, ...]]) -> str:
        s50, s95, s99 = percentiles(server)
        c50, c95, c99 = percentiles(client)
        queries, db, cpu = (float(np.mean([r[i] for r in rest])) for i in range(3))
        return (
            f"| {label} | {kind} | {len(server)} | {s50:.1f} | {s95:.1f} | {s99:.1f} | {c50:.1f} | "
            f"{c95:.1f} | {c99:.1f} | {len(server) / duration:.1f} | {queries:.1f} | {db:.1f} | {cpu:.1f} |"
        )

    by_kind = {kind: [s for s in samples if s[0] == kind] for kind in ("next", "submit", "floor")}
    rows = []
    for kind, name in (("next", "next (GET queue)"), ("submit", "submit (PUT)")):
        chosen = by_kind[kind]
        if chosen:
            rows.append(
                row(
                    name, [s[1] for s in chosen], [s[5] for s in chosen], [(s[4], s[2], s[3]) for s in chosen]
                )
            )
    # Each client appends a next and its submit together, so the two lists pair up in order.
    pairs = list(zip(by_kind["next"], by_kind["submit"], strict=True))
    if pairs:
        rows.append(
            row(
                "**next + submit**",
                [a[1] + b[1] for a, b in pairs],
                [a[5] + b[5] for a, b in pairs],
                [(a[4] + b[4], a[2] + b[2], a[3] + b[3]) for a, b in pairs],
            )
        )
    if by_kind["floor"]:
        chosen = by_kind["floor"]
        rows.append(
            row(
                "GET /api/auth/me/ (reference)",
                [s[1] for s in chosen],
                [s[5] for s in chosen],
                [(s[4], s[2], s[3]) for s in chosen],
            )
        )
    return rows


# A measured phase: (side, its "annotators" column, kind, samples, measured seconds). Kinds: "goal" (all
# annotators at a human pace: the goal), "stress" (all of them without pause), "alone".
Phase = tuple[str, str, str, list[tuple[Any, ...]], float]


def report(phases: list[Phase], scene: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nCLEAR label benchmark: {os.cpu_count()} cores shared by gunicorn ({args.workers} sync workers x "
        f"{args.threads} threads), the client processes and PostgreSQL; {scene['frames']} frames, "
        f"{scene['prior']} prior annotations, limit={args.limit}, mean pause per frame {args.think:g} s; "
        f"{args.duration:g} s measured per side in {args.rounds} round(s), each after a "
        f"{args.warmup:g} s warm-up; 1-minute load average {scene['load'][0]:.1f} before and "
        f"{scene['load'][1]:.1f} after"
        + (f"; extra index: {'; '.join(args.index)}" if args.index else "")
        + (f"; PostgreSQL: {', '.join(args.pg_set)}" if args.pg_set else "")
        + (f"; DATABASE_URL options: {args.url_options}" if args.url_options else "")
        + (f"; --compare-with {args.compare_with}" if args.compare_with else "")
        + "\n"
    )
    print(
        "| code | annotators | request | count | server p50 ms | server p95 ms | server p99 ms "
        "| client p50 ms | client p95 ms | client p99 ms | per s | queries | db ms (mean) "
        "| server CPU ms (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for side, annotators, _, samples, duration in phases:
        for line in table_rows(f"{side} | {annotators}", samples, duration):
            print(line)
    print()
    from bench.results import Result, write_results

    results = []
    workloads = {
        "goal": f"{args.annotators} annotators at once, mean pause {args.think:g} s per frame",
        "stress": f"{args.annotators} annotators at once without pause (stress)",
        "alone": "1 annotator without pause",
    }
    for side, _, kind, samples, duration in phases:
        if side != "this checkout":
            continue
        p50, p95 = pair_percentiles(samples)[:2]
        pairs = sum(1 for sample in samples if sample[0] == "next")
        results.append(
            Result(
                key={"goal": "label-next-submit", "stress": "label-next-submit-stress"}.get(
                    kind, "label-next-submit-alone"
                ),
                workload=f"server time of next frame + submit label, p95, {scene['frames']:,} frames, "
                + workloads[kind],
                value=round(p95, 1),
                unit="ms",
                goal="< 20" if kind == "goal" else None,
                details={"p50 ms": p50, "pairs/s": pairs / duration},
            )
        )
    write_results(args.json, results)
    for side, _, kind, samples, _ in phases:
        if kind != "goal":
            continue
        p95 = pair_percentiles(samples)[1]
        verdict = "met" if p95 < 20 else "NOT met"
        print(
            f"Goal ({side}): p95 of the server time of next + submit under 20 ms with {args.annotators} "
            f"annotators at once (mean pause {args.think:g} s per frame): {verdict} ({p95:.1f} ms)."
        )


def pair_percentiles(samples: list[tuple[Any, ...]]) -> tuple[float, float, float]:
    """p50, p95, p99 of the server time of each next + submit pair."""
    busy = [s for s in samples if s[0] in ("next", "submit")]
    pairs = zip([s for s in busy if s[0] == "next"], [s for s in busy if s[0] == "submit"], strict=True)
    return percentiles([a[1] + b[1] for a, b in pairs])


def run_phases(
    args: argparse.Namespace, scene: dict[str, Any], ports: dict[str, int], tokens: list[str]
) -> list[Phase]:
    """The measured periods: all annotators at once at a human pace (the goal), then all of them
    without pause (a stress test), each alternating between the servers round by round (so that both
    sides meet the same background load); then one annotator alone on each."""
    jobs = [
        {
            "token": token,
            "project": scene["project"],
            "task": scene["task"],
            "values": scene["values"],
            "limit": args.limit,
            "warmup": args.warmup,
            "seed": number,
        }
        for number, token in enumerate(tokens)
    ]
    order = list(ports)
    scene["load"] = (os.getloadavg()[0], 0.0)
    phases: list[Phase] = []
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        pool.map(time.sleep, [0.0] * len(jobs), chunksize=1)  # start the processes before timing
        for kind, think, duration in (
            ("goal", args.think, args.duration),
            ("stress", 0.0, args.stress_duration),
        ):
            if not duration:
                continue
            busy: dict[str, list[tuple[Any, ...]]] = {side: [] for side in ports}
            for round_ in range(args.rounds):
                for side in order if round_ % 2 == 0 else order[::-1]:
                    start_at = time.time() + 0.5
                    round_jobs = [
                        {
                            **job,
                            "port": ports[side],
                            "start_at": start_at,
                            "think": think,
                            "duration": duration / args.rounds,
                        }
                        for job in jobs
                    ]
                    results = pool.map(annotator, round_jobs, chunksize=1)
                    busy[side] += [sample for result in results for sample in result]
            pause = f"mean pause {think:g} s" if think else "no pause"
            phases += [(side, f"{args.annotators}, {pause}", kind, busy[side], duration) for side in order]
    scene["load"] = (scene["load"][0], os.getloadavg()[0])
    if args.solo_duration:
        # The same requests from one annotator alone (the one with the most prior work), and the
        # reference request: the cost of a request when nothing else of the bench competes for the cores.
        for side in order:
            alone = {**jobs[-1], "port": ports[side], "start_at": time.time(), "warmup": 1.0, "think": 0.0}
            alone["duration"] = args.solo_duration
            samples = annotator(alone) + floor(ports[side], tokens[-1], args.solo_duration / 2)
            phases.append((side, "1, no pause", "alone", samples, args.solo_duration))
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="clear_label_bench")
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--prior-step", type=int, default=1500, help="reader k has labelled k * this")
    parser.add_argument("--limit", type=int, default=5, help="queue page size the browser asks for")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (platform/ runs 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each measured round")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per side")
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="the goal's phase: mean seconds each reader pauses per frame (each pause 0.5-1.5 times it)",
    )
    parser.add_argument(
        "--stress-duration",
        type=float,
        default=30.0,
        help="then the same readers without pause for this long, in --rounds rounds (0: skip)",
    )
    parser.add_argument(
        "--solo-duration", type=float, default=10.0, help="then one annotator alone for this long (0: skip)"
    )
    parser.add_argument("--index", action="append", default=[], help="CREATE INDEX ... to add (raw SQL)")
    parser.add_argument(
        "--pg-set",
        action="append",
        default=[],
        help="NAME=VALUE: a PostgreSQL setting for the bench database (ALTER DATABASE ... SET)",
    )
    parser.add_argument(
        "--url-options",
        default="",
        help="query string added to the server's DATABASE_URL, e.g. conn_max_age=60 (persistent connections)",
    )
    parser.add_argument(
        "--compare-with",
        metavar="DIR",
        help="another checkout of CLEAR (e.g. the commit before a change): served beside this one, the two "
        "measured in alternating rounds in the same run",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating measured rounds per side")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the queue's queries")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        media_root = tmp / "media"
        os.environ["CLEAR_MEDIA_ROOT"] = str(media_root)
        url = setup_django(args.database)
        started = time.perf_counter()
        scene = build_project(args, media_root)
        print(
            f"Built {scene['frames']} frames and {scene['prior']} prior annotations in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if args.explain:
            explain_queue(scene)
        from django.db import connections

        connections.close_all()

        sides = [("this checkout", ROOT)]
        if args.compare_with:
            sides.insert(
                0, (f"{Path(args.compare_with).name} (--compare-with)", Path(args.compare_with).resolve())
            )
        servers, ports = [], {}
        try:
            for side, code in sides:
                server, ports[side] = start_server(args, url, tmp, media_root, code)
                servers.append(server)
            first = next(iter(ports.values()))
            tokens = [obtain_token(first, username) for username in scene["readers"]]
            for port in ports.values():
                warm_up(port, tokens, scene, args.workers)
            phases = run_phases(args, scene, ports, tokens)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
        report(phases, scene, args)

    if not args.keep:
        drop_database(args.database)


if __name__ == "__main__":
    main()
