"""Re-score with CAMs against a bare timm + pytorch-grad-cam loop, and single-frame latency, in one run.

    .venv/bin/python bench/inference_bench.py                    # --batch-size 16 --repeats 2
    .venv/bin/python bench/inference_bench.py --profile          # + cProfile of one service run

(PostgreSQL on 127.0.0.1 as for bench/import_bench.py; BENCH_ADMIN_DATABASE_URL overrides the
server's `postgres` database URL used to create and drop the throw-away `clear_inference_bench`
database. Nothing is downloaded: the model has random weights.)

Issue 4's speed goals:

1. Re-score with CAM throughput of the real service `inference.services.model_version_score_frames`
   (what the `inference.rescore_job` task runs: the stored PNGs are opened, predicted with Grad-CAM,
   each CAM rendered, PNG-encoded and written content-addressed, then the Prediction rows inserted
   per batch) against a bare batched loop on the same stored frames at the same input size and
   batch size: PIL decode, timm's own eval transform (`resolve_data_config` + `create_transform`),
   `GradCAM(model, [model.bn2])` called on the batch (its forward gives the logits, softmaxed), nothing
   stored. Goal: the service at >= 80 % of the bare loop's frames/s.
2. Single-frame prediction with CAM for efficientnet_b0 on the CPU: goal under 200 ms. Timed at the
   ML level (`inference.ml.cam.predict_frames_with_cam` with one frame on a loaded model, the PNG
   decode included; torch's default threads), and through the on-demand services as the web process
   runs them (CLEAR_ONDEMAND_TORCH_THREADS, 1 by default): `predict_frame_on_demand` (a stored frame
   not scored yet: computed, CAM file and rows stored) and `classify_image` (an image, nothing
   stored), with the version active and its model cached.

Frames: the real pCLE video (Cellvizio, 576x592 grayscale, 260 frames) from ../shared/realdata,
imported with the import service into a fresh project, so both sides read the same stored PNGs.
Model: timm efficientnet_b0 with 2 classes and random weights, saved as a CLEAR model file
(`save_model_file`) and registered with `model_version_register`; the bare loop's timm model gets the
same weights. Both sides run after a warm-up; the two throughput sides alternate --repeats times and
each keeps its best run (before every service run its predictions and CAM files are removed, so
nothing is skipped as already done). torch's thread count is set once for the whole run (default:
torch's own default) and printed with the CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REALDATA = ROOT.parent / "shared" / "realdata" / "amphybio_endomicroscopy-analysis"
VIDEO = REALDATA / "data-sample/comparative-sample/main/S01/1/S01V01.mpeg"
WARMUP_FRAMES = REALDATA / "data-sample/comparative-sample/main/S01/1/S01V01_frames"
ARCHITECTURE = "efficientnet_b0"
LABELS = ["healthy", "tumour"]
TASK_KEY = "diagnosis"


def setup_django(database: str) -> None:
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    os.environ["DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + "/" + database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def drop_database(database: str) -> None:
    import psycopg

    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def no_progress(done: int, total: int | None, message: str = "") -> None:
    return None


def make_project(name: str, sources: list[Path], **options: Any) -> tuple[Any, Any]:
    """A project with the diagnosis task, its frames imported from `sources`."""
    from annotations.models import LabelChoice, LabelTask
    from records.importing.options import ImportOptions
    from records.importing.service import import_sources
    from records.models import Project

    project = Project.objects.create(name=name, slug=name)
    task = LabelTask.objects.create(project=project, key=TASK_KEY, name="Diagnosis")
    for order, value in enumerate(LABELS):
        LabelChoice.objects.create(task=task, value=value, label=value.title(), order=order)
    report = import_sources(
        project_id=project.pk,
        sources=sources,
        metadata=None,
        options=ImportOptions(**options),
        progress=no_progress,
    )
    assert report.frames_created and not report.errors, report.summary()
    return project, task


# --- The bare loop ---------------------------------------------------------------------------------


class BareLoop:
    """What a PyTorch user writes: timm model, timm eval transform, pytorch-grad-cam on each batch."""

    def __init__(self, state_dict: dict[str, Any]) -> None:
        import timm
        from pytorch_grad_cam import GradCAM
        from timm.data import create_transform, resolve_data_config

        self.model = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=len(LABELS))
        self.model.load_state_dict(state_dict)
        self.model.eval()
        self.config = resolve_data_config({}, model=self.model)
        self.transform = create_transform(**self.config)
        self.cam = GradCAM(model=self.model, target_layers=[self.model.bn2])

    def run(self, paths: list[Path], batch_size: int) -> float:
        import numpy as np
        import torch
        from PIL import Image

        start = time.perf_counter()
        for first in range(0, len(paths), batch_size):
            tensors = []
            for path in paths[first : first + batch_size]:
                with Image.open(path) as image:
                    tensors.append(self.transform(image.convert("RGB")))
            batch = torch.stack(tensors)
            maps = self.cam(input_tensor=batch, targets=None)
            probabilities = torch.softmax(self.cam.outputs.detach(), dim=1).numpy()
            assert maps.shape[0] == probabilities.shape[0] == len(tensors)
            assert np.isfinite(maps).all()
        return time.perf_counter() - start


# --- The service -----------------------------------------------------------------------------------


def service_run(model_version: Any, batch_size: int, expected: int, profile: Path | None = None) -> float:
    """One re-score of the project by the real service, from nothing scored and no CAM files."""
    from django.conf import settings

    from inference.models import Prediction
    from inference.services import model_version_score_frames

    Prediction.objects.filter(model_version=model_version).delete()
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "cams", ignore_errors=True)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = model_version_score_frames(
        model_version=model_version, batch_size=batch_size, progress=no_progress
    )
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    assert result["frames_scored"] == expected and result["frames_skipped"] == 0, result
    assert Prediction.objects.filter(model_version=model_version).count() == expected
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).sort_stats("cumulative")
        stats.print_stats(35)
        print(stream.getvalue())
    return seconds


# --- Single-frame latency --------------------------------------------------------------------------


def latencies(call: Callable[[int], None], count: int, warmup: int) -> list[float]:
    for index in range(warmup):
        call(index)
    times = []
    for index in range(count):
        start = time.perf_counter()
        call(warmup + index)
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="clear_inference_bench")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--every-nth", type=int, default=1, help="import every n-th video frame (1: all 260)")
    parser.add_argument("--single-frames", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra service run")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--json", help="write the summary figures here (bench/run_all.py)")
    args = parser.parse_args()
    if not VIDEO.is_file():
        sys.exit(f"{VIDEO} is missing: the real-data samples must sit beside the repository")

    import torch

    import inference.ml  # noqa: F401  (the torchvision shim, before timm and pytorch-grad-cam)

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the same count for every measurement below

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["CLEAR_MEDIA_ROOT"] = str(work / "media")
        setup_django(args.database)
        try:
            run_bench(args, work, threads)
        finally:
            from django.db import connections

            connections.close_all()
            if not args.keep_database:
                drop_database(args.database)


def run_bench(args: argparse.Namespace, work: Path, threads: int) -> None:
    import torch
    from PIL import Image

    from inference.ml.cam import predict_frames_with_cam
    from inference.ml.factory import create_model
    from inference.ml.model_files import ModelMetadata, load_model_file, save_model_file
    from inference.ml.predict import select_device
    from inference.services import model_version_register
    from records import media
    from records.models import Frame

    load_at_start = load_average()
    device = select_device()
    model_path = work / "efficientnet_b0.safetensors"
    model = create_model(ARCHITECTURE, num_classes=len(LABELS))
    save_model_file(model_path, model, ModelMetadata.for_model(model, tasks={TASK_KEY: LABELS}))

    project, task = make_project("bench-rescore", [VIDEO], default_patient="S01", every_nth=args.every_nth)
    warm_project, warm_task = make_project("bench-warmup", [WARMUP_FRAMES], default_patient="S01")
    version = model_version_register(
        project=project, task=task, uploaded_path=model_path, name="bench", created_by=None
    )
    warm_version = model_version_register(
        project=warm_project, task=warm_task, uploaded_path=model_path, name="warm-up", created_by=None
    )
    frames = list(
        Frame.objects.filter(examination__patient__project=project).order_by("id").only("id", "file")
    )
    # The bare baseline reads the local backend's files directly.
    paths = [Path(media.storage().path(frame.file)) for frame in frames]
    with Image.open(paths[0]) as first:
        frame_desc = f"{first.width}x{first.height} {first.mode}"
    count = len(paths)

    bare = BareLoop(load_model_file(model_path, device="cpu").model.module.state_dict())
    # Warm-up: both paths once on the 26 warm-up frames (allocator, oneDNN kernels, file cache).
    service_run(warm_version, args.batch_size, len(list(WARMUP_FRAMES.glob("*.png"))))
    bare.run(paths[:32], args.batch_size)

    bare_runs, service_runs = [], []
    for _ in range(args.repeats):
        bare_runs.append(bare.run(paths, args.batch_size))
        service_runs.append(service_run(version, args.batch_size, count))
    if args.profile:
        service_run(version, args.batch_size, count, profile=work / "service.prof")
    bare_seconds, service_seconds = min(bare_runs), min(service_runs)

    # Single frame with its CAM on a loaded model, one frame at a time, PNG decode included.
    loaded = load_model_file(model_path, device=device)

    def ml_single(index: int) -> None:
        with Image.open(paths[index % count]) as image:
            image.load()
            predict_frames_with_cam(loaded.model, [image], batch_size=1, device=device)

    single = latencies(ml_single, args.single_frames, warmup=5)
    single_rows = [
        ("`predict_frames_with_cam`, 1 frame, loaded model (ML level; decode + prepare + forward + "
         "Grad-CAM + render)", single),
    ]  # fmt: skip
    if threads > 1:
        # Context: one frame's ops are small, so with other processes on the cores the threads of
        # each parallel region wait for one another; one thread shows how much of it that is.
        torch.set_num_threads(1)
        try:
            single_rows.append(
                ("the same, 1 torch thread (context, not the setting measured above)",
                 latencies(ml_single, args.single_frames, warmup=5))
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
    if count < args.single_frames + 5:
        raise SystemExit(f"too few frames ({count}) for {args.single_frames} on-demand predictions")
    # Last: the on-demand services cap torch's threads for the rest of the process.
    for name, call in on_demand_callers(frames, version, task, paths):
        single_rows.append((name, latencies(call, args.single_frames, warmup=5)))

    print(
        f"\nCLEAR inference benchmark: {ARCHITECTURE}, {len(LABELS)} classes, random weights, "
        f"input 224 px, device {device}, torch {torch.__version__} with {threads} threads, "
        f"{os.cpu_count()} cores ({cpu_name()}); load average (1, 5, 15 min; the bench itself adds up "
        f"to {threads}) at the start {load_at_start}, at the end {load_average()}\n"
    )
    print(
        "| workload | frames | batch | bare timm + pytorch-grad-cam frames/s | CLEAR service frames/s "
        "| CLEAR / bare | goal |"
    )
    print("|---|---|---|---|---|---|---|")
    ratio = bare_seconds / service_seconds
    print(
        f"| re-score with Grad-CAM, pCLE video frames (PNG {frame_desc}) | {count} | {args.batch_size} "
        f"| {count / bare_seconds:.1f} | {count / service_seconds:.1f} | {ratio:.0%} "
        f"| >= 80 % {'met' if ratio >= 0.8 else 'NOT met'} |"
    )
    print("\n| single frame with CAM, CPU | frames | median ms | p95 ms | goal |")
    print("|---|---|---|---|---|")
    for name, times in single_rows:
        p95 = percentile(times, 0.95) * 1000
        goal = "none" if "(context" in name else f"< 200 ms {'met' if p95 < 200 else 'NOT met'} (p95)"
        print(f"| {name} | {len(times)} | {statistics.median(times) * 1000:.1f} | {p95:.1f} | {goal} |")
    from bench.results import Result, write_results

    results = [
        Result(
            key="rescore-cam",
            workload=f"re-score with Grad-CAM ({ARCHITECTURE}, {count} frames) vs bare timm + grad-cam",
            value=round(100 * ratio, 1),
            unit="%",
            goal=">= 80",
            details={"bare frames/s": count / bare_seconds, "CLEAR frames/s": count / service_seconds},
        )
    ]
    for name, times in single_rows:
        if "(context" in name:
            continue
        function = name.split("`")[1]  # each row names the function it times
        results.append(
            Result(
                key=f"single-frame-{function.rsplit('.', 1)[-1]}",
                workload=f"one frame with CAM on the CPU, p95: {function}",
                value=round(percentile(times, 0.95) * 1000, 1),
                unit="ms",
                goal="< 200",
                details={"median ms": statistics.median(times) * 1000},
            )
        )
    write_results(args.json, results)
    print(
        f"\nBest of {args.repeats} alternating runs per side (seconds: bare "
        f"{', '.join(f'{s:.2f}' for s in bare_runs)}; service {', '.join(f'{s:.2f}' for s in service_runs)})."
    )


def on_demand_callers(
    frames: list[Any], version: Any, task: Any, paths: list[Path]
) -> list[tuple[str, Callable[[int], None]]]:
    """The on-demand single-frame services (issue 4, item 6) as the web process runs them (torch
    threads capped by CLEAR_ONDEMAND_TORCH_THREADS at the first model load): a stored frame predicted
    and stored (`predict_frame_on_demand`, each call on a frame not yet scored), and an image
    classified without storing anything (`classify_image`, PNG decode included). The version is made
    the active one of its task (and its predictions removed) first."""
    import torch
    from django.conf import settings
    from PIL import Image

    from inference import ondemand
    from inference.models import Prediction
    from inference.services import model_version_activate

    model_version_activate(model_version=version)
    Prediction.objects.filter(model_version=version).delete()
    threads = settings.CLEAR_ONDEMAND_TORCH_THREADS or torch.get_num_threads()

    def on_demand(index: int) -> None:
        prediction = ondemand.predict_frame_on_demand(frame=frames[index], task=task)
        assert prediction.cam_file, "no CAM stored"

    def classify_one(index: int) -> None:
        with Image.open(paths[index % len(paths)]) as image:
            image.load()
            result = ondemand.classify_image(project=version.project, task=task, image=image)
        assert result.cam_png

    return [
        (f"`inference.ondemand.predict_frame_on_demand` (stored frame: decode + model + CAM + CAM file "
         f"+ rows; model cached; {threads} torch thread(s) as in the web process)", on_demand),
        (f"`inference.ondemand.classify_image` (decoded image: model + CAM PNG, nothing stored; model "
         f"cached; {threads} torch thread(s))", classify_one),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
