"""From the sources a user named to an ordered list of candidate files, each with its place.

Pure file-system work (no database): walk folders, extract ZIP archives safely, sort out what is
not a frame, apply the metadata sheet's per-file rows and work out each file's patient,
examination and sequence / video. Everything that is not imported is recorded in the report.
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings

from records.importing.images import image_extensions
from records.importing.layout import (
    FileKind,
    Placement,
    classify,
    is_ignored,
    natural_key,
    patient_folder_part,
    place,
)
from records.importing.metadata import Metadata, MetadataRow, normalise_file_key
from records.importing.options import ImportOptions, ImportReport
from records.importing.safety import ArchiveRejected, extract_zip
from records.pseudonyms import pseudonym_for

# How many parent folders of a single file (not a folder or archive) may name its patient and
# examination: <patient>/<examination>/<sequence>/file is the deepest layout.
SINGLE_FILE_CONTEXT = 3


@dataclass
class Candidate:
    """A file that will be imported as a frame (image) or as frames (video)."""

    path: Path  # where the bytes are (an extracted archive member lies in a scratch folder)
    display: PurePosixPath  # the path the user knows, relative to the source it came from
    layout: PurePosixPath  # the path the layout rules read (an archive counts as a folder)
    context: tuple[str, ...]  # folder names above the source that may name the patient
    kind: FileKind
    source_order: int
    placement: Placement | None = None
    row: MetadataRow | None = None  # the metadata sheet's row for this very file

    @property
    def reference_label(self) -> str:
        return self.row.reference_label if self.row else ""

    def stored_name(self) -> str:
        """The name kept with the frame and in the report (see `pseudonymised_path`)."""
        patient_part = self.placement.patient_part if self.placement else None
        return pseudonymised_path(self.display, self.layout, patient_part)


def pseudonymised_path(display: PurePosixPath, layout: PurePosixPath, patient_part: int | None) -> str:
    """The display path with the patient folder replaced by its pseudonym.

    A patient folder is named by the source identifier (`patient1`, or a hospital number), which
    must reach neither the database nor the job's report; the pseudonym takes its place.
    `patient_part` indexes `layout`, whose leading parts may differ from `display` (an archive is
    laid out as a folder named by its stem), but whose tails are the same.
    """
    if patient_part is None:
        return str(display)
    index = patient_part - (len(layout.parts) - len(display.parts))
    if not 0 <= index < len(display.parts) - 1:
        return str(display)
    parts = list(display.parts)
    parts[index] = pseudonym_for(parts[index])
    return str(PurePosixPath(*parts))


@dataclass
class Plan:
    candidates: list[Candidate] = field(default_factory=list)
    # (patient source identifier, examination code) -> Examination attributes from the sheet
    examination_values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def build_plan(
    *,
    sources: list[Path],
    metadata: Metadata | None,
    metadata_path: Path | None,
    options: ImportOptions,
    report: ImportReport,
    scratch: Path,
) -> Plan:
    walker = _Walker(
        report=report,
        scratch=scratch,
        exclude=metadata_path.resolve() if metadata_path else None,
    )
    for order, source in enumerate(sources):
        walker.add_source(source, order)
    plan = Plan(candidates=walker.candidates)
    if metadata is not None:
        _attach_file_rows(plan.candidates, metadata, report, metadata_path)
    _place(plan.candidates, options, report)
    if metadata is not None:
        _collect_examination_values(plan, metadata, options, report, metadata_path)
    plan.candidates.sort(key=_processing_order)
    return plan


def _processing_order(candidate: Candidate) -> tuple[Any, ...]:
    placement = candidate.placement
    assert placement is not None
    return (
        candidate.source_order,
        placement.patient_identifier,
        placement.examination,
        placement.group or "",
        natural_key(str(candidate.layout)),
    )


class _Walker:
    def __init__(self, *, report: ImportReport, scratch: Path, exclude: Path | None) -> None:
        self.report = report
        self.scratch = scratch
        self.exclude = exclude
        self.candidates: list[Candidate] = []
        self.image_suffixes = image_extensions()
        self.video_suffixes = frozenset(suffix.lower() for suffix in settings.CLEAR_ALLOWED_VIDEO_EXTENSIONS)
        self._archives = 0

    def add_source(self, source: Path, order: int) -> None:
        if source.is_dir():
            self._add_folder(
                source,
                display_prefix=PurePosixPath(),
                layout_prefix=PurePosixPath(),
                context=(source.name,),
                order=order,
                inside_archive=False,
            )
        elif source.is_file():
            context = tuple(parent.name for parent in source.parents if parent.name)[:SINGLE_FILE_CONTEXT]
            name = PurePosixPath(source.name)
            self._add_file(
                source, display=name, layout=name, context=tuple(reversed(context)), order=order,
                inside_archive=False,
            )  # fmt: skip
        else:
            self.report.add_error(source.name or str(source), "no such file or folder")

    def _add_folder(
        self,
        folder: Path,
        *,
        display_prefix: PurePosixPath,
        layout_prefix: PurePosixPath,
        context: tuple[str, ...],
        order: int,
        inside_archive: bool,
    ) -> None:
        for root, directories, files in os.walk(folder):
            directories[:] = sorted(name for name in directories if not is_ignored(name))
            here = Path(root)
            relative_dir = PurePosixPath(here.relative_to(folder).as_posix())
            for name in sorted(files):
                if is_ignored(name):
                    continue
                relative = PurePosixPath(relative_dir, name)
                self._add_file(
                    here / name,
                    display=display_prefix / relative,
                    layout=layout_prefix / relative,
                    context=context,
                    order=order,
                    inside_archive=inside_archive,
                )

    def _add_file(
        self,
        path: Path,
        *,
        display: PurePosixPath,
        layout: PurePosixPath,
        context: tuple[str, ...],
        order: int,
        inside_archive: bool,
    ) -> None:
        if self.exclude is not None and not inside_archive and path.resolve() == self.exclude:
            return  # the metadata sheet itself
        kind = classify(layout, image_suffixes=self.image_suffixes, video_suffixes=self.video_suffixes)
        if isinstance(kind, str):
            # A skipped file in a patient folder is reported under the pseudonym too. (Only a name
            # that looks like a patient counts here: the top-level fallback would take `masks/`.)
            shown = pseudonymised_path(display, layout, patient_folder_part(layout))
            self.report.add_skipped(shown, kind)
        elif kind is FileKind.ARCHIVE:
            if inside_archive:
                self.report.add_skipped(str(display), "archive inside an archive: not imported")
            else:
                self._add_archive(path, display=display, layout=layout, context=context, order=order)
        else:
            self.candidates.append(
                Candidate(
                    path=path, display=display, layout=layout, context=context, kind=kind, source_order=order
                )
            )

    def _add_archive(
        self,
        archive: Path,
        *,
        display: PurePosixPath,
        layout: PurePosixPath,
        context: tuple[str, ...],
        order: int,
    ) -> None:
        self._archives += 1
        target = self.scratch / f"archive-{self._archives}"
        target.mkdir()
        try:
            extracted = extract_zip(archive, target)
        except ArchiveRejected as exc:
            self.report.add_error(str(display), str(exc))
            return
        except OSError as exc:
            self.report.add_error(str(display), f"cannot read the archive: {exc}")
            return
        for member, reason in extracted.errors:
            self.report.add_error(f"{display}/{member}", f"archive member refused: {reason}")
        # Members are laid out as if the archive were a folder named by its stem at its place, so
        # `patient3.zip` or `.../patient3/exam1.zip` mean what the equivalent folders would.
        top_level = len(layout.parts) == 1
        self._add_folder(
            target,
            display_prefix=display,
            layout_prefix=PurePosixPath() if top_level else layout.parent / layout.stem,
            context=(*context, layout.stem) if top_level else context,
            order=order,
            inside_archive=True,
        )


def _attach_file_rows(
    candidates: list[Candidate], metadata: Metadata, report: ImportReport, metadata_path: Path | None
) -> None:
    """Match each per-file row to exactly one candidate by relative path, path tail or filename."""
    sheet = metadata_path.name if metadata_path else "metadata"
    by_tail: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        parts = candidate.display.parts
        for start in range(len(parts)):
            by_tail["/".join(parts[start:]).lower()].append(candidate)
    claimed: dict[int, int] = {}  # id(candidate) -> line of the row that claimed it
    for row in metadata.file_rows:
        key = str(normalise_file_key(row.file)).lower()
        matches = by_tail.get(key, [])
        if not matches:
            report.add_warning(sheet, f"row {row.line}: file '{row.file}' is not among the imported files")
            continue
        if len(matches) > 1:
            report.add_error(
                sheet, f"row {row.line}: '{row.file}' matches {len(matches)} files; give more of its path"
            )
            continue
        candidate = matches[0]
        if id(candidate) in claimed:
            report.add_error(
                sheet, f"row {row.line}: '{row.file}' is already described by row {claimed[id(candidate)]}"
            )
            continue
        claimed[id(candidate)] = row.line
        candidate.row = row


def _place(candidates: list[Candidate], options: ImportOptions, report: ImportReport) -> None:
    """Give every candidate its placement; those without a patient are skipped."""
    kept: list[Candidate] = []
    for candidate in candidates:
        row = candidate.row
        placement = place(
            candidate.layout,
            kind=candidate.kind,
            context=candidate.context,
            default_patient=(row.patient if row and row.patient else None) or options.default_patient,
            default_examination=options.default_examination,
        )
        if placement is not None and row is not None:
            # The sheet is explicit, so it wins over what the folder names suggest.
            if row.patient:
                placement = dataclasses.replace(placement, patient_identifier=row.patient)
            if row.examination:
                placement = dataclasses.replace(placement, examination=row.examination)
        if placement is None:
            report.add_skipped(
                str(candidate.display),
                "outside any patient folder: give a default patient, or name the patient in the metadata",
            )
            continue
        candidate.placement = placement
        kept.append(candidate)
    candidates[:] = kept


def _collect_examination_values(
    plan: Plan, metadata: Metadata, options: ImportOptions, report: ImportReport, metadata_path: Path | None
) -> None:
    """Examination attributes from per-examination rows and per-file rows, conflicts reported."""
    sheet = metadata_path.name if metadata_path else "metadata"
    origin: dict[tuple[str, str, str], int] = {}  # (patient, exam, attribute) -> line that set it

    def merge(key: tuple[str, str], row: MetadataRow, values: dict[str, Any]) -> None:
        target = plan.examination_values.setdefault(key, {})
        for attribute, value in values.items():
            if attribute in target and target[attribute] != value:
                first = origin[(*key, attribute)]
                report.add_error(
                    sheet,
                    f"row {row.line}: {attribute} '{value}' contradicts row {first} "
                    f"('{target[attribute]}'); the first is kept",
                )
                continue
            target[attribute] = value
            origin.setdefault((*key, attribute), row.line)

    for row in metadata.examination_rows:
        patient = row.patient or options.default_patient
        if not patient:
            report.add_error(sheet, f"row {row.line}: names an examination but no patient")
            continue
        merge((patient, row.examination), row, row.examination_values())
    for candidate in plan.candidates:
        if candidate.row is None or candidate.placement is None:
            continue
        values = candidate.row.examination_values()
        values.pop("reference_label", None)  # in a per-file row, the label belongs to the frame
        if values:
            key = (candidate.placement.patient_identifier, candidate.placement.examination)
            merge(key, candidate.row, values)
    for message in metadata.errors:
        report.add_error(sheet, message)
    for message in metadata.warnings:
        report.add_warning(sheet, message)
