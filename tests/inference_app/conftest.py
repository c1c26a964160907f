"""Fixtures of the inference app's tests: tiny real model files and a quality task to serve."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from annotations.models import LabelTask
from records.models import Project
from tests.factories import LabelChoiceFactory, LabelTaskFactory, ProjectFactory
from tests.inference_app.model_support import write_tiny_model_file

# Nothing here may reach a model hub; every model starts from random weights.
os.environ["HF_HUB_OFFLINE"] = "1"

MakeModelFile = Callable[..., Path]


@pytest.fixture(scope="session")
def make_model_file(tmp_path_factory: pytest.TempPathFactory) -> MakeModelFile:
    """`make_model_file(tasks={"quality": ["good", "bad"]}, seed=0)`: a tiny model file, one per
    argument set, shared by the session (read it, never change it)."""
    folder = tmp_path_factory.mktemp("models")
    cache: dict[str, Path] = {}

    def make(tasks: dict[str, list[str]] | None = None, seed: int = 0) -> Path:
        key = f"{sorted((tasks or {}).items())}-{seed}"
        if key not in cache:
            cache[key] = write_tiny_model_file(folder / f"model-{len(cache)}.safetensors", tasks, seed)
        return cache[key]

    return make


@pytest.fixture
def project() -> Project:
    return ProjectFactory.create()


@pytest.fixture
def quality_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="quality", name="Quality")
    LabelChoiceFactory.create(task=task, value="good", label="Good", order=0)
    LabelChoiceFactory.create(task=task, value="bad", label="Bad", order=1)
    return task
