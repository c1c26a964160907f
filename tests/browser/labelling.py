"""Set-up shared by the workspace's browser tests: a project with a diagnosis task and real frames."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotations.models import LabelChoice, LabelTask
from annotations.selectors import queue_frames
from records.models import Project
from tests.factories import (
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
