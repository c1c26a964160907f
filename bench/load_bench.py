"""Load test (issue 9 item 6): 20 annotators labelling at once against a real server, then a check
that nothing they were told was saved is missing.

    .venv/bin/python bench/load_bench.py                   # 20 annotators, 2 minutes, 3,000 frames
    .venv/bin/python bench/load_bench.py --duration 60 --users 20 --frames 3000

(PostgreSQL on 127.0.0.1 as for bench/label_bench.py, whose helpers build the world and start the
server: BENCH_ADMIN_DATABASE_URL overrides the server's `postgres` database URL used to create and
drop the throw-away `clear_load_bench` database.)

1. World: one project with the `head_neck_site` and `quality` presets, `--frames` frames (10
   patients, 2 examinations each, videos and stills), `--users` readers (label_bench.build_project,
   without prior work), then VACUUM ANALYZE.
2. Server: gunicorn with `config.wsgi`, `--workers` sync workers, CLEAR_MODE=production, on
   127.0.0.1 (label_bench.start_server; its Server-Timing middleware gives the server time).
3. Clients: one process per annotator, each with its own token, loops for `--duration` seconds:
     next   GET /api/projects/{p}/queue/?task=&limit=5&after=<cursor>          expect 200
     submit PUT /api/frames/{f}/annotations/{task}/, fresh Idempotency-Key     expect 201 (version 1)
   and after a submit, drawn at random (seeded per annotator):
     edit   the same annotation with a new value and `version` = the current   expect 200 (version + 1)
     retry  the last submit again with the same Idempotency-Key and body       expect the same answer
     stale  an edit with `version` one behind the current                      expect 409, current state
   Any other status, a body that disagrees (a replay with another version, a 409 without the
   current state) or a failed connection is an error.
4. Check: every label a client got a 2xx for is in the database with the value and version of its
   last acknowledged answer, and the database holds no annotation of the bench task that no client
   was told about (count in the database == count acknowledged).

Prints a summary (requests, requests/s, client and server p50/p95/p99 per request kind, errors,
lost labels) and writes it as JSON to `--summary` (default bench/results/load-<UTC time>.json;
bench/results/ is not versioned); `--json` writes the figures of bench/README.md's summary table
(bench/run_all.py). Exits 1 on any error or lost label.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import label_bench  # noqa: E402  (after the path: run as a script from anywhere)

KINDS = ("next", "submit", "edit", "retry", "stale")


# --- One annotator (in its own process) ------------------------------------------------------------


class Client:
    """One annotator's requests, samples and errors."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = {"Authorization": f"Token {token}"}
        self.samples: list[tuple[str, int, float, float]] = []  # kind, status, client ms, server ms
        self.errors: list[str] = []

    def send(
        self, kind: str, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        try:
            status, payload, timing, elapsed = label_bench.request(
                self.port, method, path, body=body, headers={**self.auth, **(headers or {})}
            )
        except Exception as exc:  # a refused connection, a timeout, a body that is not JSON
            self.errors.append(f"{kind} {method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.samples.append((kind, status, elapsed, timing.get("app", float("nan"))))
        return status, payload

    def expect(self, kind: str, answer: tuple[int, dict[str, Any]] | None, statuses: set[int]) -> bool:
        if answer is None:
            return False
        if answer[0] not in statuses:
            self.errors.append(f"{kind}: {answer[0]} (expected {sorted(statuses)}): {str(answer[1])[:300]}")
            return False
        return True


def annotator(job: dict[str, Any]) -> dict[str, Any]:
    """The loop of one annotator; returns its samples, errors and acknowledged labels."""
    rng = random.Random(job["seed"])
    client = Client(job["port"], job["token"])
    task, values = job["task"], job["values"]
    queue = f"/api/projects/{job['project']}/queue/?task={task}&limit=5"
    acknowledged: dict[int, tuple[str, int]] = {}  # frame id -> (value, version) last answered 2xx
    after: str | None = None
    while time.time() < job["start_at"]:
        time.sleep(0.01)
    stop_at = job["start_at"] + job["duration"]
    while time.time() < stop_at:
        answer = client.send("next", "GET", queue if after is None else f"{queue}&after={after}")
        if not client.expect("next", answer, {200}):
            after = None  # start again from the head of the queue
            continue
        assert answer is not None
        frames = answer[1].get("frames", [])
        if not frames:
            break  # the queue is done for this annotator
        frame_id = frames[0]["id"]
        after = frames[0].get("cursor")
        path = f"/api/frames/{frame_id}/annotations/{task}/"

        label = {"value": rng.choice(values), "confidence": rng.randint(1, 5), "time_on_frame_ms": 1200}
        key = str(uuid.uuid4())
        answer = client.send("submit", "PUT", path, body=label, headers={"Idempotency-Key": key})
        if not client.expect("submit", answer, {201}):
            continue
        assert answer is not None
        acknowledged[frame_id] = (answer[1]["value"], answer[1]["version"])
        last = (label, key, answer)

        draw = rng.random()
        if draw < job["edit"]:
            value, current = acknowledged[frame_id]
            # Another value: an edit that changes nothing keeps the version (nothing is written).
            edit = {**label, "value": rng.choice([v for v in values if v != value]), "version": current}
            key = str(uuid.uuid4())
            answer = client.send("edit", "PUT", path, body=edit, headers={"Idempotency-Key": key})
            if client.expect("edit", answer, {200}):
                assert answer is not None
                if answer[1]["version"] != current + 1:
                    client.errors.append(f"edit: version {answer[1]['version']}, expected {current + 1}")
                acknowledged[frame_id] = (answer[1]["value"], answer[1]["version"])
                last = (edit, key, answer)
        draw = rng.random()
        if draw < job["retry"]:
            body, key, first = last
            answer = client.send("retry", "PUT", path, body=body, headers={"Idempotency-Key": key})
            if client.expect("retry", answer, {first[0]}):
                assert answer is not None
                if (answer[1]["value"], answer[1]["version"]) != (first[1]["value"], first[1]["version"]):
                    client.errors.append(f"retry: answered {answer[1]}, first answer {first[1]}")
        elif draw < job["retry"] + job["stale"]:
            value, current = acknowledged[frame_id]
            stale = {**label, "value": rng.choice([v for v in values if v != value]), "version": current - 1}
            if current == 1:
                stale.pop("version")  # no version on an existing annotation is stale too
            answer = client.send(
                "stale", "PUT", path, body=stale, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            if client.expect("stale", answer, {409}):
                assert answer is not None
                shown = (answer[1].get("current") or {}).get("version")
                if shown != current:
                    client.errors.append(f"stale: 409 shows version {shown}, the current is {current}")
        if job["think"]:
            time.sleep(job["think"])
    return {
        "username": job["username"],
        "samples": client.samples,
        "errors": client.errors,
        "acknowledged": {str(frame): state for frame, state in acknowledged.items()},
    }


# --- The check against the database ---------------------------------------------------------------


def stored_labels(task: int) -> dict[str, dict[int, tuple[str, int]]]:
    """username -> frame id -> (value, version) of every annotation of the bench task."""
    from annotations.models import Annotation

    stored: dict[str, dict[int, tuple[str, int]]] = {}
    rows = Annotation.objects.filter(task_id=task).values_list(
        "annotator__username", "frame_id", "value", "version"
    )
    for username, frame, value, version in rows:
        stored.setdefault(username, {})[frame] = (value, version)
    return stored


def compare(results: list[dict[str, Any]], stored: dict[str, dict[int, tuple[str, int]]]) -> dict[str, Any]:
    """Lost: acknowledged but missing or different in the database. Unacknowledged: stored, but no
    client was told (a write whose answer never arrived)."""
    lost: list[str] = []
    unacknowledged: list[str] = []
    acknowledged_count = 0
    for result in results:
        told = {int(frame): tuple(state) for frame, state in result["acknowledged"].items()}
        acknowledged_count += len(told)
        in_db = stored.get(result["username"], {})
        for frame, state in told.items():
            if in_db.get(frame) != state:
                lost.append(f"{result['username']} frame {frame}: told {state}, stored {in_db.get(frame)}")
        unacknowledged += [f"{result['username']} frame {frame}" for frame in sorted(set(in_db) - set(told))]
    # Annotations of users that are no bench client would be unacknowledged too.
    clients = {result["username"] for result in results}
    for username, labels in stored.items():
        if username not in clients:
            unacknowledged += [f"{username} frame {frame}" for frame in labels]
    return {
        "acknowledged": acknowledged_count,
        "stored": sum(len(labels) for labels in stored.values()),
        "lost": lost,
        "unacknowledged": unacknowledged,
    }


# --- Report -----------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    finite = [value for value in values if value == value]  # no NaN (a response without timing)
    if not finite:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    p50, p95, p99 = np.percentile(np.asarray(finite), [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1)}


def summarise(
    results: list[dict[str, Any]], check: dict[str, Any], args: argparse.Namespace, scene: dict[str, Any]
) -> dict[str, Any]:
    samples = [tuple(sample) for result in results for sample in result["samples"]]
    errors = [error for result in results for error in result["errors"]]
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        chosen = [s for s in samples if s[0] == kind]
        if chosen:
            kinds[kind] = {
                "count": len(chosen),
                "statuses": {
                    str(code): sum(1 for s in chosen if s[1] == code)
                    for code in sorted({s[1] for s in chosen})
                },
                "client_ms": percentiles([s[2] for s in chosen]),
                "server_ms": percentiles([s[3] for s in chosen]),
            }
    return {
        "benchmark": "load_bench",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "load_average_before": round(scene["load"][0], 2),
            "load_average_after": round(scene["load"][1], 2),
            "server": f"gunicorn, {args.workers} sync workers, CLEAR_MODE=production",
        },
        "workload": {
            "users": args.users,
            "duration_s": args.duration,
            "frames": scene["frames"],
            "think_s": args.think,
            "edit": args.edit,
            "retry": args.retry,
            "stale": args.stale,
        },
        "requests": len(samples),
        "requests_per_s": round(len(samples) / args.duration, 1),
        "kinds": kinds,
        "errors": len(errors),
        "error_examples": errors[:20],
        "acknowledged_labels": check["acknowledged"],
        "stored_labels": check["stored"],
        "lost_labels": len(check["lost"]),
        "lost_examples": check["lost"][:20],
        "unacknowledged_labels": len(check["unacknowledged"]),
        "unacknowledged_examples": check["unacknowledged"][:20],
    }


def print_summary(summary: dict[str, Any]) -> None:
    machine, workload = summary["machine"], summary["workload"]
    print(
        f"\nCLEAR load test: {workload['users']} annotators for {workload['duration_s']:g} s, "
        f"{workload['frames']} frames, {machine['server']}, {machine['cores']} cores shared with the clients "
        f"and PostgreSQL; 1-minute load average {machine['load_average_before']} before, "
        f"{machine['load_average_after']} after\n"
    )
    print(
        "| request | count | statuses | client p50 ms | client p95 ms | client p99 ms "
        "| server p50 ms | server p95 ms | server p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, figures in summary["kinds"].items():
        client, server = figures["client_ms"], figures["server_ms"]
        statuses = ", ".join(f"{code}: {count}" for code, count in figures["statuses"].items())
        print(
            f"| {kind} | {figures['count']} | {statuses} | {client['p50']} | {client['p95']} "
            f"| {client['p99']} | {server['p50']} | {server['p95']} | {server['p99']} |"
        )
    print(
        f"\n{summary['requests']} requests, {summary['requests_per_s']} per s; errors: {summary['errors']}; "
        f"labels acknowledged: {summary['acknowledged_labels']}, stored: {summary['stored_labels']}, "
        f"lost: {summary['lost_labels']}, stored but never acknowledged: {summary['unacknowledged_labels']}"
    )
    for line in summary["error_examples"] + summary["lost_examples"] + summary["unacknowledged_examples"]:
        print("  " + line)


# --- Main -------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        media_root = tmp / "media"
        os.environ["CLEAR_MEDIA_ROOT"] = str(media_root)
        url = label_bench.setup_django(args.database)
        try:
            world = argparse.Namespace(
                database=args.database,
                frames=args.frames,
                patients=args.patients,
                annotators=args.users,
                prior_step=0,  # nobody has labelled anything yet
                index=[],
                pg_set=[],
            )
            started = time.perf_counter()
            scene = label_bench.build_project(world, media_root)
            print(f"Built {scene['frames']} frames in {time.perf_counter() - started:.0f} s", flush=True)
            from django.db import connections

            connections.close_all()
            server_args = argparse.Namespace(url_options="", workers=args.workers, threads=1)
            server, port = label_bench.start_server(server_args, url, tmp, media_root, ROOT)
            try:
                results = drive(args, scene, port)
            finally:
                server.terminate()
                server.wait(timeout=30)
            check = compare(results, stored_labels(scene["task"]))
            connections.close_all()
        finally:
            if not args.keep:
                label_bench.drop_database(args.database)
    return summarise(results, check, args, scene)


def drive(args: argparse.Namespace, scene: dict[str, Any], port: int) -> list[dict[str, Any]]:
    # Tokens straight from the database: 20 logins at once from one address would meet the login
    # throttle (10 a minute per address and process), which is right for logins and beside the point here.
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    tokens = [
        Token.objects.get_or_create(user=User.objects.get(username=name))[0].key for name in scene["readers"]
    ]
    scene["load"] = (os.getloadavg()[0], 0.0)
    with multiprocessing.get_context("spawn").Pool(len(tokens)) as pool:
        pool.map(time.sleep, [0.0] * len(tokens), chunksize=1)  # start the processes before timing
        start_at = time.time() + 1.0
        jobs = [
            {
                "port": port,
                "token": token,
                "username": username,
                "project": scene["project"],
                "task": scene["task"],
                "values": scene["values"],
                "start_at": start_at,
                "duration": args.duration,
                "think": args.think,
                "edit": args.edit,
                "retry": args.retry,
                "stale": args.stale,
                "seed": number,
            }
            for number, (token, username) in enumerate(zip(tokens, scene["readers"], strict=True))
        ]
        results = pool.map(annotator, jobs, chunksize=1)
    scene["load"] = (scene["load"][0], os.getloadavg()[0])
    return results


def failed(summary: dict[str, Any]) -> bool:
    return bool(
        summary["errors"]
        or summary["lost_labels"]
        or summary["unacknowledged_labels"]
        or not summary["acknowledged_labels"]
    )


def write_figures(path: str | None, summary: dict[str, Any]) -> None:
    """The figures of bench/README.md's summary table (bench/run_all.py)."""
    from bench.results import Result, write_results

    workload = summary["workload"]
    who = f"{workload['users']} annotators for {workload['duration_s']:g} s, {workload['frames']:,} frames"
    submit = summary["kinds"].get("submit", {})
    write_results(
        path,
        [
            Result(key="load-errors", workload=f"load test, {who}: errors", value=summary["errors"],
                   unit="errors", goal="<= 0", details={"requests/s": summary["requests_per_s"]}),
            Result(key="load-lost-labels", workload=f"load test, {who}: labels acknowledged but lost",
                   value=summary["lost_labels"] + summary["unacknowledged_labels"], unit="labels",
                   goal="<= 0", details={"acknowledged": summary["acknowledged_labels"]}),
            Result(key="load-submit-server-p95", workload=f"load test, {who}: submit server time p95",
                   value=round(submit.get("server_ms", {}).get("p95", 0.0), 1), unit="ms"),
        ],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20, help="annotators working at once")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds each annotator works")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (platform/ runs 3)")
    parser.add_argument("--think", type=float, default=0.0, help="seconds each annotator pauses per frame")
    parser.add_argument("--edit", type=float, default=0.3, help="share of submits followed by an edit")
    parser.add_argument("--retry", type=float, default=0.1, help="share followed by a retried request")
    parser.add_argument("--stale", type=float, default=0.1, help="share followed by a stale edit (409)")
    parser.add_argument("--database", default="clear_load_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--summary", help="where to write the whole summary (default bench/results/load-<time>.json)"
    )
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    args = parser.parse_args(argv)

    summary = run(args)
    print_summary(summary)
    write_figures(args.json, summary)
    stamp = summary["when"][:19].replace(":", "")
    target = Path(args.summary) if args.summary else ROOT / "bench" / "results" / f"load-{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"\nWritten to {target}")
    return 1 if failed(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
