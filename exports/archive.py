"""Byte-reproducible ZIP and tar archives, written member by member with each member's sha256.

Reproducible: the same members in the same order give the same bytes. Every member gets a fixed
timestamp (1980-01-01, the earliest a ZIP can hold; 0 in a tar), fixed permissions (0644) and owner
(0/0, no names), and no extra fields; callers add members in sorted order. Streaming: a member is
copied from its file in 1 MiB chunks and hashed on the way, so the archive is never held in memory.

The manifest is every member's (path, sha256, size); the snapshot hash is sha256 over the
canonical parameters and the manifest lines sorted by path (`snapshot_hash`).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from exports.params import canonical_json

CHUNK_BYTES = 1024 * 1024
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
DEFLATE_LEVEL = 6


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int

    def line(self) -> str:
        return f"{self.path}\t{self.sha256}\t{self.size}\n"


class SnapshotHasher:
    """The snapshot hash, fed one manifest entry at a time in path order (so no list is kept)."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self._digest = hashlib.sha256()
        self._digest.update(canonical_json(parameters).encode())
        self._digest.update(b"\n")
        self._last = ""

    def add(self, entry: ManifestEntry) -> None:
        if entry.path <= self._last:
            raise ValueError(f"manifest entries must come in path order: {entry.path!r} after {self._last!r}")
        self._last = entry.path
        self._digest.update(entry.line().encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def snapshot_hash(parameters: dict[str, Any], entries: Iterable[ManifestEntry]) -> str:
    """sha256 over the canonical parameters (one JSON line) and the manifest lines
    `path<TAB>sha256<TAB>size`, sorted by path."""
    hasher = SnapshotHasher(parameters)
    for entry in sorted(entries, key=lambda item: item.path):
        hasher.add(entry)
    return hasher.hexdigest()


class ArchiveWriter(Protocol):
    def add_file(self, path: str, source: Path, *, compress: bool = False) -> ManifestEntry: ...

    def add_stream(
        self, path: str, source: IO[bytes], size: int, *, compress: bool = False
    ) -> ManifestEntry: ...

    def add_bytes(
        self, path: str, data: bytes, *, compress: bool = False, sha256: str | None = None
    ) -> ManifestEntry: ...

    def close(self) -> None: ...


class _HashingReader:
    """A file wrapper that hashes what is read through it (tarfile copies from `read`)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.digest.update(chunk)
        return chunk


class DeterministicZip:
    """A ZIP written to an open binary file; members stored (images are compressed already) or
    deflated at a fixed level (tables)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", allowZip64=True)

    def _info(self, path: str, size: int, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
        info.create_system = 3  # unix, so that the permissions below mean the same everywhere
        info.external_attr = (0o100000 | FILE_MODE) << 16
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        if compress:
            info._compresslevel = DEFLATE_LEVEL  # type: ignore[attr-defined]  # (Python 3.11's name)
        info.file_size = size
        return info

    def add_file(self, path: str, source: Path, *, compress: bool = False) -> ManifestEntry:
        with source.open("rb") as src:
            return self.add_stream(path, src, source.stat().st_size, compress=compress)

    def add_stream(self, path: str, source: IO[bytes], size: int, *, compress: bool = False) -> ManifestEntry:
        """Copy `size` bytes from the open `source` (a stored file, a scratch file) in chunks."""
        info = self._info(path, size, compress)
        digest = hashlib.sha256()
        copied = 0
        with self.zip.open(info, "w", force_zip64=size > zipfile.ZIP64_LIMIT) as dst:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                dst.write(chunk)
                copied += len(chunk)
        if copied != size:
            raise OSError(f"{path}: its source changed size while it was being archived")
        return ManifestEntry(path, digest.hexdigest(), size)

    def add_bytes(
        self, path: str, data: bytes, *, compress: bool = False, sha256: str | None = None
    ) -> ManifestEntry:
        """Add `data` (its sha256 may come computed already, e.g. by a reading thread)."""
        info = self._info(path, len(data), compress)
        with self.zip.open(info, "w") as dst:
            dst.write(data)
        return ManifestEntry(path, sha256 or hashlib.sha256(data).hexdigest(), len(data))

    def close(self) -> None:
        self.zip.close()


class DeterministicTar:
    """An uncompressed POSIX (ustar/pax) tar written to an open binary file."""

    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    @staticmethod
    def _info(path: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.size = size
        info.mtime = 0
        info.mode = FILE_MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        return info

    def add_file(self, path: str, source: Path, *, compress: bool = False) -> ManifestEntry:
        with source.open("rb") as src:
            return self.add_stream(path, src, source.stat().st_size, compress=compress)

    def add_stream(self, path: str, source: IO[bytes], size: int, *, compress: bool = False) -> ManifestEntry:
        reader = _HashingReader(source)
        self.tar.addfile(self._info(path, size), reader)
        return ManifestEntry(path, reader.digest.hexdigest(), size)

    def add_bytes(
        self, path: str, data: bytes, *, compress: bool = False, sha256: str | None = None
    ) -> ManifestEntry:
        self.tar.addfile(self._info(path, len(data)), io.BytesIO(data))
        return ManifestEntry(path, sha256 or hashlib.sha256(data).hexdigest(), len(data))

    def close(self) -> None:
        self.tar.close()
