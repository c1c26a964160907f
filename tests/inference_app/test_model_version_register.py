"""model_version_register: a checked file becomes a candidate stored under its sha256; anything
wrong is refused with a clear message and stores nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from annotations.models import LabelTask
from inference.ml.model_files import file_sha256
from inference.models import ModelVersion
from inference.services import ModelVersionRejected, model_version_register
from records.models import Project
from tests.factories import LabelTaskFactory, UserFactory
from tests.inference_app.conftest import MakeModelFile

pytestmark = pytest.mark.django_db


def _stored(media_root: Path) -> list[Path]:
    return sorted(path for path in (media_root / "models").rglob("*") if path.is_file())


def test_a_valid_file_becomes_a_candidate_stored_under_its_sha256(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile, media_root: Path
) -> None:
    path = make_model_file()
    user = UserFactory.create()

    version = model_version_register(
        project=project, task=quality_task, uploaded_path=path, name="v1", created_by=user
    )

    sha256 = file_sha256(path)
    assert version.status == ModelVersion.Status.CANDIDATE
    assert version.sha256 == sha256 and version.file_bytes == path.stat().st_size
    assert version.file == f"models/{sha256[:2]}/{sha256}.safetensors"
    assert (media_root / version.file).read_bytes() == path.read_bytes()
    assert version.architecture == "cnn_lstm"
    assert version.labels == ["good", "bad"]
    assert version.metadata["tasks"] == '{"quality": ["good", "bad"]}'
    assert version.created_by == user and version.activated_at is None


def test_labels_may_be_a_subset_of_the_choices_in_any_order(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    path = make_model_file(tasks={"quality": ["bad", "good"]})

    version = model_version_register(
        project=project, task=quality_task, uploaded_path=path, name="v1", created_by=None
    )

    assert version.labels == ["bad", "good"]


def _pickle_file(tmp_path: Path, make_model_file: MakeModelFile) -> Path:
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return path


def _damaged_file(tmp_path: Path, make_model_file: MakeModelFile) -> Path:
    data = make_model_file().read_bytes()
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage_header(tmp_path: Path, make_model_file: MakeModelFile) -> Path:
    data = bytearray(make_model_file().read_bytes())
    data[8:40] = b"\xff" * 32
    path = tmp_path / "garbled.safetensors"
    path.write_bytes(bytes(data))
    return path


def _other_task(tmp_path: Path, make_model_file: MakeModelFile) -> Path:
    return make_model_file(tasks={"diagnosis": ["good", "bad"]})


def _unknown_labels(tmp_path: Path, make_model_file: MakeModelFile) -> Path:
    return make_model_file(tasks={"quality": ["good", "blurry"]})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_pickle_file, "pickle"),
        (_damaged_file, "The model file was refused"),
        (_garbage_header, "The model file was refused"),
        (_other_task, "predicts task 'diagnosis', not this task ('quality')"),
        (_unknown_labels, "labels ['blurry'] are not choices of task 'quality'"),
    ],
    ids=["pickle", "truncated", "garbled-header", "wrong-task-key", "labels-not-choices"],
)
def test_a_bad_file_is_refused_with_its_reason_and_nothing_is_stored(
    make,
    message: str,
    project: Project,
    quality_task: LabelTask,
    make_model_file: MakeModelFile,
    media_root: Path,
    tmp_path: Path,
) -> None:
    path = make(tmp_path, make_model_file)

    with pytest.raises(ModelVersionRejected) as caught:
        model_version_register(
            project=project, task=quality_task, uploaded_path=path, name="x", created_by=None
        )

    assert message in caught.value.message
    assert not ModelVersion.objects.exists()
    assert _stored(media_root) == []


def test_the_same_file_twice_in_a_project_is_refused_naming_the_existing_version(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile, media_root: Path
) -> None:
    path = make_model_file()
    first = model_version_register(
        project=project, task=quality_task, uploaded_path=path, name="v1", created_by=None
    )

    with pytest.raises(ModelVersionRejected) as caught:
        model_version_register(
            project=project, task=quality_task, uploaded_path=path, name="v2", created_by=None
        )

    assert f"already registered in the project as version {first.pk}" in caught.value.message
    assert ModelVersion.objects.count() == 1
    assert len(_stored(media_root)) == 1


def test_a_task_of_another_project_is_refused(project: Project, make_model_file: MakeModelFile) -> None:
    other_task = LabelTaskFactory.create(key="quality")

    with pytest.raises(ModelVersionRejected, match="another project"):
        model_version_register(
            project=project, task=other_task, uploaded_path=make_model_file(), name="x", created_by=None
        )
