"""Helpers shared by the annotations tests (not a test module itself)."""

from __future__ import annotations

from typing import Any

from annotations.models import LabelTask
from records.models import Frame, Project
from tests.factories import FrameFactory, LabelChoiceFactory, LabelTaskFactory


def quality_task(project: Project, **fields: Any) -> LabelTask:
    """A 'quality' task with choices good (hotkey g) and bad (hotkey b)."""
    task = LabelTaskFactory.create(project=project, key="quality", **fields)
    LabelChoiceFactory.create(task=task, value="good", hotkey="g", order=0)
    LabelChoiceFactory.create(task=task, value="bad", hotkey="b", order=1)
    return task


def frame_in(project: Project) -> Frame:
    return FrameFactory.create(examination__patient__project=project)
