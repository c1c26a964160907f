"""Media goes through Django's storage API (records/media.py), whatever the backend.

The key media paths (import of real frames and the real pCLE video, preview and image endpoints,
model registration, on-demand prediction with its CAM, export build and download, the readiness
probe) run here against an in-memory storage: a backend with no files at all, so any code path that
built a path below MEDIA_ROOT instead of asking the storage would fail to find its file, and the
tests also check that nothing was written below MEDIA_ROOT. The local backend's own guarantees
(atomic, content-addressed writes) and the S3 settings are tested at the end.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage
from django.test import override_settings

from inference.models import ModelVersion, Prediction
from inference.ondemand import model_cache
from inference.services import model_version_activate
from records import media
from records.models import Frame, Video
from records.storage import MediaFileSystemStorage
from tests.conftest import REPO_ROOT
from tests.exports.support import build_dataset, build_export, export_params
from tests.factories import LabelChoiceFactory, LabelTaskFactory, ProjectFactory
from tests.inference_app.model_support import write_tiny_model_file
from tests.records.api_support import Role, client_for, member_of
from tests.records.import_support import PCLE_VIDEO, run_import

PCLE_FRAMES = "amphybio_endomicroscopy-analysis/data-sample/comparative-sample/main/S01/1/S01V01_frames"


class SharedInMemoryStorage(InMemoryStorage):
    """InMemoryStorage made to behave as a remote store does: safe to call from several threads
    (the import and the export read and write from thread pools; the plain class can lose a folder
    created by two threads at once), and each `open` an independent handle (the plain class hands
    every reader the same stream, so two readers would move each other's position)."""

    _lock = threading.RLock()

    def _open(self, name: str, mode: str = "rb") -> Any:
        with self._lock:
            node = super()._open(name, mode)  # type: ignore[misc]
            return ContentFile(node.read(), name=name)

    def _save(self, name: str, content: Any) -> str:
        with self._lock:
            return str(super()._save(name, content))  # type: ignore[misc]

    def exists(self, name: str) -> bool:
        with self._lock:
            return bool(super().exists(name))

    def delete(self, name: str) -> None:
        with self._lock:
            super().delete(name)

    def size(self, name: str) -> int:
        with self._lock:
            return int(super().size(name))

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        with self._lock:
            return super().listdir(path)


def _files_below(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.fixture
def memory_storage(media_root: Path, tmp_path: Path) -> Iterator[InMemoryStorage]:
    """The "media" storage in memory for one test; afterwards nothing may be below MEDIA_ROOT."""
    backends = {**settings.STORAGES, "media": {"BACKEND": f"{__name__}.SharedInMemoryStorage"}}
    with override_settings(STORAGES=backends, CLEAR_MEDIA_CACHE_DIR=tmp_path / "media-cache"):
        storage = media.storage()
        assert isinstance(storage, SharedInMemoryStorage) and not media.is_local()
        yield storage
    assert list(media_root.iterdir()) == [], "a code path wrote below MEDIA_ROOT instead of the storage"


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


# --- the key media paths on a non-filesystem storage ----------------------------------------------


@pytest.mark.django_db
def test_real_frames_and_the_pcle_video_import_into_the_storage_and_are_served_from_it(
    memory_storage: InMemoryStorage, realdata: Path
) -> None:
    project = ProjectFactory.create()
    frames_folder = Path(settings.CLEAR_UPLOAD_ROOT) / "S02" / "1"
    frames_folder.mkdir(parents=True)
    for source in sorted((realdata / PCLE_FRAMES).glob("*.png"))[:3]:
        (frames_folder / source.name).write_bytes(source.read_bytes())

    report = run_import(project, [realdata / PCLE_VIDEO, frames_folder.parent])

    assert report.errors == [] and report.frames_created == 260 + 3
    video = Video.objects.get(examination__patient__project=project, kind=Video.Kind.VIDEO_FILE)
    assert media.read_bytes(video.source_file) == (realdata / PCLE_VIDEO).read_bytes()
    frames = Frame.objects.filter(examination__patient__project=project)
    names = list(frames.values_list("file", flat=True))
    assert len(names) == 263 and all(memory_storage.exists(name) for name in names)

    frame = frames.order_by("id").first()
    assert frame is not None
    client = client_for(member_of(project, Role.READER))
    image = client.get(f"/api/frames/{frame.pk}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert _body(image) == media.read_bytes(frame.file)
    assert image["ETag"] == f'"{frame.sha256}"' and "immutable" in image["Cache-Control"]
    assert client.get(f"/api/frames/{frame.pk}/image/", HTTP_IF_NONE_MATCH=image["ETag"]).status_code == 304

    # The preview job has not run: the endpoint renders it from the stored frame, into the storage.
    assert not memory_storage.exists(frame.preview_file)
    preview = client.get(f"/api/frames/{frame.pk}/preview/")
    assert preview.status_code == 200 and preview["Content-Type"] == "image/jpeg"
    assert _body(preview) == media.read_bytes(frame.preview_file)
    assert preview["ETag"] == f'"{frame.sha256}-preview"'
    from PIL import Image

    with Image.open(io.BytesIO(media.read_bytes(frame.preview_file))) as rendered:
        assert rendered.format == "JPEG" and max(rendered.size) <= settings.CLEAR_PREVIEW_MAX_SIDE

    memory_storage.delete(frame.file)
    assert client.get(f"/api/frames/{frame.pk}/image/").status_code == 404


@pytest.mark.django_db
def test_model_registration_prediction_and_cam_go_through_the_storage(
    memory_storage: InMemoryStorage, realdata: Path, tmp_path: Path
) -> None:
    project = ProjectFactory.create()
    task = LabelTaskFactory.create(project=project, key="quality", name="Quality")
    LabelChoiceFactory.create(task=task, value="good", label="Good", order=0)
    LabelChoiceFactory.create(task=task, value="bad", label="Bad", order=1)
    run_import(project, [realdata / PCLE_FRAMES / "S01V01_frame000.png"])
    frame = Frame.objects.get(examination__patient__project=project)
    coordinator = client_for(member_of(project, Role.COORDINATOR))
    model_file = write_tiny_model_file(tmp_path / "upload.safetensors")

    with model_file.open("rb") as handle:
        registered = coordinator.post(
            "/api/model-versions/",
            {"project": project.pk, "task": task.pk, "name": "v1", "file": handle},
            format="multipart",
        )

    assert registered.status_code == 201, registered.content
    version = ModelVersion.objects.get(pk=registered.json()["id"])
    assert media.read_bytes(version.file) == model_file.read_bytes()
    model_version_activate(model_version=version)
    model_cache.clear()
    try:
        predicted = coordinator.post(f"/api/frames/{frame.pk}/predict/", {"task": "quality"}, format="json")
    finally:
        model_cache.clear()

    assert predicted.status_code == 201, predicted.content
    # The model was read from a local copy of the stored file, kept for the next load.
    cached = list((Path(settings.CLEAR_MEDIA_CACHE_DIR) / "content").iterdir())
    assert [path.read_bytes() for path in cached] == [model_file.read_bytes()]
    prediction = Prediction.objects.get()
    assert memory_storage.exists(prediction.cam_file)
    cam = coordinator.get(f"/api/predictions/{prediction.pk}/cam/")
    assert cam.status_code == 200 and cam["Content-Type"] == "image/png"
    assert _body(cam) == media.read_bytes(prediction.cam_file)
    assert cam["Cache-Control"] == "private, max-age=31536000, immutable"
    assert (
        coordinator.get(f"/api/predictions/{prediction.pk}/cam/", HTTP_IF_NONE_MATCH=cam["ETag"]).status_code
        == 304
    )


@pytest.mark.django_db
def test_exports_read_frames_from_the_storage_and_store_the_archive_there(
    memory_storage: InMemoryStorage,
) -> None:
    data = build_dataset(patients=4, frames_per_patient=2)
    client = client_for(member_of(data.project, Role.COORDINATOR))

    snapshot = build_export(export_params(data, format="json", remove_near_duplicates=True))

    assert snapshot.status == "ready" and memory_storage.exists(snapshot.file)
    assert snapshot.file_bytes == memory_storage.size(snapshot.file)
    download = client.get(f"/api/exports/{snapshot.pk}/download/")
    assert download.status_code == 200 and download["ETag"] == f'"{snapshot.snapshot_hash}"'
    assert download["Content-Disposition"] == f'attachment; filename="{snapshot.download_name}"'
    content = _body(download)
    assert content == media.read_bytes(snapshot.file)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        images = {name: archive.read(name) for name in archive.namelist() if name.startswith("images/")}
    stored = {f"images/{frame.sha256}.png": media.read_bytes(frame.file) for frame in data.frames}
    assert images == stored
    # The archive was written to a local scratch file and stored; the scratch file is gone.
    scratch = Path(settings.CLEAR_MEDIA_CACHE_DIR) / "scratch"
    assert _files_below(scratch) == []

    shards = build_export(export_params(data, format="webdataset", shard_size=3))
    with tarfile.open(fileobj=io.BytesIO(media.read_bytes(shards.file))) as outer:
        first = outer.extractfile(outer.getmembers()[0])
        assert first is not None
        with tarfile.open(fileobj=io.BytesIO(first.read())) as shard:
            pngs = [shard.extractfile(m).read() for m in shard.getmembers() if m.name.endswith(".png")]  # type: ignore[union-attr]
    assert pngs and set(pngs) <= set(stored.values())

    # A training run reads the export's table from a temporary local copy, removed afterwards.
    with media.local_path(snapshot.file) as copy:
        assert copy.read_bytes() == content and settings.MEDIA_ROOT not in copy.parents
    assert not copy.exists()


def test_the_readiness_probe_writes_and_removes_an_object_through_the_storage(
    memory_storage: InMemoryStorage,
) -> None:
    from config.health import check_storage

    saved: list[str] = []
    original = SharedInMemoryStorage._save

    def spy(self: SharedInMemoryStorage, name: str, content: Any) -> str:
        saved.append(name)
        return original(self, name, content)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SharedInMemoryStorage, "_save", spy)
        check_storage()

    assert len(saved) == 1 and saved[0].startswith(".tmp-readyz-")
    assert memory_storage.listdir("") == ([], [])


@pytest.mark.django_db
def test_the_readiness_probe_fails_when_the_storage_refuses_writes(memory_storage: InMemoryStorage) -> None:
    from django.test import Client

    def refuse(self: SharedInMemoryStorage, name: str, content: Any) -> str:
        raise PermissionError("bucket is read-only")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SharedInMemoryStorage, "_save", refuse)
        response = Client().get("/readyz")

    assert response.status_code == 503
    storage = response.json()["checks"]["storage"]
    assert storage["ok"] is False and storage["error"] == "PermissionError"


# --- the media module's contract ------------------------------------------------------------------


def test_a_name_outside_the_storage_is_refused(memory_storage: InMemoryStorage) -> None:
    for name in ("../etc/passwd", "/etc/passwd", "frames/../../x.png", "", "frames\\x.png"):
        with pytest.raises(ValueError, match="not a media name"):
            media.read_bytes(name)
        with pytest.raises(ValueError, match="not a media name"):
            media.save_bytes(name, b"x")


def test_content_addressed_writes_happen_once_and_a_lost_race_keeps_one_name(
    memory_storage: InMemoryStorage,
) -> None:
    assert media.save_bytes("frames/ab/abc.png", b"one") is True
    assert media.save_bytes("frames/ab/abc.png", b"one") is False

    # Two writers both found the name free; a backend that will not replace answers the second
    # with another name: that copy is removed and the second writer did not create the file.
    real_exists = SharedInMemoryStorage.exists
    calls: list[str] = []

    def first_look_finds_nothing(self: SharedInMemoryStorage, name: str) -> bool:
        calls.append(name)
        return False if len(calls) == 1 else real_exists(self, name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SharedInMemoryStorage, "exists", first_look_finds_nothing)
        assert media.save_bytes("frames/ab/abc.png", b"one") is False
    assert len(calls) >= 2  # the storage looked again and picked another name, then it was removed
    assert memory_storage.listdir("frames/ab") == ([], ["abc.png"])
    assert media.read_bytes("frames/ab/abc.png") == b"one"


def test_the_local_backend_writes_atomically_and_keeps_the_name(media_root: Path, tmp_path: Path) -> None:
    assert isinstance(media.storage(), MediaFileSystemStorage) and media.is_local()

    class Failing(ContentFile):
        def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
            yield b"half of "
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        media.storage().save("frames/cd/cdef.png", Failing(b""))
    # No truncated file under the real name, and no temporary file left.
    assert _files_below(media_root) == []

    assert media.save_bytes("frames/cd/cdef.png", b"whole") is True
    assert media.save_bytes("frames/cd/cdef.png", b"whole") is False
    assert media.storage().save("frames/cd/cdef.png", ContentFile(b"whole")) == "frames/cd/cdef.png"
    assert [path.relative_to(media_root).as_posix() for path in _files_below(media_root)] == [
        "frames/cd/cdef.png"
    ]

    # A scratch file on the same file system is renamed into place, not copied.
    scratch = media.scratch_dir("exports") / ".tmp-archive.zip"
    scratch.write_bytes(b"PK archive")
    inode = scratch.stat().st_ino
    assert media.save_file("exports/snapshot-1-ab.zip", scratch, move=True) is True
    with media.local_path("exports/snapshot-1-ab.zip") as stored:
        assert stored.stat().st_ino == inode and stored.read_bytes() == b"PK archive"
    assert not scratch.exists()
    assert media.list_folder("exports") == ["exports/snapshot-1-ab.zip"]
    with pytest.raises(FileNotFoundError), media.local_path("exports/missing.zip"):
        pass


def test_content_addressed_bytes_are_written_atomically_on_the_local_backend(
    media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # save_bytes takes the local backend's short path (no Django name handling); it must keep the
    # same promise: a write that fails leaves neither a truncated file under the name nor a scratch file.
    def refused(source: str, target: str) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refused)
        with pytest.raises(OSError, match="disk full"):
            media.save_bytes("frames/ef/efab.png", b"whole")
    assert _files_below(media_root) == []

    assert media.save_bytes("frames/ef/efab.png", b"whole") is True  # its folder made on the way
    assert media.save_bytes("frames/ef/efab.png", b"other") is False  # the name is taken: kept as is
    assert media.read_bytes("frames/ef/efab.png") == b"whole"
    assert [path.relative_to(media_root).as_posix() for path in _files_below(media_root)] == [
        "frames/ef/efab.png"
    ]
    with pytest.raises(ValueError, match="not a media name"):
        media.save_bytes("../outside.png", b"x")


def test_local_writes_get_the_configured_mode_and_never_reuse_a_taken_temporary_name(
    media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The temporary file is created with O_EXCL under a random name and its mode set through the
    # descriptor: a name another writer holds is skipped, never written into.
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr("records.storage.secrets.token_hex", lambda size: next(names))
    folder = media_root / "frames" / "ab"
    folder.mkdir(parents=True)
    (folder / ".tmp-taken.png").write_bytes(b"another writer's half file")

    with override_settings(FILE_UPLOAD_PERMISSIONS=0o640):
        assert media.save_bytes("frames/ab/abcd.png", b"whole") is True

    assert (folder / "abcd.png").read_bytes() == b"whole"
    assert (folder / "abcd.png").stat().st_mode & 0o777 == 0o640
    assert (folder / ".tmp-taken.png").read_bytes() == b"another writer's half file"
    assert sorted(path.name for path in folder.iterdir()) == [".tmp-taken.png", "abcd.png"]


# --- the S3 backend's settings (no network) -------------------------------------------------------

SHOW_STORAGE = (
    "import django; django.setup()\n"
    "from django.core.files.storage import storages\n"
    "s = storages['media']\n"
    "fields = ('bucket_name', 'endpoint_url', 'region_name', 'file_overwrite', 'default_acl')\n"
    "print(type(s).__module__, type(s).__name__, *(getattr(s, f, '-') for f in fields))\n"
)


def _settings_process(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("CLEAR_", "DJANGO_"))}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", SHOW_STORAGE],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_s3_backend_builds_an_s3_storage_for_the_given_bucket_and_endpoint() -> None:
    result = _settings_process(
        CLEAR_STORAGE_BACKEND="s3",
        CLEAR_S3_BUCKET="clear-media",
        CLEAR_S3_ENDPOINT_URL="http://minio.internal:9000",
        CLEAR_S3_REGION="eu-central-1",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "storages.backends.s3",
        "S3Storage",
        "clear-media",
        "http://minio.internal:9000",
        "eu-central-1",
        "True",
        "None",
    ]


def test_the_local_backend_is_the_default() -> None:
    result = _settings_process()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["records.storage", "MediaFileSystemStorage"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLEAR_STORAGE_BACKEND": "s3"}, "CLEAR_S3_BUCKET must be set when CLEAR_STORAGE_BACKEND=s3"),
        ({"CLEAR_STORAGE_BACKEND": "ftp"}, "CLEAR_STORAGE_BACKEND must be 'local' or 's3', not 'ftp'"),
    ],
)
def test_a_bad_storage_setting_is_refused_at_start(env: dict[str, str], message: str) -> None:
    result = _settings_process(**env)
    assert result.returncode != 0 and message in result.stderr
