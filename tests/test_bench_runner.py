"""bench/run_all.py: every benchmark script speaks its protocol, and the runner's table is right.

The benchmarks themselves are measurements, not tests; what CI proves here is that the one command
runs the scripts, takes medians over runs, judges goals on them, reports failures and writes the
README section.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import run_all
from bench.results import Result, goal_met, read_results, write_results

BENCH = Path(run_all.__file__).resolve().parent


def test_every_benchmark_script_exists_and_takes_json() -> None:
    scripts = {path.name for path in BENCH.glob("*_bench.py")}
    assert {b.script for b in run_all.BENCHMARKS} == scripts, "a benchmark the runner does not run"
    for benchmark in run_all.BENCHMARKS:
        shown = subprocess.run(
            [sys.executable, str(BENCH / benchmark.script), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert "--json" in shown, benchmark.script
        # The quick run's options are the script's own (a misspelt one would end `run_all --quick`).
        for option in (argument for argument in benchmark.quick if argument.startswith("--")):
            assert option in shown.split(), (benchmark.script, option)


def test_goals_are_judged_by_their_operator() -> None:
    assert goal_met(">= 80", 80.0) and not goal_met(">= 80", 79.9)
    assert goal_met("< 20", 19.9) and not goal_met("< 20", 20.0)
    with pytest.raises(ValueError, match="not '<op> <number>'"):
        Result(key="k", workload="w", value=1.0, unit="%", goal="at least 80")


def test_results_round_trip(tmp_path: Path) -> None:
    results = [Result(key="a", workload="w", value=1.5, unit="ms", goal="< 2", details={"p50 ms": 1.0})]
    write_results(tmp_path / "r.json", results)
    assert read_results(tmp_path / "r.json") == results
    write_results(None, results)  # a script run without --json writes nothing


def test_runner_takes_medians_over_runs_and_writes_the_readme_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nbefore\n\n{run_all.START}\nold table\n{run_all.END}\n\nafter\n")
    status = run_all.main(
        ["--quick", "--runs", "3", "--only", "stats", "--readme", str(readme), "--log", str(tmp_path / "log")]
    )
    assert status == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Benchmarks\n\nbefore") and text.endswith("after\n")
    section = text.split(run_all.START)[1].split(run_all.END)[0]
    rows = [line for line in section.splitlines() if line.startswith("| 5 | stats |")]
    assert len(rows) == 2  # agreement and accuracy
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        median, spread = cells[3].split(" (", 1)
        low, high = (float(part.split()[0]) for part in spread.rstrip(")").split(" - "))
        assert low <= float(median.split()[0]) <= high
        assert cells[4] == "< 1 s" and cells[5] == "yes"
    assert "ran 3 time(s)" in section and "cores" in section and "torch" in section


def test_a_failing_benchmark_is_reported_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken_bench.py"
    broken.write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    monkeypatch.setattr(run_all, "BENCHMARKS", (run_all.Benchmark("broken", str(broken), "0", quick=()),))
    readme = tmp_path / "README.md"
    readme.write_text(f"{run_all.START}\n{run_all.END}\n")
    log = tmp_path / "log"
    status = run_all.main(["--quick", "--runs", "1", "--readme", str(readme), "--log", str(log)])
    assert status == 1
    assert "FAILED: broken run 1" in readme.read_text() and "exited with 3" in readme.read_text()
    assert "boom" in log.read_text()
