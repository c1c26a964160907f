"""The coordinator's reader-study pages end to end: headless Chromium, the live server and PostgreSQL.

A coordinator designs a crossover study in the form (a refused name first: the API's message shows
beside the form), lands on the draft's dashboard, opens it and sees every reader at 0 cases. A reader
finds their session on the project page and is refused the dashboard. With readings stored through
the reading service, the dashboard shows the numbers computed by hand for the tiny data set below, a
ROC curve per reader and condition, a CSV of every reading, and locks the study.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotations.models import LabelChoice, LabelTask
from records.models import Frame, Project
from studies.models import ReaderStudy, Reading, ReadingSession, StudyCase
from studies.reading import Answer, reading_submit
from studies.services import study_create
from tests.browser.docs_shots import docs_screenshot
from tests.browser.labelling import PASSWORD, log_in
from tests.factories import ExaminationFactory, FrameFactory, MembershipFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

H, N = "healthy", "neoplastic"
# A seed beyond 2^53, which a JavaScript number would round: the pages keep it as written.
SEED = 2**62 - 1
# The en dash between an interval's ends and the minus sign of the ROC's "1 - specificity" axis.
EN_DASH, MINUS = "\u2013", "\u2212"
# Reference of the analysed frames, in creation order; one more, neoplastic, frame is for training.
TRUTH = [N, N, N, N, H, H, H, H]
# (value, confidence) per analysed frame, per reader and arm.
ANSWERS: dict[tuple[str, str], list[tuple[str, int]]] = {
    # r1 unaided: TP TP TP FN | TN TN TN FP -> sensitivity 3/4, specificity 3/4. Ratings (5 + c for a
    # neoplastic answer, 6 - c for a healthy one): positives 10 9 8 4, negatives 1 2 3 7 -> 15 of 16
    # positive-negative pairs ordered right: AUC 0.9375.
    ("r1", "unaided"): [(N, 5), (N, 4), (N, 3), (H, 2), (H, 5), (H, 4), (H, 3), (N, 2)],
    ("r1", "prediction"): [(N, 4)] * 4 + [(H, 4)] * 4,
    # r2 unaided: sensitivity 2/4, specificity 4/4; ratings 9 9 3 3 against 2 2 2 2 -> AUC 1.
    ("r2", "unaided"): [(N, 4), (N, 4), (H, 3), (H, 3)] + [(H, 4)] * 4,
    ("r2", "prediction"): [(N, 4)] * 4 + [(H, 4), (H, 4), (N, 3), (H, 4)],
}


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval (95 %), by its formula."""
    z = 1.959963984540054
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


class StudyProject:
    """A project with a two-choice diagnosis task, a coordinator, two readers and nine frames of nine
    patients with a reference label (eight analysed, the last for training)."""

    def __init__(self) -> None:
        self.coordinator = UserFactory.create(username="coord", password=PASSWORD)
        membership = MembershipFactory.create(
            user=self.coordinator, role="coordinator", project__name="CLE study"
        )
        self.project: Project = membership.project
        self.readers: list[User] = []
        for name in ("r1", "r2"):
            reader = UserFactory.create(username=name, password=PASSWORD)
            MembershipFactory.create(user=reader, project=self.project, role="reader")
            self.readers.append(reader)
        self.task = LabelTask.objects.create(
            project=self.project, key="diagnosis", name="Diagnosis", kind="nominal"
        )
        for order, value in enumerate((H, N)):
            LabelChoice.objects.create(task=self.task, value=value, label=value.title(), order=order)
        self.frames: list[Frame] = []
        for label in [*TRUTH, N]:
            examination = ExaminationFactory.create(
                patient=PatientFactory.create(project=self.project),
                reference_label=label,
                reference_source="histopathology",
            )
            self.frames.append(FrameFactory.create(examination=examination))
        self.training_frame = self.frames[-1]

    def read_everything(self, study: ReaderStudy) -> None:
        """Every session answered through the reading service, earlier periods first (washout 0)."""
        answer_of = {frame.pk: index for index, frame in enumerate(self.frames[:-1])}
        sessions = ReadingSession.objects.filter(reader__study=study).select_related("reader__user", "arm")
        for session in sessions.order_by("period", "reader__position"):
            answers = ANSWERS[(session.reader.user.username, session.arm.name)]
            for position, case_id in enumerate(session.case_order):
                case = StudyCase.objects.get(pk=case_id)
                index = answer_of.get(case.frame_id or 0)
                value, confidence = (H, 3) if index is None else answers[index]
                answer = Answer(
                    question_key="diagnosis", value=value, confidence=confidence, time_ms=1000 + position
                )
                reading_submit(session=session, position=position, answer=answer)


