"""Agreement and diagnostic accuracy of a long-form ratings CSV, printed as JSON or a table.

    python manage.py ratings_stats ratings.csv --categories healthy,neoplastic --positive neoplastic

Columns: item, rater, value, and optionally reference (the reference standard), patient (the cluster
the bootstrap resamples) and modality (one report per modality plus an MRMC comparison).
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotations.statistics.agreement import WEIGHT_KINDS, check_weight_kind, check_weight_levels
from annotations.statistics.ratings import (
    MEASUREMENT_LEVELS,
    StatisticsInputError,
    measurement_level,
    parse_ratings_csv,
)
from annotations.statistics.report import ReportOptions, format_report_table, report_from_records


def split_categories(raw: str | None) -> list[str] | None:
    """ "a,b,c" -> ["a", "b", "c"]; None or blank -> None (categories are then the observed values)."""
    if raw is None or not raw.strip():
        return None
    return [part.strip() for part in raw.split(",")]


class Command(BaseCommand):
    help = "Agreement (kappa, alpha, percent agreement) and accuracy vs a reference from a ratings CSV."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "csv_path", help="Long-form CSV: item, rater, value[, reference, patient, modality]."
        )
        parser.add_argument(
            "--categories", help="The declared scale, comma-separated, in order (default: observed values)."
        )
        parser.add_argument("--level", default="nominal", choices=MEASUREMENT_LEVELS)
        parser.add_argument("--weights", default="unweighted", choices=WEIGHT_KINDS)
        parser.add_argument(
            "--weight-levels",
            default="declared",
            choices=("declared", "observed"),
            help="Build kappa weights over the declared scale (default) or only the levels observed.",
        )
        parser.add_argument("--positive", help="The positive class of the reference, for accuracy.")
        parser.add_argument("--ai-rater", help="The rater whose ratings are the AI's: each reader vs it.")
        parser.add_argument("--format", default="json", choices=("json", "table"))
        parser.add_argument("--bootstrap", type=int, default=0, help="Patient-bootstrap resamples (0: none).")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--confidence", type=float, default=0.95, help="Confidence level of intervals.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["csv_path"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        if options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more.")
        try:
            with path.open(newline="", encoding="utf-8-sig") as stream:
                parsed = parse_ratings_csv(stream)
            report = report_from_records(
                parsed.records,
                categories=split_categories(options["categories"]),
                level_of_measurement=measurement_level(options["level"]),
                options=ReportOptions(
                    weights=check_weight_kind(options["weights"]),
                    weight_levels=check_weight_levels(options["weight_levels"]),
                    positive=options["positive"],
                    ai_rater=options["ai_rater"],
                    level=options["confidence"],
                    bootstrap=options["bootstrap"],
                    seed=options["seed"],
                ),
            )
        except StatisticsInputError as error:
            raise CommandError(str(error)) from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text.") from None
        if options["format"] == "json":
            self.stdout.write(json.dumps(report, indent=2, allow_nan=False))
        else:
            self.stdout.write(format_report_table(report))
