"""A crossover reader study end to end in headless Chromium (issue 6 item 5): a coordinator designs
and opens it with the study pages; two readers each read the same four cases unaided in one period
and with the AI's prediction and CAM in the other, keyboard only; the washout keeps the second
period closed until the clock has moved past it; the unaided period's network traffic carries no
model output at all (and the API refuses it); the answers, reading times and AI exposure are
stored; and the results, in the API and on the coordinator's dashboard, are the numbers worked out
by hand for these answers. Also the sequential arm: first answer without the AI, then revised."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect
from rest_framework.test import APIClient

from annotations.models import LabelChoice, LabelTask
from inference.services import model_version_activate, model_version_register
from records.models import Frame, Project
from studies.models import ReaderStudy, Reading, ReadingSession, StudyCase
from studies.services import (
    ArmSpec,
    CaseSpec,
    QuestionSpec,
    ReaderSpec,
    study_arms_set,
    study_cases_add,
    study_create,
    study_open,
    study_questions_set,
    study_readers_set,
)
from tests.browser.docs_shots import docs_screenshot
from tests.browser.labelling import CHOICES, PASSWORD, log_in
from tests.factories import (
    ExaminationFactory,
    ImageFrameFactory,
    MembershipFactory,
    PatientFactory,
    UserFactory,
)
from tests.inference_app.model_support import write_tiny_model_file

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEYS = {value: key for value, _label, _color, key in CHOICES}
REFERENCE = ["healthy", "neoplastic", "healthy", "neoplastic"]  # case i is frame i's patient
# (value, confidence) per reader, arm and case: the constructed answers whose results are known.
ANSWERS: dict[str, dict[str, list[tuple[str, int]]]] = {
    "reader-a": {
        # Misses case 1: sensitivity 1/2, specificity 2/2.
        "unaided": [("healthy", 5), ("healthy", 2), ("healthy", 4), ("neoplastic", 4)],
        # Catches both, calls case 2 neoplastic: sensitivity 2/2, specificity 1/2.
        "ai": [("healthy", 4), ("neoplastic", 4), ("neoplastic", 3), ("neoplastic", 5)],
    },
    "reader-b": {
        # A false positive (case 0) and a miss (case 3): 1/2 and 1/2.
        "unaided": [("neoplastic", 3), ("neoplastic", 4), ("healthy", 4), ("healthy", 2)],
        # All right with the AI: 2/2 and 2/2.
        "ai": [("healthy", 4), ("neoplastic", 5), ("healthy", 5), ("neoplastic", 4)],
    },
}
MODEL_OUTPUT = ("predicted_value", "probabilities", "cam_url", "model_version")


@dataclass
class CrossoverStudy:
    project: Project
    study: ReaderStudy
    frames: list[Frame]
    readers: dict[str, User]
    coordinator: User

    def sessions(self, username: str) -> list[ReadingSession]:
        return list(
            ReadingSession.objects.filter(reader__user=self.readers[username])
            .select_related("arm")
            .order_by("period")
        )


CROSSOVER_ARMS = [
    ArmSpec(name="unaided", assistance="unaided"),
    ArmSpec(name="ai", assistance="prediction_and_cam"),
]


def study_world(tmp_path: Path) -> tuple[Project, User, list[Frame], dict[str, User]]:
    """The project with its coordinator, four frames of four patients with their reference, an
    active model that calls every frame neoplastic, and the two readers."""
    coordinator = UserFactory.create(username="coordinator", password=PASSWORD)
    project = MembershipFactory.create(
        user=coordinator, role="coordinator", project__name="CLE study"
    ).project
    # Free labelling in this project shows the AI: the study must blind its unaided period anyway.
    Project.objects.filter(pk=project.pk).update(ai_assistance="prediction_and_cam")
    task = LabelTask.objects.create(project=project, key="diagnosis", name="Diagnosis", kind="nominal")
    for order, (value, label, color, hotkey) in enumerate(CHOICES):
        LabelChoice.objects.create(
            task=task, value=value, label=label, color=color, hotkey=hotkey, order=order
        )
    frames = []
    for index, label in enumerate(REFERENCE):
        examination = ExaminationFactory.create(
            patient=PatientFactory.create(project=project),
            code=f"E{index}",
            reference_label=label,
            reference_source="histopathology",
        )
        frames.append(ImageFrameFactory.create(examination=examination, width=96, height=80))
    # A model that calls every frame neoplastic, so that its advice is known too.
    model_file = write_tiny_model_file(
        tmp_path / "diagnosis.safetensors",
        tasks={"diagnosis": [value for value, *_ in CHOICES]},
        always="neoplastic",
    )
    version = model_version_register(
        project=project, task=task, uploaded_path=model_file, name="diag-always-neo", created_by=None
    )
    model_version_activate(model_version=version)
    readers = {}
    for username in ANSWERS:
        readers[username] = UserFactory.create(username=username, password=PASSWORD)
        MembershipFactory.create(project=project, user=readers[username], role="reader")
    return project, coordinator, frames, readers


def crossover_study(
    tmp_path: Path, *, design: str = "crossover", arms: list[ArmSpec] = CROSSOVER_ARMS
) -> CrossoverStudy:
    """The world with the study made and opened through the services."""
    project, coordinator, frames, readers = study_world(tmp_path)
    task = LabelTask.objects.get(project=project, key="diagnosis")
    study = study_create(
        project=project,
        name="AI crossover",
        design=design,
        washout_days=14 if design == "crossover" else 0,
        created_by=coordinator,
        seed=11,
    )
    study_questions_set(study=study, questions=[QuestionSpec(task=task, ask_confidence=True)])
    study_arms_set(study=study, arms=arms)
    study_cases_add(study=study, cases=[CaseSpec(frame_id=frame.pk) for frame in frames])
    study_readers_set(study=study, readers=[ReaderSpec(user=readers[name]) for name in ANSWERS])
    study_open(study=study)
    return CrossoverStudy(
        project=project, study=study, frames=frames, readers=readers, coordinator=coordinator
    )


def read_session(page: Page, setup: CrossoverStudy, session: ReadingSession, username: str) -> None:
    """Answer every case of the session with the keyboard: the answer's key, the confidence digit,
    Enter; in the AI arm only once the prediction and the CAM are on screen."""
    frame_of_case = dict(StudyCase.objects.filter(study=setup.study).values_list("pk", "frame_id"))
    case_of_frame = {frame.pk: index for index, frame in enumerate(setup.frames)}
    answers = ANSWERS[username][session.arm.name]
    for position, case_id in enumerate(session.case_order):
        frame_id = frame_of_case[case_id]
        expect(page.locator("[data-position]")).to_have_attribute("data-position", str(position + 1))
        expect(page.locator("img.frame-image")).to_have_attribute("data-frame", str(frame_id))
        expect(page.locator(".stage")).to_have_attribute("data-state", "case")
        if session.arm.name == "ai":
            expect(page.locator(".prediction .prediction-class")).to_contain_text("Neoplastic")
            expect(page.locator("canvas.cam-overlay")).to_be_visible()
            page.wait_for_timeout(250)  # the reader looks at the heatmap
        else:
            expect(page.locator(".panel.model")).to_be_hidden()
        value, confidence = answers[case_of_frame[frame_id]]
        page.keyboard.press(KEYS[value])
        page.keyboard.press(str(confidence))
        expect(page.locator(f".question .choice[data-value={value}]")).to_have_class("choice chosen")
        if position == 0 and username == "reader-a":
            docs_screenshot(page, f"reading-{session.arm.name}")
        page.keyboard.press("Enter")
    expect(page.locator("[data-state=finished]")).to_contain_text("Session complete")


@dataclass(frozen=True)
class ApiAnswer:
    url: str
    content_type: str
    body: bytes


API_PATH = re.compile(r"/api/")


def capture_api_answers(page: Page) -> tuple[list[ApiAnswer], Any]:
    """Every API answer the page is sent, body included, and the route handler to unroute later.
    The route reads each body before the page gets it: a `response` listener's body can no longer
    be read once the page has navigated away, which made this check flaky."""
    answers: list[ApiAnswer] = []

    def forward(route: Route) -> None:
        response = route.fetch()
        content_type = response.headers.get("content-type", "")
        answers.append(ApiAnswer(route.request.url, content_type, response.body()))
        # If the page navigated away meanwhile, what was sent is recorded all the same.
        with contextlib.suppress(PlaywrightError):
            route.fulfill(response=response)

    page.route(API_PATH, forward)
    return answers, forward


def model_output_in(answers: list[ApiAnswer]) -> list[str]:
    """The API answers that carry any model output (or any CAM image)."""
    found = []
    for answer in answers:
        if "/cam/" in answer.url or "/ai/" in answer.url or "/predict" in answer.url:
            found.append(answer.url)
        elif "json" in answer.content_type:
            text = answer.body.decode()
            found.extend(f"{answer.url}: {word}" for word in MODEL_OUTPUT if f'"{word}"' in text)
    return found


def design_in_the_browser(page: Page, base: str, tmp_path: Path) -> CrossoverStudy:
    """The coordinator designs and opens the crossover study with the study pages: 14-day washout,
    the diagnosis question with confidence, arms unaided and AI (prediction + CAM), the four cases,
    readers a then b."""
    project, coordinator, frames, readers = study_world(tmp_path)
    log_in(page, base, "coordinator", next_path=f"/projects/{project.pk}")
    page.locator(".project-studies a.new-study").click()
    expect(page).to_have_url(re.compile(rf"/studies/new/{project.pk}$"))
    page.fill(".study-name", "AI crossover")
    page.select_option(".study-design", "crossover")
    page.fill(".study-washout", "14")
    page.fill(".study-seed", "11")
    page.check('.question-ask[data-task="diagnosis"]')
    page.click(".add-arm")
    arms = page.locator(".arm-row")
    expect(arms).to_have_count(2)
    arms.nth(1).locator(".arm-name").fill("ai")
    arms.nth(1).locator(".arm-assistance").select_option("prediction_and_cam")
    summary = page.locator(".study-cases .cases-summary")
    expect(summary).to_have_attribute("data-candidates", "4")
    page.click(".select-all-cases")
    for username in ANSWERS:
        page.click(f'.member-row[data-user="{readers[username].pk}"] .add-reader')
    expect(page.locator(".reader-row .reader-name")).to_have_text(list(ANSWERS))
    page.click(".study-submit")
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    page.click(".open-study")
    expect(page.locator(".study-title [data-status]")).to_have_attribute("data-status", "open")
    study = ReaderStudy.objects.get(project=project)
    assert (study.design, study.washout_days, study.seed) == ("crossover", 14, 11)
    assert list(study.arms.order_by("order").values_list("name", "assistance")) == [
        ("unaided", "unaided"),
        ("ai", "prediction_and_cam"),
    ]
    return CrossoverStudy(
        project=project, study=study, frames=frames, readers=readers, coordinator=coordinator
    )


def test_a_crossover_study_is_designed_read_blinded_with_a_washout_and_gives_the_expected_results(
    page: Page, live_server: Any, app_built: Path, tmp_path: Path
) -> None:
    base = str(live_server)
    setup = design_in_the_browser(page, base, tmp_path)
    # Counterbalanced: one reader starts unaided, the other with the AI.
    first_arms = {name: setup.sessions(name)[0].arm.name for name in ANSWERS}
    assert sorted(first_arms.values()) == ["ai", "unaided"]

    for username in ANSWERS:
        first, second = setup.sessions(username)
        page.context.clear_cookies()
        answers, forward = capture_api_answers(page)
        log_in(page, base, username, next_path=f"/read/{first.pk}")
        expect(page.locator(".reader")).to_have_attribute("data-assistance", first.arm.assistance)
        read_session(page, setup, first, username)
        if first.arm.name == "unaided":
            assert answers and model_output_in(answers) == []
            # Asked directly, the API refuses the AI of an unaided session.
            refused = page.request.get(f"{base}/api/reading-sessions/{first.pk}/cases/0/ai/")
            assert refused.status == 403
        page.unroute(API_PATH, forward)

        # The second period waits for the washout, here and on the finished screen.
        expect(page.locator("[data-state=finished] [data-reason]")).to_contain_text("Washout")
        page.goto(f"{base}/read/{second.pk}")
        expect(page.locator("[data-state=unavailable]")).to_contain_text("Washout: this period opens on")
        docs_screenshot(page, "reading-washout")
        # Fifteen days later (the first period's end moved back past the 14-day washout).
        ReadingSession.objects.filter(pk=first.pk).update(completed_at=F("completed_at") - timedelta(days=15))
        page.goto(f"{base}/read/{second.pk}")
        read_session(page, setup, second, username)

    readings = list(Reading.objects.filter(session__reader__study=setup.study).select_related("session__arm"))
    assert len(readings) == 16
    for reading in readings:
        assert reading.time_ms > 0
        if reading.session.arm.name == "unaided":
            assert (reading.ai_shown, reading.cam_visible_ms) == (False, 0)
        else:
            assert reading.ai_shown and 200 <= reading.cam_visible_ms < 60_000

    coordinator = APIClient()
    coordinator.force_login(setup.coordinator)
    results = coordinator.get(
        f"/api/studies/{setup.study.pk}/results/", {"question": "diagnosis", "positive": "neoplastic"}
    ).json()
    by_condition = {condition["key"]: condition for condition in results["conditions"]}
    expected = {  # (sensitivity, specificity) per reader
        "unaided": {"reader-a": (0.5, 1.0), "reader-b": (0.5, 0.5)},
        "ai": {"reader-a": (1.0, 0.5), "reader-b": (1.0, 1.0)},
    }
    for condition, per_reader in expected.items():
        rows = {row["reader"]: row for row in by_condition[condition]["readers"]}
        assert {
            name: (rows[name]["sensitivity"]["value"], rows[name]["specificity"]["value"])
            for name in per_reader
        } == per_reader
    assert by_condition["unaided"]["pooled"]["sensitivity"]["value"] == 0.5  # 2 of 4 positive readings
    assert by_condition["unaided"]["pooled"]["specificity"]["value"] == 0.75  # 3 of 4 negative readings
    assert by_condition["ai"]["pooled"]["sensitivity"]["value"] == 1.0
    assert by_condition["ai"]["pooled"]["specificity"]["value"] == 0.75
    # The coordinator's dashboard shows the same numbers.
    page.context.clear_cookies()
    log_in(page, base, "coordinator", next_path=f"/studies/{setup.study.pk}")
    expect(page.locator(".study-results")).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator(".results-positive")).to_have_value("neoplastic")
    for condition, per_reader in expected.items():
        table = page.locator(f'table.accuracy-table[data-condition="{condition}"]')
        for name, (sensitivity, specificity) in per_reader.items():
            row = table.locator(f'tr[data-reader="{name}"]')
            expect(row.locator('[data-measure="sensitivity"]')).to_have_attribute(
                "data-value", f"{sensitivity:g}"
            )
            expect(row.locator('[data-measure="specificity"]')).to_have_attribute(
                "data-value", f"{specificity:g}"
            )
    pooled = page.locator('table.accuracy-table[data-condition="ai"] tr[data-reader="pooled"]')
    expect(pooled.locator('[data-measure="sensitivity"]')).to_contain_text("4/4")
    expect(page.locator("svg.roc path.roc-curve")).to_have_count(4)
    assert results["cases"] == {
        "analysed": 4, "training_excluded": 0, "without_reference": 0,
        "patients": 4, "positive": 2, "negative": 2,
    }  # fmt: skip


def test_a_sequential_arm_asks_first_without_the_ai_then_shows_it_for_the_revised_answer(
    page: Page, live_server: Any, app_built: Path, tmp_path: Path
) -> None:
    setup = crossover_study(
        tmp_path,
        design="fully_crossed",
        arms=[ArmSpec(name="ai", assistance="prediction_and_cam", sequential=True)],
    )
    session = setup.sessions("reader-a")[0]
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    log_in(page, str(live_server), "reader-a", next_path=f"/read/{session.pk}")

    expect(page.locator("[data-phase=first]")).to_contain_text("without the AI")
    expect(page.locator(".panel.model")).to_be_hidden()
    page.keyboard.press("h")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    # The same case again, now with the AI and the first answer as the starting point.
    expect(page.locator("[data-phase=revised]")).to_be_visible()
    expect(page.locator("[data-position]")).to_have_attribute("data-position", "1")
    expect(page.locator(".prediction .prediction-class")).to_contain_text("Neoplastic")
    expect(page.locator(".question .choice[data-value=healthy]")).to_have_class("choice chosen")
    first_put = next(i for i, line in enumerate(requests) if line.startswith("PUT ") and "/readings/" in line)
    first_ai = next(i for i, line in enumerate(requests) if "/ai/" in line)
    assert first_put < first_ai, requests
    expect(page.locator("canvas.cam-overlay")).to_be_visible()
    docs_screenshot(page, "reading-sequential-revised")
    page.wait_for_timeout(250)
    page.keyboard.press("n")  # persuaded by the AI
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("[data-position]")).to_have_attribute("data-position", "2")
    expect(page.locator("[data-phase=first]")).to_be_visible()

    first, revised = Reading.objects.filter(session=session).order_by("id")
    assert (first.phase, first.value, first.confidence, first.ai_shown, first.cam_visible_ms) == (
        "first", "healthy", 5, False, 0,
    )  # fmt: skip
    assert (revised.phase, revised.value, revised.confidence, revised.ai_shown) == (
        "revised",
        "neoplastic",
        3,
        True,
    )
    assert revised.cam_visible_ms >= 200 and revised.case_id == first.case_id
