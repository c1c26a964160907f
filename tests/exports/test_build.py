"""Building export archives (exports/snapshot.py, writers.py, build.py): every format's layout, the
manifest and snapshot hash, reproducibility, formula guarding and the leak check."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import pytest

from annotations.datasets import LabelSource
from annotations.splits import ExternalSplit, KFoldSplit, LeaveOnePatientOut, NoSplit, RatioSplit
from exports.archive import ManifestEntry, snapshot_hash
from exports.models import ExportSnapshot
from exports.params import ExportFilters
from records.models import Examination, Patient
from tests.exports.support import (
    HEALTHY,
    NEOPLASTIC,
    adjudicate,
    archive_path,
    build_dataset,
    build_export,
    export_params,
    metadata_rows,
    read_members,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def data():
    return build_dataset(patients=8, frames_per_patient=3)


def _manifest(members: dict[str, bytes]) -> dict:
    return json.loads(members["manifest.json"])


def test_csv_export_lists_every_frame_with_its_majority_label_and_a_manifest_of_every_file(data):
    snapshot = build_export(export_params(data))

    assert snapshot.status == ExportSnapshot.Status.READY, snapshot.error
    members = read_members(snapshot)
    rows = metadata_rows(members)
    assert len(rows) == 24
    assert {row["label"] for row in rows if row["patient"] == "P-001"} == {NEOPLASTIC}
    assert {row["label"] for row in rows if row["patient"] == "P-000"} == {HEALTHY}
    assert all(row["label_source"] == "majority" and row["n_annotators"] == "3" for row in rows)
    first = rows[0]
    assert first["file_name"] == f"images/{first['sha256']}.png"
    assert members[first["file_name"]] == archive_path_bytes(data, first["sha256"])

    manifest = _manifest(members)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    # Every member but the manifest files themselves is listed, with its real sha256 and size.
    assert set(listed) == set(members) - {"manifest.json", "MANIFEST.sha256"}
    for path, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(members[path]).hexdigest()
        assert entry["size"] == len(members[path])
    entries = [ManifestEntry(entry["path"], entry["sha256"], entry["size"]) for entry in manifest["files"]]
    assert (
        manifest["snapshot_hash"] == snapshot.snapshot_hash == snapshot_hash(manifest["parameters"], entries)
    )
    assert members["MANIFEST.sha256"].decode().splitlines()[0] == f"{entries[0].sha256}  {entries[0].path}"
    assert manifest["classes"] == [HEALTHY, NEOPLASTIC]
    assert snapshot.counts["frames"] == 24 and snapshot.counts["patients"] == 8
    assert snapshot.counts["splits"] == {
        "test": {"rows": 6, "frames": 6, "patients": 2},
        "train": {"rows": 12, "frames": 12, "patients": 4},
        "val": {"rows": 6, "frames": 6, "patients": 2},
    }
    assert archive_path(snapshot).stat().st_size == snapshot.file_bytes


def archive_path_bytes(data, sha256: str) -> bytes:
    from records import media

    frame = next(frame for frame in data.frames if frame.sha256 == sha256)
    return media.read_bytes(frame.file)


@pytest.mark.parametrize("fmt", ["csv", "imagefolder", "json", "hf", "webdataset", "parquet"])
def test_the_same_inputs_give_the_same_hash_and_the_same_bytes(data, fmt):
    params = export_params(data, format=fmt, split=KFoldSplit(k=2, seed=5), shard_size=5)

    one = build_export(params)
    two = build_export(params)

    assert one.pk != two.pk
    assert one.snapshot_hash == two.snapshot_hash and len(one.snapshot_hash) == 64
    assert archive_path(one).read_bytes() == archive_path(two).read_bytes()
    # Another seed is another split, so another snapshot.
    three = build_export(export_params(data, format=fmt, split=KFoldSplit(k=2, seed=6), shard_size=5))
    assert three.snapshot_hash != one.snapshot_hash


def test_archive_members_have_fixed_times_and_permissions_in_sorted_order(data):
    snapshot = build_export(export_params(data, format="imagefolder"))

    with zipfile.ZipFile(archive_path(snapshot)) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    names = [info.filename for info in infos]
    assert names[-2:] == ["manifest.json", "MANIFEST.sha256"]
    assert names[:-2] == sorted(names[:-2])


def test_imagefolder_export_puts_each_frame_under_its_split_and_class(data):
    snapshot = build_export(export_params(data, format="imagefolder", label_source=LabelSource.REFERENCE))

    members = read_members(snapshot)
    images = [name for name in members if name.endswith(".png")]
    assert len(images) == 24
    rows = {row["file_name"]: row for row in metadata_rows(members)}
    for name in images:
        side, folder, file = name.split("/")
        row = rows[name]
        assert (side, folder) == (row["split"], row["label"])
        assert file == f"{row['patient']}_{row['examination']}_{row['frame_id']}.png"


def test_hf_export_has_metadata_csv_with_file_name_label_and_split(data):
    snapshot = build_export(export_params(data, format="hf"))

    members = read_members(snapshot)
    rows = metadata_rows(members)
    assert list(rows[0])[:3] == ["file_name", "split", "label"]
    for row in rows:
        assert (
            row["file_name"] == f"{row['split']}/{row['patient']}_{row['examination']}_{row['frame_id']}.png"
        )
        assert row["file_name"] in members


def test_webdataset_shards_hold_image_class_and_metadata_per_sample(data):
    snapshot = build_export(export_params(data, format="webdataset", shard_size=4, split=NoSplit()))

    members = read_members(snapshot)
    shards = sorted(name for name in members if name.startswith("shards/"))
    assert shards == [f"shards/all-{index:06d}.tar" for index in range(6)]
    classes = _manifest(members)["classes"]
    samples = 0
    for shard in shards:
        with tarfile.open(fileobj=io.BytesIO(members[shard])) as tar:
            names = tar.getnames()
            keys = sorted({name.rsplit(".", 1)[0] for name in names})
            assert len(keys) <= 4
            for key in keys:
                assert {f"{key}.png", f"{key}.cls", f"{key}.json"} <= set(names)
                meta = json.loads(tar.extractfile(f"{key}.json").read())  # type: ignore[union-attr]
                cls = int(tar.extractfile(f"{key}.cls").read())  # type: ignore[union-attr]
                assert classes[cls] == meta["label"]
                assert hashlib.sha256(tar.extractfile(f"{key}.png").read()).hexdigest() == meta["sha256"]  # type: ignore[union-attr]
                samples += 1
    assert samples == 24


def test_parquet_export_has_typed_columns(data):
    import pyarrow.parquet as pq

    snapshot = build_export(export_params(data, format="parquet", label_source=LabelSource.EVERY_ANNOTATOR))

    members = read_members(snapshot)
    table = pq.read_table(io.BytesIO(members["metadata.parquet"]))
    assert table.num_rows == 72  # three annotators per frame
    assert str(table.schema.field("frame_id").type) == "int64"
    assert str(table.schema.field("examination_date").type) == "date32[day]"
    annotators = set(table.column("annotator").to_pylist())
    assert len(annotators) == 3 and all(name.startswith("A-") for name in annotators)
    assert table.column("confidence").to_pylist()[:3] == [4, 4, 4]
    # Images are stored once each, however many rows share them.
    assert len([name for name in members if name.startswith("images/")]) == 24


def test_json_export_has_every_annotation_and_adjudication_with_pseudonyms_only(data):
    adjudicate(data, data.frames[0], NEOPLASTIC, rationale="=overruled")

    snapshot = build_export(export_params(data, format="json", label_source=LabelSource.ADJUDICATED))

    members = read_members(snapshot)
    dataset = json.loads(members["dataset.json"])
    assert dataset["label_source"] == "adjudicated" and dataset["task"] == data.task.key
    frames = {entry["frame_id"]: entry for entry in dataset["frames"]}
    assert len(frames) == 24
    first = frames[data.frames[0].pk]
    assert first["label"] == NEOPLASTIC
    assert first["adjudication"]["rationale"] == "=overruled"
    assert first["adjudication"]["adjudicated_by"].startswith("A-")
    assert len(first["annotations"]) == 3
    assert {annotation["time_on_frame_ms"] for annotation in first["annotations"]} == {900}
    assert all(annotation["created_at"] for annotation in first["annotations"])
    text = members["dataset.json"].decode()
    for user in [*data.annotators, data.reviewer]:
        assert f'"{user.username}"' not in text
    assert frames[data.frames[1].pk]["label"] is None  # no adjudication: no label under this source


def test_csv_and_metadata_cells_are_guarded_against_formula_injection(data):
    Patient.objects.filter(pk=data.patients[0].pk).update(pseudonym='=HYPERLINK("http://evil")', cohort="+1")
    Examination.objects.filter(pk=data.examinations[0].pk).update(code="@SUM(A1)", device="-2")

    for fmt in ("csv", "hf", "imagefolder"):
        snapshot = build_export(export_params(data, format=fmt))
        text = read_members(snapshot)["metadata.csv"].decode()
        rows = metadata_rows(read_members(snapshot))
        evil = [row for row in rows if "HYPERLINK" in row["patient"]]
        assert evil and all(row["patient"] == '\'=HYPERLINK("http://evil")' for row in evil)
        assert all(row["cohort"] == "'+1" and row["examination"] == "'@SUM(A1)" for row in evil)
        assert all(row["device"] == "'-2" for row in evil)
        for line in text.splitlines():
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in line.split(","))


@pytest.mark.parametrize(
    "split",
    [
        RatioSplit(train=0.5, val=0.25, test=0.25, seed=3),
        KFoldSplit(k=4, seed=1),
        LeaveOnePatientOut(),
        ExternalSplit(field="site", values=("larynx",), val=0.34, seed=0),
        ExternalSplit(field="cohort", values=("C0",)),
    ],
)
def test_no_patient_is_on_two_sides_of_an_exported_split(data, split):
    snapshot = build_export(export_params(data, split=split, label_source=LabelSource.EVERY_ANNOTATOR))

    rows = metadata_rows(read_members(snapshot))
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row["patient"], set()).add(row["split"])
    assert len(sides) == 8
    assert all(len(found) == 1 for found in sides.values())
    if isinstance(split, LeaveOnePatientOut):
        assert len({row["split"] for row in rows}) == 8


def test_filters_select_sites_devices_dates_quality_and_label_state(data):
    def frames(**filters):
        snapshot = build_export(export_params(data, split=NoSplit(), filters=ExportFilters(**filters)))
        assert snapshot.status == ExportSnapshot.Status.READY, snapshot.error
        return {int(row["frame_id"]) for row in metadata_rows(read_members(snapshot))}

    by_patient = {
        number: {frame.pk for frame in data.frames[number * 3 : number * 3 + 3]} for number in range(8)
    }
    assert frames(sites=("tongue",)) == set().union(*(by_patient[n] for n in (0, 2, 4, 6)))
    assert frames(devices=("eCLE",)) == set().union(*(by_patient[n] for n in (1, 3, 5, 7)))
    import datetime

    assert (
        frames(date_from=datetime.date(2024, 1, 31), date_to=datetime.date(2024, 3, 1))
        == by_patient[1] | by_patient[2]
    )
    # Every patient's last frame is of bad quality.
    good = frames(quality_task="quality", quality_values=("good",))
    assert good == {frame.pk for index, frame in enumerate(data.frames) if index % 3 != 2}
    adjudicate(data, data.frames[4], HEALTHY)
    assert frames(label_state="adjudicated") == {data.frames[4].pk}
    assert len(frames(label_state="labelled")) == 24


def test_class_layouts_leave_unlabelled_frames_out_and_count_them(data):
    adjudicate(data, data.frames[0], HEALTHY)
    adjudicate(data, data.frames[3], NEOPLASTIC)

    snapshot = build_export(
        export_params(data, format="imagefolder", label_source=LabelSource.ADJUDICATED, split=NoSplit())
    )

    images = sorted(name for name in read_members(snapshot) if name.endswith(".png"))
    assert [name.split("/")[1] for name in images] == [HEALTHY, NEOPLASTIC]
    assert snapshot.counts["unlabelled_left_out"] == 22


def test_an_export_with_no_frame_fails_with_a_reason(data):
    snapshot = build_export_failing(export_params(data, filters=ExportFilters(sites=("nowhere",))))

    assert snapshot.status == ExportSnapshot.Status.FAILED
    assert "no frame matches" in snapshot.error
    assert snapshot.file == ""


def build_export_failing(params):
    from exports.build import scratch_folder

    with pytest.raises(ValueError):
        build_export(params)
    snapshot = ExportSnapshot.objects.latest("id")
    assert list(scratch_folder().iterdir()) == []
    return snapshot
