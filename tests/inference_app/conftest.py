"""Fixtures of the inference app's tests: tiny real model files, a quality and a diagnosis task to
serve, registered versions and a spy on model runs."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from annotations.models import LabelTask
from inference import scoring
from inference.models import ModelVersion, TaskGate
from inference.ondemand import model_cache
from inference.services import model_version_activate, model_version_register, task_gate_set
from records.models import Frame, Project
from tests.factories import LabelChoiceFactory, LabelTaskFactory, ProjectFactory
from tests.inference_app.model_support import write_tiny_model_file

# Nothing here may reach a model hub; every model starts from random weights.
os.environ["HF_HUB_OFFLINE"] = "1"

MakeModelFile = Callable[..., Path]


@pytest.fixture(scope="session")
def make_model_file(tmp_path_factory: pytest.TempPathFactory) -> MakeModelFile:
    """`make_model_file(tasks={"quality": ["good", "bad"]}, seed=0, always=None)`: a tiny model
    file, one per argument set, shared by the session (read it, never change it); `always="bad"`
    makes one that predicts "bad" for every frame."""
    folder = tmp_path_factory.mktemp("models")
    cache: dict[str, Path] = {}

    def make(tasks: dict[str, list[str]] | None = None, seed: int = 0, always: str | None = None) -> Path:
        key = f"{sorted((tasks or {}).items())}-{seed}-{always}"
        if key not in cache:
            path = folder / f"model-{len(cache)}.safetensors"
            cache[key] = write_tiny_model_file(path, tasks, seed, always)
        return cache[key]

    return make


@pytest.fixture(autouse=True)
def _empty_model_cache() -> Iterator[None]:
    """Each test starts with no model loaded for on-demand prediction (and counts its own loads)."""
    model_cache.clear()
    yield
    model_cache.clear()


@pytest.fixture
def project() -> Project:
    return ProjectFactory.create()


@pytest.fixture
def quality_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="quality", name="Quality")
    LabelChoiceFactory.create(task=task, value="good", label="Good", order=0)
    LabelChoiceFactory.create(task=task, value="bad", label="Bad", order=1)
    return task


DIAGNOSIS = {"diagnosis": ["healthy", "inflamed", "neoplastic"]}


@pytest.fixture
def diagnosis_task(project: Project) -> LabelTask:
    """A three-class task, so that its model is told apart from the two-class quality model."""
    task = LabelTaskFactory.create(project=project, key="diagnosis", name="Diagnosis", order=1)
    for order, value in enumerate(DIAGNOSIS["diagnosis"]):
        LabelChoiceFactory.create(task=task, value=value, label=value.title(), order=order)
    return task


Register = Callable[..., ModelVersion]


@pytest.fixture
def register(project: Project, make_model_file: MakeModelFile) -> Register:
    """`register(task, always=None, seed=0, activate=True)`: a tiny model version of `task` (its
    labels are the task's choices), active unless told otherwise."""

    def make(
        task: LabelTask, *, always: str | None = None, seed: int = 0, activate: bool = True
    ) -> ModelVersion:
        labels = list(task.choices.order_by("order").values_list("value", flat=True))
        path = make_model_file(tasks={task.key: labels}, seed=seed, always=always)
        version = model_version_register(
            project=project,
            task=task,
            uploaded_path=path,
            name=f"{task.key}-{always or seed}",
            created_by=None,
        )
        return model_version_activate(model_version=version) if activate else version

    return make


ModelRuns = list[tuple[int, int]]


@pytest.fixture
def model_runs(monkeypatch: pytest.MonkeyPatch) -> ModelRuns:
    """(classes of the model, images) of every model run from now on: tells which model ran on how
    many frames (quality models have 2 classes, diagnosis models 3)."""
    runs: ModelRuns = []
    real = scoring.predict_frames_with_cam

    def spy(model: Any, frames: Any, **kwargs: Any) -> Any:
        runs.append((model.num_classes, len(frames)))
        return real(model, frames, **kwargs)

    monkeypatch.setattr(scoring, "predict_frames_with_cam", spy)
    return runs


def set_gate(task: LabelTask, gate_task: LabelTask, values: list[str]) -> TaskGate:
    """Gate `task` by `gate_task`: only frames whose gate value is in `values` are diagnosed."""
    gate, _ = task_gate_set(
        project=task.project, task=task, gate_task=gate_task, diagnostic_values=values, created_by=None
    )
    return gate


# A 576x592 grayscale pCLE frame from the shared real samples (../shared/realdata).
PCLE_FRAME = (
    "amphybio_endomicroscopy-analysis/data-sample/comparative-sample/main/S01/1/S01V01_frames/"
    "S01V01_frame000.png"
)


def post_predict(client: Any, frame: Frame, task: str = "quality") -> Any:
    return client.post(f"/api/frames/{frame.pk}/predict/", {"task": task}, format="json")


def post_classify(client: Any, project: Project, data: bytes, task: str = "quality") -> Any:
    upload = io.BytesIO(data)
    upload.name = "upload.png"
    return client.post(
        f"/api/projects/{project.pk}/classify/", {"image": upload, "task": task}, format="multipart"
    )
