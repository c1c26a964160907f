from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImportOptions:
    """What the user chose for one import; JSON-able so that it can travel in Job.params."""

    every_nth: int = 1  # keep every n-th decoded video frame
    crop: bool = False  # detect the black border / circular field and record it with the frame
    default_examination: str = "E1"  # examination code when neither layout nor metadata names one
    default_patient: str | None = None  # source identifier for files outside any patient folder
    device: str = ""  # device for examinations the metadata does not describe
    anatomical_site: str = ""

    def __post_init__(self) -> None:
        if self.every_nth < 1:
            raise ValueError("every_nth must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportOptions:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


@dataclass
class ImportReport:
    """What an import did, file by file; stored as the job's result."""

    patients_created: int = 0
    examinations_created: int = 0
    videos_created: int = 0
    frames_created: int = 0
    # {path, kind: frame|video, duplicate_of: id of the frame or video already stored}
    duplicates: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {path, reason}: not frames
    errors: list[dict[str, str]] = field(default_factory=list)  # {path, error}: bad input
    warnings: list[dict[str, str]] = field(default_factory=list)  # {path, warning}: e.g. sheet columns
    previews_job_id: int | None = None  # the job rendering the new frames' previews, if any

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data

    def summary(self) -> str:
        return (
            f"{self.frames_created} frames imported, {len(self.duplicates)} duplicates skipped, "
            f"{len(self.skipped)} files skipped, {len(self.errors)} errors"
            + (f", {len(self.warnings)} warnings" if self.warnings else "")
        )

    def add_error(self, path: str, error: str) -> None:
        self.errors.append({"path": path, "error": error})

    def add_skipped(self, path: str, reason: str) -> None:
        self.skipped.append({"path": path, "reason": reason})

    def add_warning(self, path: str, warning: str) -> None:
        self.warnings.append({"path": path, "warning": warning})

    def add_duplicate(self, path: str, *, kind: str, duplicate_of: int) -> None:
        self.duplicates.append({"path": path, "kind": kind, "duplicate_of": str(duplicate_of)})
