"""Which files of a source are frames, videos or neither, and where in the record tree they belong.

The folder-per-patient convention of CLE and endoscopy datasets:

    <anything>/<patient>/<examination>/<sequence>/<frame>.png
    <anything>/<patient>/<examination>/<video>.mpeg

- The patient is the outermost directory whose name looks like a patient (`patient1`, `pat_03`,
  `P12`, `S01`, `subject-2`, `case7`; case-insensitive), searched from the source's own folder name
  down. Without one it is `options.default_patient` when given (the user said "this is one
  patient"), else the top-level directory of the source. A file with none of these is skipped.
- Images: the last directory below the patient is an acquisition sequence (an image-sequence
  Video); with two or more levels, the first is the examination code.
- Video files: the video is named by the file stem; the first directory below the patient, if any,
  is the examination code.
- Otherwise the examination is `options.default_examination`.
- Mask / annotation folders and `*_mask.*` files are ground truth, not frames: they are skipped
  (and reported), never imported. Hidden files, `__MACOSX` and `Thumbs.db` are ignored silently.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

PATIENT_DIR = re.compile(r"(?:patient|pat|pt|p|subject|subj|sub|s|case)[ _-]?\d+", re.IGNORECASE)
MASK_DIR = re.compile(
    r"annots?|annotations?|masks?|labels?|gt|ground[ _-]?truths?|segmentations?|segs?",
    re.IGNORECASE,
)
MASK_FILE_STEM = re.compile(
    r".*[_ .-](?:masks?|annots?|annotations?|labels?|gt|seg|segmentation)", re.IGNORECASE
)
IGNORED_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini", "ehthumbs.db"})
ARCHIVE_SUFFIXES = frozenset({".zip"})
_DIGITS = re.compile(r"(\d+)")


class FileKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class Placement:
    """Where a file goes: the patient's source identifier, the examination and the group.

    `group` is the image sequence's name for images (None for a loose image) and the video's name
    for video files. `patient_part` is the index in the relative path of the directory that named
    the patient, so that the stored source name can show the pseudonym instead.
    """

    patient_identifier: str
    patient_part: int | None
    examination: str
    group: str | None


def is_ignored(part: str) -> bool:
    """Hidden files and folders and OS clutter: never imported, never reported."""
    return part.startswith(".") or part.lower() in IGNORED_NAMES


def mask_reason(relative: PurePosixPath) -> str | None:
    """Why a file is annotation / ground truth rather than a frame, or None."""
    for directory in relative.parts[:-1]:
        if MASK_DIR.fullmatch(directory):
            return f"annotation/mask folder '{directory}': ground truth, not a frame"
    if MASK_FILE_STEM.fullmatch(relative.stem):
        return "annotation/mask file: ground truth, not a frame"
    return None


def classify(
    relative: PurePosixPath, *, image_suffixes: frozenset[str], video_suffixes: frozenset[str]
) -> FileKind | str:
    """The kind of candidate a file is, or the reason it is skipped."""
    suffix = relative.suffix.lower()
    if suffix in video_suffixes:
        kind = FileKind.VIDEO
    elif suffix in image_suffixes:
        kind = FileKind.IMAGE
    elif suffix in ARCHIVE_SUFFIXES:
        kind = FileKind.ARCHIVE
    else:
        return "not an image, video or ZIP archive"
    if kind is not FileKind.ARCHIVE and (reason := mask_reason(relative)):
        return reason
    return kind


def place(
    relative: PurePosixPath,
    *,
    kind: FileKind,
    context: Sequence[str],
    default_patient: str | None,
    default_examination: str,
) -> Placement | None:
    """The file's place in the record tree from its path alone; None when no patient is known.

    `context` holds names of folders above the source root that may still name the patient (the
    imported folder's own name, a ZIP's stem, the parents of a single file), outermost first.
    """
    directories = list(relative.parts[:-1])
    named = list(context) + directories
    patient_index = next((i for i, name in enumerate(named) if PATIENT_DIR.fullmatch(name)), None)
    if patient_index is not None:
        patient = named[patient_index]
        below = named[patient_index + 1 :]
        in_relative = patient_index - len(context)
        patient_part = in_relative if in_relative >= 0 else None
    elif default_patient:
        patient, below, patient_part = default_patient, directories, None
    elif directories:
        patient, below, patient_part = directories[0], directories[1:], 0
    else:
        return None

    if kind is FileKind.VIDEO:
        examination = below[0] if below else default_examination
        group: str | None = "/".join([*below[1:], relative.stem])
    elif not below:
        examination, group = default_examination, None
    elif len(below) == 1:
        examination, group = default_examination, below[0]
    else:
        examination, group = below[0], "/".join(below[1:])
    return Placement(
        patient_identifier=patient, patient_part=patient_part, examination=examination, group=group
    )


def patient_folder_part(relative: PurePosixPath) -> int | None:
    """Index in `relative` of a directory whose name looks like a patient (the pattern only)."""
    return next((i for i, name in enumerate(relative.parts[:-1]) if PATIENT_DIR.fullmatch(name)), None)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts frame2 before frame10; zero-padded names sort as they read either way."""
    return tuple((0, int(piece)) if piece.isdigit() else (1, piece.lower()) for piece in _DIGITS.split(name))
