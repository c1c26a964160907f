"""Keypress to next frame painted in the labelling workspace, with and without prefetch.

    .venv/bin/python bench/browser_label_bench.py            # PostgreSQL on 127.0.0.1, Debian chromium

A throw-away `clear_browser_bench` database gets a project with a diagnosis task and --frames
CLE-like 576x592 grayscale frames, imported by CLEAR's own import service (lossless PNG, previews).
`manage.py runserver` serves the built app (as `./dev demo` does) and headless Chromium, driven by
Playwright through Debian's /usr/bin/chromium, signs in and labels --presses frames with the keyboard,
once with prefetch (the app's default) and once with `?prefetch=0`, each as its own user in a fresh
browser context (empty cache), the same frames in the same order.

What is measured is the app's own instrumentation (frontend/src/perf.ts, `window.__clearPerf`):
performance.now() at keydown, and again in the requestAnimationFrame callback after the next frame's
decoded image is in the page, the frame that paints it. Goal: p50 and p95 under 100 ms with prefetch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = os.environ.get("CLEAR_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "bench-password"  # noqa: S105 - a throw-away user of a throw-away database
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def generate_frames(folder: Path, count: int) -> None:
    """CLE-like frames (records.demo's generator) with per-frame detector noise, so every frame is
    its own image and compresses like a real one."""
    from records.demo import HEALTHY, NEOPLASTIC, demo_frame

    sequence = folder / "bench-patient" / "seq1"
    sequence.mkdir(parents=True, exist_ok=True)
    bases = [
        np.asarray(
            demo_frame(
                patient="bench",
                examination="E1",
                label=HEALTHY if index % 2 else NEOPLASTIC,
                index=index,
            ),
            dtype=np.int16,
        )
        for index in range(16)
    ]
    rng = np.random.default_rng(0)
    for index in range(count):
        base = bases[index % len(bases)]
        pixels = np.clip(base + rng.normal(0, 3, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(sequence / f"frame{index:05d}.png", compress_level=1)


def setup_database(database: str) -> str:
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    return admin_url.rsplit("/", 1)[0] + "/" + database


def drop_database(database: str) -> None:
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@dataclass
class Setup:
    project_id: int
    task_id: int
    frames: int
    usernames: tuple[str, str]


def _no_progress(done: int, total: int | None, message: str = "") -> None:
    return None


def populate(work: Path, frames: int) -> Setup:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from annotations.models import LabelChoice, LabelTask
    from records.importing.options import ImportOptions
    from records.importing.service import import_sources
    from records.models import Project, ProjectMembership

    generate_frames(work / "frames", frames)
    project = Project.objects.create(name="Browser bench", slug="browser-bench")
    report = import_sources(
        project_id=project.pk,
        sources=[work / "frames"],
        metadata=None,
        options=ImportOptions(device="pCLE (bench)", anatomical_site="larynx"),
        progress=_no_progress,
    )
    assert report.frames_created == frames, report.summary()
    task = LabelTask.objects.create(project=project, key="diagnosis", name="Diagnosis")
    for order, (value, label, color, hotkey) in enumerate(
        [("healthy", "Healthy", "#2e7d32", "h"), ("neoplastic", "Neoplastic", "#c62828", "n")]
    ):
        LabelChoice.objects.create(
            task=task, value=value, label=label, color=color, hotkey=hotkey, order=order
        )
    usernames = ("bench-prefetch", "bench-no-prefetch")
    for username in usernames:
        user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        ProjectMembership.objects.create(project=project, user=user, role=ProjectMembership.Role.READER)
    from django.db import connections

    connections.close_all()
    return Setup(project_id=project.pk, task_id=task.pk, frames=frames, usernames=usernames)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the web server did not start within 60 s")


def measure(
    browser: object, base: str, setup: Setup, username: str, *, prefetch: bool, presses: int, think_ms: int
) -> list[float]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_selector("header .user")
    query = "" if prefetch else "?prefetch=0"
    page.goto(f"{base}/label/{setup.project_id}/{setup.task_id}{query}")
    page.wait_for_function("window.__clearPerf && window.__clearPerf.shown >= 1", timeout=30_000)
    assert page.evaluate("window.__clearPerf.prefetch") is prefetch
    for number in range(presses):
        page.wait_for_timeout(think_ms)  # the reader looks at the frame
        shown = page.evaluate("window.__clearPerf.shown")
        page.keyboard.press("h" if number % 2 else "n")
        page.wait_for_function(f"window.__clearPerf.shown > {shown}", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.save[data-state=saving]').length === 0")
    samples = [float(sample["ms"]) for sample in page.evaluate("window.__clearPerf.samples")]
    context.close()
    return samples


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--presses", type=int, default=120, help="labelling keypresses per mode")
    parser.add_argument("--warmup", type=int, default=5, help="first keypresses per mode left out")
    parser.add_argument("--think-ms", type=int, default=250, help="time on each frame before the key")
    parser.add_argument("--database", default="clear_browser_bench")
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    args = parser.parse_args()
    if args.presses + 1 > args.frames:
        parser.error("--frames must exceed --presses")
    index = ROOT / "frontend" / "static" / "frontend" / "index.html"
    if not index.is_file():
        raise SystemExit("The browser app is not built: run ./dev install first")
    if not shutil.which(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")

    work = Path(tempfile.mkdtemp(prefix="clear-browser-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": setup_database(args.database),
        "CLEAR_MEDIA_ROOT": str(work / "media"),
        "CLEAR_UPLOAD_ROOT": str(work / "uploads"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_BROKER_URL": "memory://",
    }
    os.environ.update(env)
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        setup = populate(work, args.frames)
        print(f"{args.frames} frames imported in {time.perf_counter() - started:.1f} s", flush=True)
        port = free_port()
        server = start_server(port, env)
        base = f"http://127.0.0.1:{port}"
        from playwright.sync_api import sync_playwright

        results: dict[str, list[float]] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # Without prefetch first, so that neither mode profits from a server warmed by the other.
            for name, username, prefetch in (
                ("without prefetch (?prefetch=0)", setup.usernames[1], False),
                ("with prefetch (default)", setup.usernames[0], True),
            ):
                samples = measure(
                    browser,
                    base,
                    setup,
                    username,
                    prefetch=prefetch,
                    presses=args.presses,
                    think_ms=args.think_ms,
                )
                results[name] = samples[args.warmup :]
                print(f"{name}: {len(samples)} samples", flush=True)
            browser.close()

        print(
            f"\nCLEAR labelling workspace: keypress to next frame painted ({os.cpu_count()} cores, "
            f"{args.frames} frames of 576x592, think time {args.think_ms} ms, first {args.warmup} left out)\n"
        )
        print("| mode | keypresses | p50 ms | p95 ms | mean ms | max ms | goal |")
        print("|---|---|---|---|---|---|---|")
        for name, values in results.items():
            p50, p95 = percentile(values, 50), percentile(values, 95)
            goal = (
                "p95 < 100 ms " + ("met" if p95 < 100 else "NOT met") if "with prefetch" in name else "none"
            )
            print(
                f"| {name} | {len(values)} | {p50:.1f} | {p95:.1f} | {statistics.fmean(values):.1f} | "
                f"{max(values):.1f} | {goal} |"
            )
        from bench.results import Result, write_results

        write_results(
            args.json,
            [
                Result(
                    key="browser-keypress" + ("" if "with prefetch" in name else "-no-prefetch"),
                    workload=f"browser: keypress to next frame painted, p95, {name}",
                    value=round(percentile(values, 95), 1),
                    unit="ms",
                    goal="< 100" if "with prefetch" in name else None,
                    details={"p50 ms": percentile(values, 50)},
                )
                for name, values in results.items()
            ],
        )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        drop_database(args.database)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