def switch_user(page: Page, base: str, username: str, next_path: str) -> None:
    page.context.clear_cookies()
    log_in(page, base, username, next_path=next_path)


def design_the_study(page: Page, setup: StudyProject) -> None:
    """Fill the form: crossover, the seed, the diagnosis question, arms unaided and prediction, every
    case with a reference (the training frame flagged), readers r1 then r2."""
    # Rows that do not apply to the chosen design are out of sight.
    page.select_option(".study-design", "fully_crossed")
    expect(page.locator(".washout-row")).to_be_hidden()
    expect(page.locator(".groups-row")).to_be_hidden()
    page.select_option(".study-design", "split_plot")
    expect(page.locator(".groups-row")).to_be_visible()
    page.select_option(".study-design", "crossover")
    expect(page.locator(".washout-row")).to_be_visible()
    expect(page.locator(".groups-row")).to_be_hidden()
    page.fill(".study-seed", str(SEED))
    page.check('.question-ask[data-task="diagnosis"]')
    page.click(".add-arm")
    expect(page.locator(".arm-row")).to_have_count(2)
    expect(page.locator(".arm-row").nth(1).locator(".arm-name")).to_have_value("prediction")
    expect(page.locator(".arm-row").nth(1).locator(".arm-assistance")).to_have_value("prediction")
    summary = page.locator(".study-cases .cases-summary")
    expect(summary).to_have_attribute("data-candidates", "9")
    page.click(".select-all-cases")
    page.check(f'tr[data-case="{setup.training_frame.pk}"] .case-training')
    expect(summary).to_have_attribute("data-selected", "9")
    expect(summary).to_have_attribute("data-training", "1")
    for reader in setup.readers:
        page.click(f'.member-row[data-user="{reader.pk}"] .add-reader')
    expect(page.locator(".reader-row")).to_have_count(2)
    expect(page.locator(".reader-row .reader-name")).to_have_text(["r1", "r2"])


