"""The labelling workspace end to end: headless Chromium, the live server and PostgreSQL.

Every test drives the built app (frontend/static/frontend, see the app_built fixture) the way a
medical expert would, with the keyboard, and then checks the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from annotations.models import Annotation
from annotations.services import annotation_submit
from tests.browser.docs_shots import docs_screenshot
from tests.browser.labelling import expect_frame, expect_saved, labelling_project, log_in
from tests.factories import FrameFactory, LabelChoiceFactory, LabelTaskFactory, ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_expert_labels_twenty_frames_with_the_keyboard_only(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    base = str(live_server)
    setup = labelling_project(frames=24)
    log_in(page, base, "expert")

    # Project list -> the project (its card has the focus) -> the task picker -> the workspace.
    expect(page.locator("a.card")).to_have_count(1)
    expect(page.locator("a.card .badge")).to_have_text("Reader")
    docs_screenshot(page, "projects")
    page.keyboard.press("Enter")
    expect(page.locator("a.card[data-task]")).to_be_focused()
    docs_screenshot(page, "task-picker")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/label/{setup.project.pk}/{setup.task.pk}")
    expect_frame(page, setup.frames[0])
    expect(page.locator(".progress")).to_have_attribute("data-remaining", "24")
    # Context, never the reference standard.
    expect(page.locator(".context-list dd[data-field=examination]")).to_have_text("E1")
    expect(page.locator(".context-list dd[data-field=video]")).to_have_text("seq1")
    # The project hides model output from readers (the default): no model panel at all.
    expect(page.locator(".panel.model")).to_be_hidden()
    assert "neoplastic" not in page.locator(".context").inner_text().lower()

    keys = ["h", "n", "u"]
    expected: dict[int, tuple[str, int]] = {}
    confidence = 3
    for number, frame_id in enumerate(setup.frames[:20]):
        expect_frame(page, frame_id)
        if number % 5 == 0:
            confidence = 1 + (number // 5) % 5 + (1 if number >= 5 else 0)
            confidence = min(confidence, 5)
            page.keyboard.press(f"Shift+{confidence}")
        key = keys[number % 3]
        page.keyboard.press(key)
        expected[frame_id] = ({"h": "healthy", "n": "neoplastic", "u": "unclear"}[key], confidence)

    expect_frame(page, setup.frames[20])
    expect_saved(page)
    expect(page.locator(".progress")).to_have_attribute("data-remaining", "4")
    page.screenshot(path=str(tmp_path / "workspace.png"))

    stored = {
        a.frame_id: (a.value, a.confidence, a.time_on_frame_ms)
        for a in Annotation.objects.filter(annotator=setup.user, task=setup.task)
    }
    assert set(stored) == set(expected)
    for frame_id, (value, confidence) in expected.items():
        assert stored[frame_id][:2] == (value, confidence), frame_id
        time_on_frame = stored[frame_id][2]
        assert time_on_frame is not None and time_on_frame >= 0
    assert Annotation.objects.filter(version=1).count() == 20


def test_conflicting_edit_is_shown_and_resolved_without_losing_a_label(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    setup = labelling_project(frames=5)
    first, second = setup.frames[:2]
    log_in(page, base, "expert", next_path=f"/label/{setup.project.pk}/{setup.task.pk}")
    expect_frame(page, first)
    page.keyboard.press("Shift+3")
    page.keyboard.press("h")
    expect_frame(page, second)
    page.keyboard.press("h")
    expect_frame(page, setup.frames[2])
    expect_saved(page)

    # Another session of the same user changes both labels after the page loaded them (version 1).
    for frame_id in (first, second):
        annotation = Annotation.objects.get(frame_id=frame_id, task=setup.task)
        annotation_submit(
            frame=annotation.frame,
            task=setup.task,
            annotator=setup.user,
            value="neoplastic",
            confidence=5,
            version=1,
        )

    # Back to the second frame; the page still holds version 1 and changes the label: 409.
    conflicts: list[int] = []
    page.on("response", lambda r: conflicts.append(r.status) if "/annotations/" in r.url else None)
    page.keyboard.press("ArrowLeft")
    expect_frame(page, second)
    page.keyboard.press("u")
    expect_frame(page, setup.frames[2])  # labelling moves on; the answer comes in the background
    dialog = page.locator(".modal.conflict")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-frame", str(second))
    expect(dialog.locator("[data-side=server]")).to_contain_text("Neoplastic · confidence 5")
    expect(dialog.locator("[data-side=server]")).to_contain_text("version 2")
    expect(dialog.locator("[data-side=mine]")).to_contain_text("Unclear · confidence 3")
    assert 409 in conflicts
    docs_screenshot(page, "conflict-dialog")
    # Until it is resolved, labelling keys do nothing.
    page.keyboard.press("h")
    expect(dialog).to_be_visible()

    page.keyboard.press("Shift+K")  # keep mine
    expect(dialog).to_be_hidden()
    expect_saved(page)
    kept = Annotation.objects.get(frame_id=second, task=setup.task)
    assert (kept.value, kept.confidence, kept.version) == ("unclear", 3, 3)
    history = list(kept.history.order_by("history_id").values_list("version", "value", "confidence"))
    assert history == [(1, "healthy", 3), (2, "neoplastic", 5), (3, "unclear", 3)]

    # The first frame: take the server's this time; nothing is written, the page shows its value.
    page.keyboard.press("ArrowLeft")
    expect_frame(page, second)
    expect(page.locator(".current-label")).to_contain_text("Unclear · confidence 3")
    page.keyboard.press("ArrowLeft")
    expect_frame(page, first)
    page.keyboard.press("u")
    expect_frame(page, second)
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-frame", str(first))
    page.keyboard.press("ArrowLeft")  # blocked until resolved
    expect_frame(page, second)
    page.get_by_role("button", name="Take the server's").click()
    expect(dialog).to_be_hidden()
    page.keyboard.press("ArrowLeft")
    expect_frame(page, first)
    expect(page.locator(".current-label")).to_contain_text("Neoplastic · confidence 5")
    taken = Annotation.objects.get(frame_id=first, task=setup.task)
    assert (taken.value, taken.confidence, taken.version) == ("neoplastic", 5, 2)
    assert taken.history.count() == 2


def test_reader_cannot_open_another_projects_workspace(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    labelling_project(frames=1)
    other = ProjectFactory.create(name="Someone else's project")
    other_task = LabelTaskFactory.create(project=other)
    LabelChoiceFactory.create(task=other_task, hotkey="x")
    other_frame = FrameFactory.create(examination__patient__project=other)
    log_in(page, base, "expert")
    expect(page.locator("a.card")).to_have_count(1)
    expect(page.locator("body")).not_to_contain_text("Someone else's project")

    answers: list[Response] = []
    page.on("response", lambda response: answers.append(response) if "/api/" in response.url else None)
    page.goto(f"{base}/label/{other.pk}/{other_task.pk}")
    expect(page.locator("[data-state=not-found]")).to_be_visible()
    expect(page.locator("img.frame-image")).to_have_count(0)
    about_other = [
        r for r in answers if f"/api/projects/{other.pk}/" in r.url or f"project={other.pk}" in r.url
    ]
    assert about_other, [r.url for r in answers]
    project_answers = [r.status for r in about_other if r.url.endswith(f"/api/projects/{other.pk}/")]
    assert project_answers == [404]
    assert all(r.status in (200, 404) for r in about_other)
    assert "Someone else" not in page.content()

    page.goto(f"{base}/projects/{other.pk}")
    expect(page.locator("[data-state=not-found]")).to_be_visible()
    for path in (
        f"/api/projects/{other.pk}/",
        f"/api/projects/{other.pk}/queue/?task={other_task.pk}",
        f"/api/frames/{other_frame.pk}/",
        f"/api/frames/{other_frame.pk}/image/",
        f"/api/frames/{other_frame.pk}/annotations/{other_task.pk}/",
    ):
        assert page.request.get(f"{base}{path}").status == 404, path
    assert page.request.get(f"{base}/api/label-context/?frames={other_frame.pk}").json() == {"frames": []}


def test_undo_restores_the_previous_state_in_the_database(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    setup = labelling_project(frames=4)
    first, second, third = setup.frames[:3]
    log_in(page, base, "expert", next_path=f"/label/{setup.project.pk}/{setup.task.pk}")
    expect_frame(page, first)
    page.keyboard.press("Shift+2")
    page.keyboard.press("h")
    expect_frame(page, second)
    page.keyboard.press("n")
    expect_frame(page, third)
    expect_saved(page)
    assert Annotation.objects.filter(task=setup.task).count() == 2

    # Undo of a new label removes it (DELETE with If-Match) and goes back to that frame.
    page.keyboard.press("Control+z")
    expect_frame(page, second)
    expect(page.locator(".current-label")).to_have_attribute("data-state", "none")
    expect_saved(page)
    assert not Annotation.objects.filter(frame_id=second, task=setup.task).exists()
    expect(page.locator(".progress")).to_have_attribute("data-remaining", "3")

    # Undo of a changed label puts the previous value and confidence back.
    page.keyboard.press("ArrowLeft")
    expect_frame(page, first)
    page.keyboard.press("Shift+5")
    page.keyboard.press("u")
    expect_frame(page, second)
    expect_saved(page)
    changed = Annotation.objects.get(frame_id=first, task=setup.task)
    assert (changed.value, changed.confidence, changed.version) == ("unclear", 5, 3)

    page.keyboard.press("Backspace")  # undoes "u" (value)
    expect_frame(page, first)
    expect_saved(page)
    page.keyboard.press("Backspace")  # undoes Shift+5 (confidence)
    expect_saved(page)
    expect(page.locator(".current-label")).to_contain_text("Healthy · confidence 2")
    restored = Annotation.objects.get(frame_id=first, task=setup.task)
    assert (restored.value, restored.confidence) == ("healthy", 2)
    history = list(restored.history.order_by("history_id").values_list("value", "confidence"))
    assert history == [("healthy", 2), ("healthy", 5), ("unclear", 5), ("healthy", 5), ("healthy", 2)]
