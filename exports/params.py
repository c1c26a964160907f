"""An export's parameters as one value: what the job builds from, and what the snapshot hash covers.

`ExportParams.to_json()` is canonical (every default written out, lists sorted where order means
nothing), so the same request gives the same parameters and the same hash.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from annotations.datasets import LabelSource
from annotations.splits import SplitScheme, scheme_from_json, scheme_to_json
from exports.models import ExportSnapshot

Format = ExportSnapshot.Format
# Layouts with one class per image file: only labelled frames, and one label per frame.
CLASS_LAYOUT_FORMATS = frozenset({Format.IMAGEFOLDER, Format.HF, Format.WEBDATASET})
LABEL_STATES = ("any", "labelled", "adjudicated")
DEFAULT_SHARD_SIZE = 1000
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ExportFilters:
    """Which frames of the projects go in (all of them when nothing is set)."""

    sites: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    # The decided value (adjudication, else majority) of this task must be one of `quality_values`.
    quality_task: str = ""
    quality_values: tuple[str, ...] = ()
    # any; labelled: a free annotation of the exported task exists; adjudicated: an adjudication does.
    label_state: str = "any"
    date_from: datetime.date | None = None  # examination date, inclusive
    date_to: datetime.date | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sites": sorted(self.sites),
            "devices": sorted(self.devices),
            "quality_task": self.quality_task,
            "quality_values": sorted(self.quality_values),
            "label_state": self.label_state,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportFilters:
        return cls(
            sites=tuple(sorted(data.get("sites", []))),
            devices=tuple(sorted(data.get("devices", []))),
            quality_task=data.get("quality_task", "") or "",
            quality_values=tuple(sorted(data.get("quality_values", []))),
            label_state=data.get("label_state", "any"),
            date_from=_date(data.get("date_from")),
            date_to=_date(data.get("date_to")),
        )


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ExportParams:
    project_ids: tuple[int, ...]
    task_key: str
    label_source: LabelSource
    filters: ExportFilters
    split: SplitScheme
    format: str
    remove_near_duplicates: bool = False
    near_duplicate_distance: int = DEFAULT_NEAR_DUPLICATE_DISTANCE
    include_images: bool = True
    shard_size: int = DEFAULT_SHARD_SIZE

    @property
    def class_layout(self) -> bool:
        return self.format in CLASS_LAYOUT_FORMATS

    def to_json(self) -> dict[str, Any]:
        return {
            "projects": sorted(self.project_ids),
            "task": self.task_key,
            "label_source": str(self.label_source),
            "filters": self.filters.to_json(),
            "split": scheme_to_json(self.split),
            "remove_near_duplicates": self.remove_near_duplicates,
            "near_duplicate_distance": self.near_duplicate_distance,
            "format": str(self.format),
            "include_images": self.include_images,
            "shard_size": self.shard_size,
        }

    @classmethod
    def from_snapshot(cls, snapshot: ExportSnapshot) -> ExportParams:
        options = snapshot.options or {}
        return cls(
            project_ids=tuple(sorted(snapshot.projects.values_list("pk", flat=True))),
            task_key=snapshot.task_key,
            label_source=LabelSource(snapshot.label_source),
            filters=ExportFilters.from_json(snapshot.filters or {}),
            split=scheme_from_json(snapshot.split or {}),
            format=snapshot.format,
            remove_near_duplicates=snapshot.remove_near_duplicates,
            near_duplicate_distance=snapshot.near_duplicate_distance,
            include_images=bool(options.get("include_images", True)),
            shard_size=int(options.get("shard_size", DEFAULT_SHARD_SIZE)),
        )
