"""Every benchmark the issues ask for, several runs each, and the README's summary table.

    .venv/bin/python bench/run_all.py                  # all, 3 runs each, rewrites bench/README.md's summary
    .venv/bin/python bench/run_all.py --runs 5 --only import,label
    .venv/bin/python bench/run_all.py --quick --runs 1 # small sizes: checks the harness, writes no README

(PostgreSQL on 127.0.0.1 as for the single scripts: DATABASE_URL names the server, each script
creates and drops its own throw-away database; Chromium for the browser benchmark; the real-data
samples in ../shared/realdata.)

Each benchmark is its own script (see the sections of bench/README.md for what each compares). The
runner starts each one `--runs` times in a fresh interpreter, in turn (import, label, ..., then the
next run of each), so that a slow minute of the machine does not fall on one benchmark's runs only.
Every script measures its baseline in the same run as CLEAR and writes its summary figures with
`--json` (bench/results.py); the table reports, per figure, the median of the runs, their range,
and the goal judged on the median. The machine (CPU, cores, memory, load average before and after,
PostgreSQL, Python, torch, commit) is described above the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import Result, goal_met, read_results  # noqa: E402  (after the path)

README = ROOT / "bench" / "README.md"
START, END = "<!-- run_all: start -->", "<!-- run_all: end -->"


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    issue: str
    quick: tuple[str, ...]  # arguments for --quick: the same code paths at a small size
    full: tuple[str, ...] = ()  # arguments of the measured run (the scripts' defaults are the goals' sizes)


BENCHMARKS = (
    Benchmark(
        "import", "import_bench.py", "2", ("--frames", "120", "--repeats", "1", "--video-repeats", "1")
    ),
    Benchmark(
        "label",
        "label_bench.py",
        "3",
        (
            "--frames",
            "3000",
            "--prior-step",
            "100",
            "--annotators",
            "3",
            "--duration",
            "3",
            "--rounds",
            "1",
            "--stress-duration",
            "3",
            "--solo-duration",
            "2",
            "--warmup",
            "0.5",
            "--workers",
            "2",
        ),
    ),
    Benchmark("browser", "browser_label_bench.py", "3", ("--frames", "30", "--presses", "20")),
    Benchmark(
        "inference",
        "inference_bench.py",
        "4",
        ("--every-nth", "10", "--single-frames", "5", "--repeats", "1"),
    ),
    Benchmark("stats", "stats_bench.py", "5", ("--readers", "5", "--cases", "500", "--bootstrap", "10")),
    Benchmark("mrmc", "mrmc_bench.py", "5", ("--readers", "4", "--cases", "100", "--repeats", "1")),
    Benchmark(
        "training",
        "training_bench.py",
        "7",
        ("--frames", "16", "--size", "64", "--epochs", "1", "--rounds", "1", "--batch-size", "8"),
    ),
    Benchmark("export", "export_bench.py", "8", ("--frames", "100", "--repeats", "1")),
    Benchmark("load", "load_bench.py", "9", ("--users", "3", "--duration", "4", "--frames", "300")),
)


@dataclass
class Figure:
    """One summary figure over the runs."""

    benchmark: Benchmark
    key: str
    workload: str = ""
    unit: str = ""
    goal: str | None = None
    values: list[float] | None = None

    @property
    def median(self) -> float:
        assert self.values
        return statistics.median(self.values)


def run_benchmark(benchmark: Benchmark, quick: bool, log: Path) -> list[Result]:
    """One run of one benchmark script in a fresh interpreter; its figures, or an exception."""
    with tempfile.TemporaryDirectory(prefix=f"clear-bench-{benchmark.name}-") as folder:
        target = Path(folder) / "results.json"
        command = [
            sys.executable,
            str(ROOT / "bench" / benchmark.script),
            *(benchmark.quick if quick else benchmark.full),
            "--json",
            str(target),
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with log.open("a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(command)}\n")
            out.flush()
            finished = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if finished.returncode != 0:
            raise RuntimeError(f"{benchmark.script} exited with {finished.returncode} (see {log})")
        if not target.is_file():
            raise RuntimeError(f"{benchmark.script} wrote no results (see {log})")
        return read_results(target)


def machine_description(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{memory_kib / 1024**2:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    postgres = _command_output(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"])
    torch_version = _command_output([sys.executable, "-c", "import torch; print(torch.__version__)"])
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}; PostgreSQL {postgres} on the same machine; "
        f"Python {platform.python_version()}, torch {torch_version}; commit {commit}; 1-minute load "
        f"average {load_before[0]:.1f} before and {load_after[0]:.1f} after"
    )


def _command_output(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def format_value(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0f} %"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:g} {unit}"


def summary_table(figures: list[Figure], failures: list[str], runs: int, machine: str, when: str) -> str:
    lines = [
        f"Run by `bench/run_all.py` on {when}: {machine}. Each benchmark ran {runs} time(s), in turn;",
        "each figure is the median of its runs (the range in brackets), its baseline measured in the",
        "same run; the goal is judged on the median.",
        "",
        "| issue | benchmark | figure | median (range) | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        assert figure.values
        spread = (
            f" ({format_value(min(figure.values), figure.unit)}"
            f" - {format_value(max(figure.values), figure.unit)})"
            if len(figure.values) > 1
            else ""
        )
        goal = f"{figure.goal} {figure.unit}" if figure.goal else "context"
        met = ("yes" if goal_met(figure.goal, figure.median) else "**no**") if figure.goal else ""
        lines.append(
            f"| {figure.benchmark.issue} | {figure.benchmark.name} | {figure.workload} | "
            f"{format_value(figure.median, figure.unit)}{spread} | {goal} | {met} |"
        )
    for failure in failures:
        lines.append(f"| | | FAILED: {failure} | | | **no** |")
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section to write the table into")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each benchmark (the table gives medians)"
    )
    parser.add_argument(
        "--only", help="comma-separated benchmark names: " + ", ".join(b.name for b in BENCHMARKS)
    )
    parser.add_argument("--quick", action="store_true", help="small sizes; the README is left alone")
    parser.add_argument(
        "--readme",
        type=Path,
        help="write the table into this file's run_all section (default: bench/README.md for a full "
        "run; nothing for --quick)",
    )
    parser.add_argument("--log", type=Path, help="the benchmarks' own output (default: a temporary file)")
    args = parser.parse_args(argv)
    chosen = list(BENCHMARKS)
    if args.only:
        names = {name.strip() for name in args.only.split(",")}
        unknown = names - {b.name for b in BENCHMARKS}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = [b for b in BENCHMARKS if b.name in names]
    readme = args.readme or (None if args.quick else README)
    log = args.log or Path(tempfile.mkstemp(prefix="clear-bench-", suffix=".log")[1])
    print(f"benchmarks' output: {log}", flush=True)

    load_before = os.getloadavg()
    figures: dict[tuple[str, str], Figure] = {}
    table = ""
    failures: list[str] = []
    for run in range(args.runs):
        for benchmark in chosen:
            started = time.perf_counter()
            try:
                results = run_benchmark(benchmark, args.quick, log)
            except RuntimeError as error:
                failures.append(f"{benchmark.name} run {run + 1}: {error}")
                print(f"  {benchmark.name} run {run + 1}: FAILED ({error})", flush=True)
                continue
            for result in results:
                figure = figures.setdefault(
                    (benchmark.name, result.key),
                    Figure(benchmark, result.key, result.workload, result.unit, result.goal, []),
                )
                assert figure.values is not None
                figure.values.append(result.value)
            shown = ", ".join(f"{r.key} {format_value(r.value, r.unit)}" for r in results)
            print(
                f"  {benchmark.name} run {run + 1}: {time.perf_counter() - started:.0f} s: {shown}",
                flush=True,
            )
        # The table after every round, so that a long run stopped early still leaves the medians of
        # the rounds it finished.
        machine = machine_description(load_before, os.getloadavg())
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        table = summary_table(list(figures.values()), failures, run + 1, machine, when)
        if readme is not None:
            write_readme(readme, table)
    print()
    print(table)
    if readme is not None:
        print(f"\nwritten into {readme}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
