"""The reviewer's page end to end: headless Chromium, the live server and PostgreSQL.

Two readers labelled the same frames; where they disagree, a reviewer records the adjudicated label
with the keyboard. The tests drive the built app (see the app_built fixture) and check the database:
the Adjudication rows, their based_on snapshots and history, and the readers' annotations untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from annotations.models import Adjudication, Annotation
from annotations.services import adjudication_submit
from records.models import Frame
from tests.browser.docs_shots import docs_screenshot
from tests.browser.labelling import (
    annotations_snapshot,
    expect_counts,
    expect_frame,
    expect_saved,
    log_in,
    review_project,
)
from tests.factories import (
    AdjudicationFactory,
    FrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

H, N, U = "healthy", "neoplastic", "unclear"
# Per frame in queue order: (reader1, reader2). Disagreeing: frames 1, 3, 4 and 6; agreeing: 0 and 2;
# frame 5 has one reader only (no disagreement).
LABELS: list[tuple[str | None, str | None]] = [
    (H, H),
    (H, N),
    (N, N),
    (N, U),
    (U, H),
    (H, None),
    (N, H),
]


def based_on_of(frame_id: int, task_id: int) -> list[dict[str, object]]:
    """What the service must have recorded: the frame's free annotations of the task, as they are."""
    return [
        {
            "annotation_id": a.pk,
            "annotator_id": a.annotator_id,
            "value": a.value,
            "confidence": a.confidence,
            "version": a.version,
        }
        for a in Annotation.objects.filter(frame_id=frame_id, task_id=task_id).order_by("pk")
    ]


