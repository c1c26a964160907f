"""Safe extraction of ZIP archives.

An uploaded archive is hostile until proven otherwise: member names may climb out of the target
folder (zip slip: absolute paths, `..`, drive letters, symlinks), and sizes in the headers may lie
(zip bombs). Names are checked before anything is written, and the caps from settings
(CLEAR_ZIP_*) are enforced on the bytes actually decompressed, never on the headers alone.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

CHUNK_BYTES = 1024 * 1024
# The compression-ratio cap applies once a member has produced this much: tiny, highly compressible
# files (a CSV, an all-black BMP) are harmless, and a bomb is still caught after its first MiB.
RATIO_GRACE_BYTES = 1024 * 1024
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class ArchiveRejected(Exception):
    """The archive as a whole cannot be used (not a zip, too many members, ...)."""


@dataclass
class ExtractedArchive:
    files: list[Path] = field(default_factory=list)  # extracted member files, below the target folder
    errors: list[tuple[str, str]] = field(default_factory=list)  # (member name, why it was refused)


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path a member may be extracted to; raises ValueError for zip-slip names."""
    if "\x00" in name:
        raise ValueError("member name contains a NUL byte")
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE_LETTER.match(normalised):
        raise ValueError("absolute member path (zip slip)")
    parts = [part for part in normalised.split("/") if part not in {"", "."}]
    if any(part == ".." for part in parts):
        raise ValueError("member path climbs out of the archive with '..' (zip slip)")
    if not parts:
        raise ValueError("empty member name")
    return PurePosixPath(*parts)


def extract_zip(archive: Path, target: Path, *, only: Collection[str] | None = None) -> ExtractedArchive:
    """Extract the regular-file members of `archive` below `target` (which must exist); with `only`,
    just the members of those (relative, '/'-separated) paths, under the same checks.

    Refused members are listed in `errors` and never written; the rest are extracted. Raises
    ArchiveRejected when the file is not a zip at all or has more members than allowed.
    """
    max_members: int = settings.CLEAR_ZIP_MAX_MEMBERS
    max_total: int = settings.CLEAR_ZIP_MAX_TOTAL_BYTES
    max_member: int = settings.CLEAR_ZIP_MAX_MEMBER_BYTES
    max_ratio: int = settings.CLEAR_ZIP_MAX_RATIO
    result = ExtractedArchive()
    root = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > max_members:
                raise ArchiveRejected(f"the archive has {len(members):,} members (limit {max_members:,})")
            total = 0
            written: set[PurePosixPath] = set()
            for info in members:
                if info.is_dir():
                    continue
                try:
                    relative = safe_member_path(info.filename)
                    if only is not None and relative.as_posix() not in only:
                        continue
                    _check_member_header(info, max_member)
                    if relative in written:
                        raise ValueError("a second member with the same name")
                    if total >= max_total:
                        raise ValueError(f"the archive's total size cap ({max_total:,} bytes) is reached")
                    destination = root.joinpath(*relative.parts)
                    if not destination.resolve().is_relative_to(root):
                        raise ValueError("member path points outside the extraction folder (zip slip)")
                    total += _extract_member(
                        zf,
                        info,
                        destination,
                        max_member=max_member,
                        max_ratio=max_ratio,
                        budget=max_total - total,
                    )
                    written.add(relative)
                    result.files.append(destination)
                except (ValueError, zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
                    result.errors.append((info.filename, str(exc)))
    except zipfile.BadZipFile as exc:
        raise ArchiveRejected(f"not a valid ZIP archive: {exc}") from exc
    return result


def _check_member_header(info: zipfile.ZipInfo, max_member: int) -> None:
    """Cheap early refusals from the header; the real limits are enforced while reading."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ValueError("symbolic link member (zip slip)")
    if mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
        raise ValueError("member is not a regular file")
    if info.flag_bits & 0x1:
        raise ValueError("encrypted member")
    if info.file_size > max_member:
        raise ValueError(f"member is larger than the per-file cap ({max_member:,} bytes)")


def _extract_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    destination: Path,
    *,
    max_member: int,
    max_ratio: int,
    budget: int,
) -> int:
    """Stream one member to `destination`, counting real bytes; returns the bytes written."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    compressed = max(info.compress_size, 1)
    written = 0
    try:
        with zf.open(info) as source, destination.open("xb") as out:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                if written > max_member:
                    raise ValueError(f"member is larger than the per-file cap ({max_member:,} bytes)")
                if written > budget:
                    raise ValueError("the archive's total uncompressed size cap is exceeded")
                if written > RATIO_GRACE_BYTES and written / compressed > max_ratio:
                    raise ValueError(f"compression ratio above {max_ratio} (zip bomb)")
                out.write(chunk)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return written