def test_coordinator_designs_opens_follows_and_locks_a_study(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    base = str(live_server)
    setup = StudyProject()
    study_create(project=setup.project, name="Taken", design="fully_crossed", created_by=None, seed=1)

    # The project page lists the studies and offers a new one.
    log_in(page, base, "coord", next_path=f"/projects/{setup.project.pk}")
    section = page.locator(".project-studies")
    expect(section).to_have_attribute("data-state", "ready")
    expect(section.locator(".studies-table .study-link")).to_have_text(["Taken"])
    docs_screenshot(page, "project-page")
    section.locator("a.new-study").click()
    expect(page).to_have_url(re.compile(rf"/studies/new/{setup.project.pk}$"))

    design_the_study(page, setup)
    docs_screenshot(page, "study-design-form", whole_page=True)
    # A name the project already has: the API's 400 shows beside the form and nothing navigates.
    page.fill(".study-name", "Taken")
    page.click(".study-submit")
    errors = page.locator(".form-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("The project already has a study named 'Taken'.")
    expect(page).to_have_url(re.compile(r"/studies/new/\d+$"))
    assert ReaderStudy.objects.filter(project=setup.project).count() == 1

    page.fill(".study-name", "AI study")
    page.click(".study-submit")
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study = ReaderStudy.objects.get(project=setup.project, name="AI study")
    assert page.url.endswith(f"/studies/{study.pk}")
    assert study.design == "crossover" and study.status == "draft" and study.seed == SEED
    assert list(study.arms.order_by("order").values_list("name", "assistance")) == [
        ("unaided", "unaided"),
        ("prediction", "prediction"),
    ]
    assert list(study.readers.order_by("position").values_list("user__username", flat=True)) == ["r1", "r2"]
    assert StudyCase.objects.get(study=study, is_training=True).frame_id == setup.training_frame.pk

    # The draft's dashboard: the design as stored, then opening it.
    expect(page.locator(".study-title [data-status]")).to_have_attribute("data-status", "draft")
    expect(page.locator(".design-cases")).to_have_attribute("data-cases", "9")
    expect(page.locator(".design-cases")).to_have_attribute("data-training", "1")
    expect(page.locator(".design-readers")).to_have_text("1. r1, 2. r2")
    expect(page.locator(".study-facts")).to_contain_text(f"seed {SEED} ")
    page.click(".open-study")
    expect(page.locator(".study-title [data-status]")).to_have_attribute("data-status", "open")
    progress = page.locator(".progress-table")
    for reader in ("r1", "r2"):
        for arm in ("unaided", "prediction"):
            cell = progress.locator(f'tr[data-reader="{reader}"] td[data-arm="{arm}"]')
            expect(cell).to_have_attribute("data-done", "0")
            expect(cell).to_have_attribute("data-total", "9")
    docs_screenshot(page, "study-dashboard-open", whole_page=True)

    # A reader: their sessions on the project page (period 1 now, period 2 after it), no dashboard.
    switch_user(page, base, "r1", f"/projects/{setup.project.pk}")
    sessions = page.locator(".my-sessions .session-item")
    expect(sessions).to_have_count(2)
    first, _second = ReadingSession.objects.filter(reader__study=study, reader__user__username="r1").order_by(
        "period"
    )
    expect(sessions.nth(0).locator("a.read-link")).to_have_attribute("href", f"/read/{first.pk}")
    expect(sessions.nth(1)).to_have_attribute("data-state", "waiting")
    expect(sessions.nth(1).locator(".session-reason")).not_to_be_empty()
    docs_screenshot(page, "reader-sessions", scroll_to=page.locator(".my-sessions"))
    expect(page.locator(".new-study")).to_have_count(0)
    page.goto(f"{base}/studies/{study.pk}")
    expect(page.locator("[data-state=not-allowed]")).to_contain_text("Not allowed")

    # Every reading stored; the coordinator's dashboard shows the results of the API.
    setup.read_everything(study)
    switch_user(page, base, "coord", f"/studies/{study.pk}")
    results = page.locator(".study-results")
    expect(results).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator(".results-positive")).to_have_value(N)
    expect(page.locator(".cases-summary")).to_have_attribute("data-analysed", "8")
    expect(page.locator(".cases-summary")).to_contain_text(f"2000 bootstrap resamples, seed {SEED}")
    unaided = page.locator('table.accuracy-table[data-condition="unaided"]')
    r1 = unaided.locator('tr[data-reader="r1"]')
    expect(r1.locator('[data-measure="sensitivity"]')).to_have_text(f"0.75 (0.30{EN_DASH}0.95) 3/4")
    expect(r1.locator('[data-measure="specificity"]')).to_have_text(f"0.75 (0.30{EN_DASH}0.95) 3/4")
    expect(r1.locator('[data-measure="auc"]')).to_have_attribute("data-value", "0.9375")
    r2 = unaided.locator('tr[data-reader="r2"]')
    expect(r2.locator('[data-measure="sensitivity"]')).to_have_text(f"0.50 (0.15{EN_DASH}0.85) 2/4")
    expect(r2.locator('[data-measure="auc"]')).to_have_attribute("data-value", "1")
    pooled = unaided.locator('tr[data-reader="pooled"] [data-measure="sensitivity"]')
    low, high = wilson(5, 8)
    expect(pooled).to_have_attribute("data-value", "0.625")
    expect(pooled).to_contain_text(f"({low:.2f}{EN_DASH}{high:.2f}) 5/8")
    prediction = page.locator('table.accuracy-table[data-condition="prediction"]')
    expect(prediction.locator('tr[data-reader="r2"] [data-measure="specificity"]')).to_contain_text("3/4")
    # A number the API does not give (a pooled AUC) shows why instead of a blank cell.
    expect(page.locator(".accuracy-table td.missing").first).to_contain_text("AUC is per reader")

    # A ROC curve per reader and condition, and the forest plot's rows.
    curves = page.locator("svg.roc path.roc-curve")
    expect(curves).to_have_count(4)
    for condition in ("unaided", "prediction"):
        for reader in ("r1", "r2"):
            curve = f'svg.roc path.roc-curve[data-condition="{condition}"][data-reader="{reader}"]'
            expect(page.locator(curve)).to_have_count(1)
    expect(page.locator("svg.roc").first).to_contain_text(f"1 {MINUS} specificity")
    expect(page.locator("svg.forest .forest-row")).to_have_count(4)
    expect(page.locator(".mrmc-table tr")).to_have_count(4)  # header + AUC, sensitivity, specificity
    expect(page.locator(".methods-text")).to_contain_text("2 readers")
    docs_screenshot(page, "study-results", whole_page=True)
    docs_screenshot(page, "study-roc", scroll_to=page.locator("svg.roc").first)

    # Every reading as CSV: 2 readers x 2 arms x 9 cases, one question.
    with page.expect_download() as download:
        page.click("a.readings-csv")
    path = tmp_path / "readings.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == 36 == Reading.objects.filter(session__reader__study=study).count()

    # Locking, after a confirmation.
    expect(page.locator(".lock-confirm")).to_be_hidden()
    page.click(".lock-study")
    expect(page.locator(".lock-confirm")).to_be_visible()
    page.click(".lock-confirm-yes")
    expect(page.locator(".study-title [data-status]")).to_have_attribute("data-status", "locked")
    expect(page.locator(".locked-note")).to_be_visible()
    study.refresh_from_db()
    assert study.status == "locked"
    expect(page.locator(".results-status")).to_contain_text("Final results", timeout=30_000)
