"""platform/backup/backup.sh and restore.sh on a scratch PostgreSQL database and media folder.

A database is created and migrated (`manage.py migrate`) under a unique name and filled with a few
rows and media files by the factories in a separate interpreter, once per module; each test works on
a copy (CREATE DATABASE ... TEMPLATE). Backed up, dropped and restored into a new database, every
table's rows, every sequence and every media file (by sha256) come back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

BACKUP = REPO_ROOT / "platform" / "backup" / "backup.sh"
RESTORE = REPO_ROOT / "platform" / "backup" / "restore.sh"

# Run by the scratch installation's own interpreter: rows in several apps and their media files.
FILL = """
from pathlib import Path

from records import media
from tests.factories import AnnotationFactory, FrameFactory, LabelTaskFactory, MembershipFactory

task = LabelTaskFactory.create(name="Quality ⚕ «naughty» ' ; --")
MembershipFactory.create(project=task.project, user__username="reader-ø")
for n in range(3):
    AnnotationFactory.create(task=task, frame=FrameFactory.create(examination__patient__project=task.project))
media.save_bytes("exports/an export with spaces.zip", b"PK not really a zip")
(Path(media.storage().path("frames")) / ".tmp-unfinished.png").write_bytes(b"half a file")
"""


def _server_url(database: str) -> str:
    conf = settings.DATABASES["default"]
    if conf["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("backup and restore need PostgreSQL (DATABASE_URL from ./dev test)")
    user = quote(conf.get("USER") or "", safe="")
    password = quote(conf.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = conf.get("HOST") or "127.0.0.1"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(database, safe='')}"


def _drop(names: list[str]) -> None:
    with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(names: list[str], *, template: str | None = None) -> str:
    name = f"clear_backup_test_{uuid.uuid4().hex[:10]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)
    names.append(name)
    return _server_url(name)


def _drop_database(url: str) -> None:
    _drop([url.rsplit("/", 1)[1]])


@dataclass(frozen=True)
class Installation:
    """A migrated and filled database (a template to copy) and its media folder."""

    database: str
    media: Path


@pytest.fixture(scope="module")
def filled_installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """Migrated once per module (a migrate takes tens of seconds); each test works on copies."""
    names: list[str] = []
    try:
        url = _create_database(names)
        media = tmp_path_factory.mktemp("installation") / "media"
        env = _env(url, media)
        _run([sys.executable, "manage.py", "migrate", "--no-input"], env)
        _run([sys.executable, "manage.py", "shell", "-c", FILL], env)
        yield Installation(database=names[0], media=media)
    finally:
        _drop(names)


@pytest.fixture
def installation(filled_installation: Installation, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh copy of the filled installation: its database URL and media folder."""
    names: list[str] = []
    url = _create_database(names, template=filled_installation.database)
    media = tmp_path / "media"
    shutil.copytree(filled_installation.media, media)
    try:
        yield url, media
    finally:
        _drop(names)


@pytest.fixture
def scratch_databases() -> Iterator[list[str]]:
    """Empty databases a test creates (`_create_database(names)`), dropped at the end."""
    names: list[str] = []
    yield names
    _drop(names)


def _env(database_url: str, media: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLEAR_", "DJANGO_"))}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "CLEAR_MEDIA_ROOT": str(media),
        "HF_HUB_OFFLINE": "1",
    }


