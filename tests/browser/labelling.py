"""Set-up shared by the browser tests: a project with a diagnosis task and real frames; for the review
page, two readers' labels that disagree on some frames and agree on others."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotations.models import Annotation, LabelChoice, LabelTask
from annotations.selectors import queue_frames
from records.models import Frame, Project
from tests.factories import (
    AnnotationFactory,
    ExaminationFactory,
    FrameFactory,
    MembershipFactory,
    UserFactory,
    VideoFactory,
)

PASSWORD = "pw-for-tests"
CHOICES = (
    ("healthy", "Healthy", "#2e7d32", "h"),
    ("neoplastic", "Neoplastic", "#c62828", "n"),
    ("unclear", "Unclear", "#9e9e9e", "u"),
)


@dataclass
class LabellingProject:
    project: Project
    task: LabelTask
    user: User
    frames: list[int]  # in queue order


def labelling_project(*, frames: int, username: str = "expert", role: str = "reader") -> LabellingProject:
    user = UserFactory.create(username=username, password=PASSWORD)
    membership = MembershipFactory.create(user=user, role=role, project__name=f"CLE {username}")
    project = membership.project
    task = LabelTask.objects.create(project=project, key="diagnosis", name="Diagnosis", kind="nominal")
    for order, (value, label, color, hotkey) in enumerate(CHOICES):
        LabelChoice.objects.create(
            task=task, value=value, label=label, color=color, hotkey=hotkey, order=order
        )
    examination = ExaminationFactory.create(
        patient__project=project, code="E1", anatomical_site="larynx", reference_label="neoplastic"
    )
    video = VideoFactory.create(examination=examination, name="seq1")
    for index in range(frames):
        FrameFactory.create(video=video, index_in_video=index, time_s=index / 25)
    ordered = list(queue_frames(task=task).values_list("pk", flat=True))
    return LabellingProject(project=project, task=task, user=user, frames=ordered)


def log_in(page: Page, base: str, username: str, *, next_path: str = "/") -> None:
    """Through the app's login screen, keyboard only."""
    page.goto(f"{base}{next_path}")
    expect(page.locator("form.login")).to_be_visible()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("header .user")).to_have_text(username)


def expect_frame(page: Page, frame_id: int) -> None:
    expect(page.locator("img.frame-image")).to_have_attribute("data-frame", str(frame_id))


def expect_saved(page: Page) -> None:
    """Every save the page made has an answer (none still on its way)."""
    expect(page.locator(".save[data-state=saving]")).to_have_count(0)


# --- The review page --------------------------------------------------------------------------------


@dataclass
class ReviewProject:
    """A labelling project whose `user` reviews, with two readers who labelled its frames."""

    labelling: LabellingProject
    readers: list[User]
    # Frame ids in queue order, with the (reader1, reader2) values they gave; None: not labelled.
    labels: dict[int, tuple[str | None, str | None]]

    @property
    def disagreeing(self) -> list[int]:
        return [
            frame
            for frame in self.labelling.frames
            if None not in self.labels[frame] and len(set(self.labels[frame])) > 1
        ]


def review_project(
    labels: list[tuple[str | None, str | None]], *, username: str = "reviewer", role: str = "reviewer"
) -> ReviewProject:
    """One frame per entry of `labels`, in queue order: reader1's and reader2's value for it (None:
    that reader did not label it). The readers' confidences are 2 and 4."""
    setup = labelling_project(frames=len(labels), username=username, role=role)
    readers = []
    for name in ("reader1", "reader2"):
        reader = UserFactory.create(username=name, password=PASSWORD)
        MembershipFactory.create(user=reader, project=setup.project, role="reader")
        readers.append(reader)
    given: dict[int, tuple[str | None, str | None]] = {}
    for frame_id, values in zip(setup.frames, labels, strict=True):
        given[frame_id] = values
        frame = Frame.objects.get(pk=frame_id)
        for reader, value, confidence in zip(readers, values, (2, 4), strict=True):
            if value is not None:
                AnnotationFactory.create(
                    frame=frame,
                    task=setup.task,
                    annotator=reader,
                    value=value,
                    confidence=confidence,
                )
    return ReviewProject(labelling=setup, readers=readers, labels=given)


def annotations_snapshot(task: LabelTask) -> list[tuple[object, ...]]:
    """Every annotation of the task as stored, to show that reviewing changed none."""
    return list(
        Annotation.objects.filter(task=task)
        .order_by("pk")
        .values_list("pk", "frame_id", "annotator_id", "value", "confidence", "version", "updated_at")
    )


def expect_counts(page: Page, *, open: int, adjudicated: int) -> None:
    counts = page.locator(".review-counts")
    expect(counts).to_have_attribute("data-open", str(open))
    expect(counts).to_have_attribute("data-adjudicated", str(adjudicated))
