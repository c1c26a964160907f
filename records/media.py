"""Media files (frames, previews, source videos, CAMs, model files, export archives) through
Django's storage API: the one module every caller goes through.

The files live in the storage named "media" (settings.STORAGES): by default the local
`records.storage.MediaFileSystemStorage` below MEDIA_ROOT, with CLEAR_STORAGE_BACKEND=s3 an
S3-compatible bucket. Callers pass names relative to the storage (`frames/ab/<sha256>.png`, stored
in the rows' CharFields as they always were) and never build paths themselves; the few consumers
that need a real file (PyAV, safetensors, zipfile) ask `local_path` or `cached_local_path`, which
give the file itself on the local backend and a downloaded copy on a remote one.

Most files are content-addressed: written once under their sha256, so writing a name that exists is
skipped, and two writers of the same content write the same bytes. The local backend writes to a
temporary name and renames into place (records/storage.py); an object store's put is atomic. So a
crash never leaves a half-written file under a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

from records.storage import TEMPORARY_PREFIX, MediaFileSystemStorage

STORAGE_ALIAS = "media"
COPY_CHUNK_BYTES = 1024 * 1024


def storage() -> Storage:
    return storages[STORAGE_ALIAS]


def content_path(kind: str, sha256: str, suffix: str) -> str:
    """Name of a content-addressed file of `kind` (frames, previews, videos, cams, models).

    One level of 256 folders: creating a folder costs far more than a file (it was 2.3 ms of the
    15 ms per imported frame with two levels, when nearly every frame made new folders), and 256
    folders keep a million frames at about 4,000 files per folder, which file systems handle well.
    """
    return f"{kind}/{sha256[:2]}/{sha256}{suffix}"


def checked(name: str) -> str:
    """`name` when it is a plain relative name inside the storage; ValueError otherwise (a row
    must never make the storage read or write outside its own folder or bucket prefix)."""
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise ValueError(f"{name!r} is not a media name")
    return name


def is_local() -> bool:
    """True when the storage keeps its files on this machine's file system (real paths exist).
    Asked by class, not by trying `path()`: some storages (InMemoryStorage) answer a path where
    no file is."""
    return isinstance(storage(), FileSystemStorage)


def exists(name: str) -> bool:
    return storage().exists(checked(name))


def size(name: str) -> int:
    return int(storage().size(checked(name)))


def open_file(name: str) -> File:
    """The stored file, opened for binary reading (FileNotFoundError when it is missing)."""
    return storage().open(checked(name), "rb")


def read_bytes(name: str) -> bytes:
    with open_file(name) as handle:
        data = handle.read()
    return data if isinstance(data, bytes) else data.encode()


def sha256(name: str) -> str:
    """The sha256 of the stored bytes, read in chunks."""
    digest = hashlib.sha256()
    with open_file(name) as handle:
        while chunk := handle.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _save(name: str, content: File) -> bool:
    """Store `content` under `name` unless a file is there already; True when this call stored it.

    Two writers may both find the name free: on the local backend and on object stores the second
    simply writes the same bytes again. A backend that answers with another name (it refuses to
    replace) lost the race: its copy is removed and the call reports that it did not create it.
    """
    target = storage()
    if target.exists(name):
        return False
    saved = target.save(name, content)
    if saved != name:
        target.delete(saved)
        return False
    return True


def save_bytes(name: str, data: bytes) -> bool:
    """Store `data` under `name` unless it is already there; True when this call created it."""
    target = storage()
    if isinstance(target, MediaFileSystemStorage):
        return target.save_bytes_once(checked(name), data)
    return _save(checked(name), ContentFile(data))


class _ScratchFile(File):
    """A local file handed to the storage; the local backend renames it into place instead of
    copying (`temporary_file_path` is how Django's storages recognise a file they may move)."""

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file, path.name)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def save_file(name: str, source: Path, *, move: bool = False) -> bool:
    """Store the local file `source` under `name` (in chunks: model files and archives are large)
    unless the name is taken; True when this call created it. With `move`, `source` is consumed:
    renamed into place where the storage can (local backend, same file system), else uploaded and
    removed."""
    checked(name)
    try:
        with source.open("rb") as handle:
            content: File = _ScratchFile(handle, source) if move else File(handle, source.name)
            return _save(name, content)
    finally:
        if move:
            source.unlink(missing_ok=True)


def delete(name: str) -> None:
    storage().delete(checked(name))


def list_folder(folder: str) -> list[str]:
    """Names of the files directly in `folder` (empty when the folder does not exist)."""
    try:
        _folders, files = storage().listdir(checked(folder))
    except FileNotFoundError:
        return []
    return [f"{folder}/{file}" for file in files]


def cache_dir() -> Path:
    folder = Path(settings.CLEAR_MEDIA_CACHE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scratch_dir(folder: str) -> Path:
    """A local folder for writing files that will be stored under `folder` (export archives): in
    the storage's own folder on the local backend, so that storing is a rename; in the cache
    folder for a remote one."""
    local = is_local()
    path = Path(storage().path(checked(folder))) if local else cache_dir() / "scratch" / checked(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _download(name: str, folder: Path) -> Path:
    """A copy of the stored file in `folder` under a temporary name (the caller renames or removes
    it)."""
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX, suffix=PurePosixPath(name).suffix)
    try:
        with os.fdopen(fd, "wb") as out, open_file(name) as source:
            shutil.copyfileobj(source, out, COPY_CHUNK_BYTES)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


@contextlib.contextmanager
def local_path(name: str) -> Iterator[Path]:
    """A real file with the stored file's bytes, for readers that need a path (PyAV, zipfile):
    the file itself on the local backend, else a temporary download removed afterwards."""
    checked(name)
    if not is_local():
        copy = _download(name, cache_dir())
        try:
            yield copy
        finally:
            copy.unlink(missing_ok=True)
        return
    path = Path(storage().path(name))
    if not path.is_file():
        raise FileNotFoundError(name)
    yield path


def cached_local_path(name: str) -> Path:
    """A real file with the stored file's bytes that stays: for content-addressed files read again
    and again (model weights), so that each worker downloads one from a remote storage once. The
    local backend answers the file itself; a remote one a copy in CLEAR_MEDIA_CACHE_DIR/content
    named like the stored file (its sha256), downloaded under a temporary name and renamed, so a
    half-downloaded copy is never taken for a whole one."""
    checked(name)
    if is_local():
        path = Path(storage().path(name))
        if not path.is_file():
            raise FileNotFoundError(name)
        return path
    folder = cache_dir() / "content"
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / name.replace("/", "_")
    if not cached.is_file():
        os.replace(_download(name, folder), cached)
    return cached