def _run(
    args: list[str | Path], env: dict[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _contents(url: str) -> dict[str, Any]:
    """Every table's rows (sorted) and every sequence's position: what a restore must bring back."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        contents: dict[str, Any] = {
            table: sorted(
                (
                    repr(row)
                    for row in conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
                ),
            )
            for table in tables
        }
        contents["sequences"] = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return contents


def _media_files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _only_backup(folder: Path) -> Path:
    backups = list(folder.iterdir())
    assert len(backups) == 1 and backups[0].name.startswith("clear-backup-"), backups
    return backups[0]


def test_backup_then_restore_into_a_new_database_brings_back_rows_and_media(
    installation: tuple[str, Path], scratch_databases: list[str], tmp_path: Path
) -> None:
    source_url, source_media = installation
    env = _env(source_url, source_media)
    before = _contents(source_url)
    media_before = _media_files(source_media)
    assert len(before["records_frame"]) == 3 and len(before["annotations_annotation"]) == 3
    assert "frames/.tmp-unfinished.png" in media_before
    del media_before["frames/.tmp-unfinished.png"]  # an unfinished write is not part of a backup
    assert len(media_before) == 3 * 2 + 1  # each frame's PNG and preview, and the export

    backups = tmp_path / "backups"
    _run([BACKUP, backups], {**env, "DATABASE_URL": f"{source_url}?conn_max_age=60"})
    backup = _only_backup(backups)
    assert sorted(p.name for p in backup.iterdir()) == [
        "SHA256SUMS",
        "database.dump",
        "info.txt",
        "media.sha256",
        "media.tar",
    ]
    assert "media files: 7" in (backup / "info.txt").read_text()

    _drop_database(source_url)
    shutil.rmtree(source_media)
    target_url = _create_database(scratch_databases)
    target_media = tmp_path / "restored-media"
    result = _run([RESTORE, backup], _env(target_url, target_media))

    assert "7 media files" in result.stdout
    assert _contents(target_url) == before
    assert _media_files(target_media) == media_before


def test_restore_refuses_a_database_or_media_folder_in_use_unless_forced(
    installation: tuple[str, Path], scratch_databases: list[str], tmp_path: Path
) -> None:
    url, media = installation
    env = _env(url, media)
    _run([BACKUP, tmp_path / "backups"], env)
    backup = _only_backup(tmp_path / "backups")
    before = _contents(url)

    refused = _run([RESTORE, backup], env, check=False)
    assert refused.returncode != 0
    assert "the database already has" in refused.stderr and "--force" in refused.stderr

    empty_url = _create_database(scratch_databases)
    refused = _run([RESTORE, backup], _env(empty_url, media), check=False)
    assert refused.returncode != 0
    assert "the media folder is not empty" in refused.stderr
    assert _contents(empty_url) == {"sequences": []}  # nothing was restored

    # Forced: the installation is rolled back to the backup (rows added since are gone).
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM annotations_annotation")
        conn.execute("INSERT INTO auth_group (name) VALUES ('added after the backup')")
    (media / "frames" / "added-after.png").write_bytes(b"new")
    _run([RESTORE, "--force", backup], env)
    assert _contents(url) == before
    assert (media / "frames" / "added-after.png").read_bytes() == b"new"  # other files are left alone


def test_a_damaged_backup_is_refused_before_anything_is_touched(
    installation: tuple[str, Path], scratch_databases: list[str], tmp_path: Path
) -> None:
    url, media = installation
    env = _env(url, media)
    _run([BACKUP, tmp_path / "backups"], env)
    backup = _only_backup(tmp_path / "backups")
    archive = bytearray((backup / "media.tar").read_bytes())
    archive[600] ^= 0xFF  # inside the first member's data
    (backup / "media.tar").write_bytes(bytes(archive))

    target = _create_database(scratch_databases)
    refused = _run([RESTORE, backup], _env(target, tmp_path / "restored"), check=False)

    assert refused.returncode != 0
    assert "damaged" in refused.stderr
    assert _contents(target) == {"sequences": []}
    assert not (tmp_path / "restored").exists()


def test_backup_refuses_a_sqlite_database(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    result = _run([BACKUP, tmp_path / "backups"], _env(f"sqlite:///{tmp_path}/x.sqlite3", media), check=False)

    assert result.returncode != 0
    assert "must be a PostgreSQL URL" in result.stderr
    assert not (tmp_path / "backups").exists()
