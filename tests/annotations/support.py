"""Helpers shared by the annotations tests (not a test module itself)."""

from __future__ import annotations

from typing import Any

from annotations.models import Annotation, LabelTask
from records.models import Frame, Project
from tests.factories import AnnotationFactory, FrameFactory, LabelChoiceFactory, LabelTaskFactory


def quality_task(project: Project, key: str = "quality", **fields: Any) -> LabelTask:
    """A 'quality' task (or another `key`) with choices good (hotkey g) and bad (hotkey b); a task of
    another key gets no hotkeys, so that a project's hotkeys stay unique."""
    task = LabelTaskFactory.create(project=project, key=key, **fields)
    keyed = key == "quality"
    LabelChoiceFactory.create(task=task, value="good", hotkey="g" if keyed else "", order=0)
    LabelChoiceFactory.create(task=task, value="bad", hotkey="b" if keyed else "", order=1)
    return task


def frame_in(project: Project) -> Frame:
    return FrameFactory.create(examination__patient__project=project)


def annotate(
    frame: Frame, task: LabelTask, annotator: Any = None, value: str = "good", **fields: Any
) -> Annotation:
    """An annotation written directly (by a new user unless `annotator` is given)."""
    if annotator is not None:
        fields["annotator"] = annotator
    return AnnotationFactory.create(frame=frame, task=task, value=value, **fields)