def test_reviewer_adjudicates_the_disagreements_by_keyboard(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    base = str(live_server)
    setup = review_project(LABELS)
    project, task, reviewer = setup.labelling.project, setup.labelling.task, setup.labelling.user
    frames = setup.labelling.frames
    assert setup.disagreeing == [frames[1], frames[3], frames[4], frames[6]]
    # Frame 6 was adjudicated before: it is not open any more.
    AdjudicationFactory.create(
        frame=Frame.objects.get(pk=frames[6]), task=task, value=N, adjudicated_by=reviewer
    )
    before = annotations_snapshot(task)

    review_answers: list[Response] = []
    page.on("response", lambda r: review_answers.append(r) if "/review/?" in r.url else None)
    log_in(page, base, "reviewer")
    # Projects -> the project: beside the task's labelling card, the review link (Tab, Enter).
    expect(page.locator("a.card .badge")).to_have_text("Reviewer")
    page.keyboard.press("Enter")
    expect(page.locator("a.card[data-task]")).to_be_focused()
    review_link = page.locator(f"a.review-link[data-review-task='{task.pk}']")
    expect(review_link).to_have_text("Review disagreements")
    page.keyboard.press("Tab")
    expect(review_link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/review/{project.pk}/{task.pk}")

    # Only the open disagreements, in queue order; both readers' labels; no reference standard.
    expect_frame(page, frames[1])
    expect_counts(page, open=3, adjudicated=1)
    assert review_answers and review_answers[0].status == 200
    body = review_answers[0].json()
    assert [item["frame"]["id"] for item in body["items"]] == [frames[1], frames[3], frames[4]]
    assert "reference_label" not in json.dumps(body)
    rows = page.locator(".annotation")
    expect(rows).to_have_count(2)
    expect(page.locator(".annotation[data-annotator=reader1]")).to_contain_text("Healthy")
    expect(page.locator(".annotation[data-annotator=reader1]")).to_contain_text("confidence 2")
    expect(page.locator(".annotation[data-annotator=reader2]")).to_contain_text("Neoplastic")
    expect(page.locator(".annotation[data-annotator=reader2]")).to_contain_text("confidence 4")
    expect(page.locator(".agreement")).to_have_attribute("data-disagreement", "true")
    expect(page.locator(".decision-current")).to_have_attribute("data-state", "none")
    expect(page.locator(".context-list dd[data-field=site]")).to_have_text("larynx")
    expect(page.locator(".context-list dd[data-field=examination]")).to_have_text("E1")
    assert "neoplastic" not in page.locator(".context").inner_text().lower()

    # The help lists the page's keys.
    page.keyboard.press("?")
    help_dialog = page.locator(".modal.help")
    expect(help_dialog).to_contain_text("Write a rationale")
    expect(help_dialog).to_contain_text("Adjudicated frames")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    # The view keys work as in the workspace.
    page.keyboard.press("+")
    expect(page.locator(".zoom-readout")).to_have_text("125 %")
    page.keyboard.press("0")
    expect(page.locator(".zoom-readout")).to_have_text("100 %")

    # Frame 1: "h" records Healthy and moves on; the open count goes down.
    page.keyboard.press("h")
    expect_frame(page, frames[3])
    expect_counts(page, open=2, adjudicated=2)
    expect(page.locator(".annotation[data-annotator=reader1]")).to_contain_text("Neoplastic")
    expect(page.locator(".annotation[data-annotator=reader2]")).to_contain_text("Unclear")

    # Frame 3: a rationale first (Shift+N, type, Enter keeps it), then the decision's key.
    page.keyboard.press("Shift+N")
    expect(page.locator("textarea.rationale")).to_be_focused()
    page.keyboard.type("Irregular vessels, dark cells")
    page.keyboard.press("Enter")
    expect(page.locator("textarea.rationale")).not_to_be_focused()
    page.keyboard.press("n")
    expect_frame(page, frames[4])
    expect(page.locator("textarea.rationale")).to_have_value("")

    # Frame 4, the last open one: then the list is done.
    page.keyboard.press("u")
    expect(page.locator(".stage")).to_have_attribute("data-phase", "done")
    expect(page.locator(".stage-note")).to_contain_text("No open disagreement left")
    expect_saved(page)
    expect_counts(page, open=0, adjudicated=4)

    # Back to frame 3: its decision and rationale as saved, and the rationale can still change.
    page.keyboard.press("ArrowLeft")
    expect_frame(page, frames[4])
    page.keyboard.press("ArrowLeft")
    expect_frame(page, frames[3])
    decision = page.locator(".decision-current")
    expect(decision).to_have_attribute("data-value", N)
    expect(decision).to_contain_text("Irregular vessels, dark cells")
    expect(decision).to_contain_text("by reviewer · version 1")
    expect(page.locator("textarea.rationale")).to_have_value("Irregular vessels, dark cells")
    page.screenshot(path=str(tmp_path / "review.png"))
    docs_screenshot(page, "review-page")

    stored = {
        a.frame_id: (a.value, a.rationale, a.adjudicated_by_id, a.version)
        for a in Adjudication.objects.filter(task=task)
    }
    assert stored == {
        frames[1]: (H, "", reviewer.pk, 1),
        frames[3]: (N, "Irregular vessels, dark cells", reviewer.pk, 1),
        frames[4]: (U, "", reviewer.pk, 1),
        frames[6]: (N, "", reviewer.pk, 1),
    }
    for frame_id in (frames[1], frames[3], frames[4]):
        adjudication = Adjudication.objects.get(frame_id=frame_id, task=task)
        assert sorted(adjudication.based_on, key=lambda b: b["annotation_id"]) == based_on_of(
            frame_id, task.pk
        )
        assert {b["annotator_id"] for b in adjudication.based_on} == {r.pk for r in setup.readers}
    # The readers' own labels stay exactly as they gave them.
    assert annotations_snapshot(task) == before

    # The adjudicated list (Shift+A) holds the four decided frames, in queue order.
    page.keyboard.press("Shift+A")
    expect(page.locator(".workspace.review")).to_have_attribute("data-status", "adjudicated")
    expect(page.locator(".review-tab[data-status=adjudicated]")).to_have_attribute("aria-selected", "true")
    expect_frame(page, frames[1])
    expect(page.locator(".decision-current")).to_have_attribute("data-value", H)
    expect(page.locator(".review-progress")).to_contain_text("frame 1 of 4")
    assert page.url.endswith("?status=adjudicated")
    page.keyboard.press("Shift+O")
    expect(page.locator(".stage")).to_have_attribute("data-phase", "empty")
    expect_counts(page, open=0, adjudicated=4)


def test_reader_is_not_allowed_to_review_and_another_project_is_not_found(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    setup = review_project(LABELS[:3])
    project, task = setup.labelling.project, setup.labelling.task
    other = ProjectFactory.create(name="Someone else's project")
    other_task = LabelTaskFactory.create(project=other)
    LabelChoiceFactory.create(task=other_task, hotkey="x")
    other_frame = FrameFactory.create(examination__patient__project=other)

    answers: list[Response] = []
    page.on("response", lambda r: answers.append(r) if "/api/" in r.url else None)
    log_in(page, base, "reader1")
    expect(page.locator("a.card .badge")).to_have_text("Reader")
    page.keyboard.press("Enter")
    expect(page.locator("a.card[data-task]")).to_have_count(1)
    expect(page.locator("a.review-link")).to_have_count(0)

    page.goto(f"{base}/review/{project.pk}/{task.pk}")
    not_allowed = page.locator("[data-state=not-allowed]")
    expect(not_allowed).to_be_visible()
    expect(not_allowed).to_contain_text("Not allowed")
    expect(page.locator("img.frame-image")).to_have_count(0)
    expect(page.locator(".annotation")).to_have_count(0)
    review_statuses = [r.status for r in answers if f"/api/projects/{project.pk}/review/" in r.url]
    assert review_statuses == [403]
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.put(
        f"{base}/api/frames/{setup.labelling.frames[1]}/adjudications/{task.pk}/",
        data={"value": "healthy"},
        headers={"X-CSRFToken": csrf},
    )
    assert refused.status == 403
    assert not Adjudication.objects.exists()

    # A reviewer of this project opening another project's review page: not found, nothing shown.
    reviewer = UserFactory.create(username="rev2", password="pw-for-tests")
    MembershipFactory.create(user=reviewer, project=project, role="reviewer")
    page.context.clear_cookies()
    log_in(page, base, "rev2")
    answers.clear()
    page.goto(f"{base}/review/{other.pk}/{other_task.pk}")
    expect(page.locator("[data-state=not-found]")).to_be_visible()
    expect(page.locator("img.frame-image")).to_have_count(0)
    assert [r.status for r in answers if r.url.endswith(f"/api/projects/{other.pk}/")] == [404]
    assert "Someone else" not in page.content()
    for path in (
        f"/api/projects/{other.pk}/review/?task={other_task.pk}",
        f"/api/frames/{other_frame.pk}/adjudications/{other_task.pk}/",
    ):
        assert page.request.get(f"{base}{path}").status == 404, path


def test_conflicting_adjudication_is_shown_and_nothing_is_lost(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    setup = review_project(LABELS)
    project, task, reviewer = setup.labelling.project, setup.labelling.task, setup.labelling.user
    frames = setup.labelling.frames
    coordinator = UserFactory.create(username="coordinator", password="pw-for-tests")
    MembershipFactory.create(user=coordinator, project=project, role="coordinator")
    # Frame 6 holds an earlier decision (version 1) by the coordinator.
    AdjudicationFactory.create(
        frame=Frame.objects.get(pk=frames[6]), task=task, value=N, adjudicated_by=coordinator
    )
    before = annotations_snapshot(task)

    log_in(page, base, "reviewer", next_path=f"/review/{project.pk}/{task.pk}")
    expect_frame(page, frames[1])
    expect_counts(page, open=3, adjudicated=1)

    # The coordinator decides frame 1 after the page loaded it as open.
    adjudication_submit(
        frame=Frame.objects.get(pk=frames[1]),
        task=task,
        adjudicator=coordinator,
        value=N,
        rationale="Dark cells at the border",
    )
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/adjudications/" in r.url else None)
    page.keyboard.press("h")
    expect_frame(page, frames[3])  # the review moves on; the answer comes in the background
    dialog = page.locator(".modal.conflict")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-frame", str(frames[1]))
    expect(dialog.locator("[data-side=server]")).to_contain_text("Neoplastic")
    expect(dialog.locator("[data-side=server]")).to_contain_text("Dark cells at the border")
    expect(dialog.locator("[data-side=server]")).to_contain_text("by coordinator · version 1")
    expect(dialog.locator("[data-side=mine]")).to_contain_text("Healthy")
    assert 409 in statuses
    # Until it is answered, decision keys do nothing.
    page.keyboard.press("u")
    expect(dialog).to_be_visible()
    expect_frame(page, frames[3])
    assert not Adjudication.objects.filter(frame_id=frames[3]).exists()

    page.keyboard.press("Shift+K")  # keep mine: resubmitted against the coordinator's version
    expect(dialog).to_be_hidden()
    expect_saved(page)
    kept = Adjudication.objects.get(frame_id=frames[1], task=task)
    assert (kept.value, kept.rationale, kept.adjudicated_by_id, kept.version) == (H, "", reviewer.pk, 2)
    history = list(kept.history.order_by("history_id").values_list("version", "value", "adjudicated_by_id"))
    assert history == [(1, N, coordinator.pk), (2, H, reviewer.pk)]

    # The adjudicated list; meanwhile the coordinator changes frame 6's decision (version 2).
    page.keyboard.press("Shift+A")
    expect_frame(page, frames[1])
    expect(page.locator(".decision-current")).to_have_attribute("data-value", H)
    adjudication_submit(
        frame=Frame.objects.get(pk=frames[6]),
        task=task,
        adjudicator=coordinator,
        value=U,
        rationale="Out of focus",
        version=1,
    )
    page.keyboard.press("ArrowRight")
    expect_frame(page, frames[6])
    expect(page.locator(".decision-current")).to_have_attribute("data-value", N)  # as loaded
    page.keyboard.press("h")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-frame", str(frames[6]))
    expect(dialog.locator("[data-side=server]")).to_contain_text("Unclear")
    expect(dialog.locator("[data-side=server]")).to_contain_text("version 2")
    page.get_by_role("button", name="Take the server's").click()
    expect(dialog).to_be_hidden()
    page.keyboard.press("ArrowLeft")
    expect_frame(page, frames[6])
    expect(page.locator(".decision-current")).to_have_attribute("data-value", U)
    expect(page.locator(".decision-current")).to_contain_text("Out of focus")
    taken = Adjudication.objects.get(frame_id=frames[6], task=task)
    assert (taken.value, taken.adjudicated_by_id, taken.version) == (U, coordinator.pk, 2)
    assert taken.history.count() == 2
    assert annotations_snapshot(task) == before
