"""Model output in the labelling workspace, end to end: what a reader sees follows the project's
`ai_assistance`, the CAM overlay blends over the frame with its opacity, and the exposure is stored
with the annotation (ai_shown, cam_visible_ms). Real tiny models score real frames on the CPU."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from annotations.models import Annotation, LabelChoice, LabelTask
from annotations.selectors import queue_frames
from inference.models import ModelVersion, Prediction
from inference.services import model_version_activate, model_version_register, model_version_score_frames
from records.models import Project
from tests.browser.docs_shots import docs_screenshot
from tests.browser.labelling import CHOICES, expect_frame, expect_saved, log_in
from tests.factories import ExaminationFactory, ImageFrameFactory, MembershipFactory, UserFactory
from tests.inference_app.model_support import write_tiny_model_file

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LABELS = {value: label for value, label, _color, _key in CHOICES}
KEYS = {value: key for value, _label, _color, key in CHOICES}


@dataclass
class AiProject:
    project: Project
    task: LabelTask
    version: ModelVersion
    frames: list[int]  # queue order


def ai_project(
    tmp_path: Path, *, ai_assistance: str, frames: int = 3, scored: bool = True, username: str = "expert"
) -> AiProject:
    """A reader's project with a diagnosis task whose active model (a tiny CNN-LSTM) has scored
    its frames (96x80 random textures), unless `scored` is False."""
    user = UserFactory.create(username=username, password="pw-for-tests")
    project = MembershipFactory.create(user=user, role="reader", project__name="CLE AI").project
    Project.objects.filter(pk=project.pk).update(ai_assistance=ai_assistance)
    task = LabelTask.objects.create(project=project, key="diagnosis", name="Diagnosis", kind="nominal")
    for order, (value, label, color, hotkey) in enumerate(CHOICES):
        LabelChoice.objects.create(
            task=task, value=value, label=label, color=color, hotkey=hotkey, order=order
        )
    examination = ExaminationFactory.create(patient__project=project, code="E1")
    for _ in range(frames):
        ImageFrameFactory.create(examination=examination, width=96, height=80)
    model_file = write_tiny_model_file(
        tmp_path / "diagnosis.safetensors", tasks={"diagnosis": [value for value, *_ in CHOICES]}
    )
    version = model_version_register(
        project=project, task=task, uploaded_path=model_file, name="diag-tiny-v1", created_by=None
    )
    model_version_activate(model_version=version)
    if scored:
        model_version_score_frames(model_version=version)
    ordered = list(queue_frames(task=task).values_list("pk", flat=True))
    return AiProject(project=project, task=task, version=version, frames=ordered)


def record_requests(page: Page) -> list[str]:
    seen: list[str] = []

    def on_request(request: Request) -> None:
        seen.append(f"{request.method} {request.url}")

    page.on("request", on_request)
    return seen


def canvas_alpha(page: Page) -> dict[str, Any]:
    """The CAM canvas as drawn: its size, whether it is shown, and the sum of its pixels' alpha."""
    return page.evaluate(
        """() => {
            const canvas = document.querySelector("canvas.cam-overlay");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let alpha = 0;
            for (let i = 3; i < data.length; i += 4) alpha += data[i];
            return { width: canvas.width, height: canvas.height, hidden: canvas.hidden, alpha };
        }"""
    )


def open_workspace(page: Page, base: str, setup: AiProject) -> None:
    log_in(page, base, "expert", next_path=f"/label/{setup.project.pk}/{setup.task.pk}")
    expect_frame(page, setup.frames[0])


def test_a_reader_sees_the_prediction_and_the_cam_and_the_exposure_is_stored(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    setup = ai_project(tmp_path, ai_assistance=Project.AiAssistance.PREDICTION_AND_CAM)
    first, second = setup.frames[:2]
    prediction = Prediction.objects.get(frame_id=first, model_version=setup.version)
    requests = record_requests(page)
    open_workspace(page, str(live_server), setup)

    assert prediction.confidence is not None
    shown = page.locator(".prediction.current")
    expect(shown.locator(".prediction-class")).to_contain_text(LABELS[prediction.predicted_value])
    # Whole percent, rounded half up as the page's Math.round does (3 classes: at least 34 %).
    percent = math.floor(prediction.confidence * 100 + 0.5)
    expect(shown.locator(".prediction-probability")).to_have_text(f"{percent} %")
    expect(shown.locator(".model-name")).to_have_text("diag-tiny-v1")
    expect(shown.locator(".distribution li")).to_have_count(3)
    # The CAM is hidden at first (the reader's first look is their own), one key away.
    expect(page.locator("canvas.cam-overlay")).to_be_hidden()
    expect(page.locator(".cam-toggle")).not_to_be_checked()
    page.keyboard.press("?")
    expect(page.locator(".modal.help")).to_contain_text("Show or hide the model's CAM over the frame")
    docs_screenshot(page, "help-overlay")
    page.keyboard.press("Escape")

    page.keyboard.press("Shift+M")
    canvas = page.locator("canvas.cam-overlay")
    expect(canvas).to_be_visible()
    expect(page.locator(".stage")).to_have_attribute("data-cam", "on")
    docs_screenshot(page, "workspace-ai-cam")
    # The CAM spans the whole frame: the canvas lies exactly over the image, whatever the zoom.
    page.keyboard.press("+")
    page.keyboard.press("Shift+ArrowLeft")
    image_box = page.locator("img.frame-image").bounding_box()
    canvas_box = canvas.bounding_box()
    assert image_box is not None and canvas_box is not None
    for key in ("x", "y", "width", "height"):
        assert abs(image_box[key] - canvas_box[key]) < 1, (key, image_box, canvas_box)

    half = canvas_alpha(page)
    assert max(half["width"], half["height"]) <= 224 and half["alpha"] > 0
    page.locator(".cam-opacity input").fill("100")
    full = canvas_alpha(page)
    assert full["alpha"] > half["alpha"] * 1.5
    page.keyboard.press(",")  # 90 %
    expect(page.locator(".cam-opacity .opacity-readout")).to_have_text("90 %")
    assert canvas_alpha(page)["alpha"] < full["alpha"]
    page.wait_for_timeout(600)  # the reader studies the heatmap
    page.keyboard.press("h")

    # The next frame opens with its CAM hidden again; labelled at once, with the prediction seen.
    expect_frame(page, second)
    expect(page.locator("canvas.cam-overlay")).to_be_hidden()
    expect(page.locator(".prediction.current .prediction-class")).to_be_visible()
    page.keyboard.press("n")
    expect_frame(page, setup.frames[2])
    expect_saved(page)

    stored = {a.frame_id: a for a in Annotation.objects.filter(task=setup.task)}
    assert (stored[first].value, stored[first].ai_shown) == ("healthy", True)
    assert 500 <= stored[first].cam_visible_ms < 60_000
    assert (stored[second].value, stored[second].ai_shown, stored[second].cam_visible_ms) == (
        "neoplastic",
        True,
        0,
    )
    # The opacity is remembered for the next visit.
    assert page.evaluate("localStorage.getItem('clear.camOpacity')") == "0.9"
    # Every frame was scored: nothing was predicted on demand.
    assert not [r for r in requests if "/predict/" in r]


def test_in_a_hidden_project_the_reader_sees_no_model_output_and_none_is_requested(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    setup = ai_project(tmp_path, ai_assistance=Project.AiAssistance.HIDDEN)
    requests = record_requests(page)
    # The context loads beside the frame and nothing on screen waits for it in a hidden project,
    # so the test waits for its answer (a CI run once reached the assertions before it came).
    with page.expect_response(lambda response: "/api/label-context/" in response.url) as first_context:
        open_workspace(page, str(live_server), setup)
    context = first_context.value.json()

    expect(page.locator(".panel.model")).to_be_hidden()
    page.keyboard.press("Shift+M")
    expect(page.locator("canvas.cam-overlay")).to_be_hidden()
    page.keyboard.press("u")
    expect_frame(page, setup.frames[1])
    expect_saved(page)
    docs_screenshot(page, "workspace")

    assert not [r for r in requests if any(part in r for part in ("/predictions/", "/predict/", "/cam/"))]
    assert context["frames"] and all(row["predictions"] == [] for row in context["frames"])
    annotation = Annotation.objects.get(frame_id=setup.frames[0])
    assert (annotation.ai_shown, annotation.cam_visible_ms) == (False, 0)
    # Nor an upload-and-classify page.
    base = str(live_server)
    page.goto(f"{base}/projects/{setup.project.pk}")
    expect(page.locator("a.card[data-task]")).to_be_visible()
    expect(page.locator("a.classify-link")).to_have_count(0)
    page.goto(f"{base}/classify/{setup.project.pk}")
    expect(page.locator("[data-state=not-allowed]")).to_be_visible()


def test_a_prediction_only_project_shows_the_class_but_offers_no_cam(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    setup = ai_project(tmp_path, ai_assistance=Project.AiAssistance.PREDICTION)
    requests = record_requests(page)
    open_workspace(page, str(live_server), setup)

    expect(page.locator(".prediction.current .prediction-class")).to_be_visible()
    expect(page.locator(".cam-toggle")).to_have_count(0)
    expect(page.locator(".cam-opacity")).to_have_count(0)
    page.keyboard.press("Shift+M")
    expect(page.locator("canvas.cam-overlay")).to_be_hidden()
    page.keyboard.press("h")
    expect_frame(page, setup.frames[1])
    expect_saved(page)

    assert not [r for r in requests if "/cam/" in r]
    annotation = Annotation.objects.get(frame_id=setup.frames[0])
    assert (annotation.ai_shown, annotation.cam_visible_ms) == (True, 0)


def test_a_frame_without_a_stored_prediction_is_predicted_on_demand_only_on_screen_and_next(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    setup = ai_project(
        tmp_path, ai_assistance=Project.AiAssistance.PREDICTION_AND_CAM, frames=4, scored=False
    )
    requests = record_requests(page)
    open_workspace(page, str(live_server), setup)

    expect(page.locator(".prediction.current .prediction-class")).to_be_visible()
    expect(page.locator(".prediction.current .model-name")).to_have_text("diag-tiny-v1")
    predicted = {
        r.split("/api/frames/")[1].split("/")[0]
        for r in requests
        if r.startswith("POST") and "/predict/" in r
    }
    assert predicted <= {str(setup.frames[0]), str(setup.frames[1])} and str(setup.frames[0]) in predicted
    page.keyboard.press("Shift+M")
    expect(page.locator("canvas.cam-overlay")).to_be_visible()
    stored = Prediction.objects.get(frame_id=setup.frames[0], model_version=setup.version)
    expect(page.locator(".prediction.current .prediction-class")).to_contain_text(
        LABELS[stored.predicted_value]
    )
    assert not Prediction.objects.filter(frame_id__in=setup.frames[2:]).exists()


REAL_FRAME = (
    Path(__file__).resolve().parents[3]
    / "shared/realdata/amphybio_endomicroscopy-analysis/data-sample/comparative-sample/main/S01/1"
    / "S01V01_frames/S01V01_frame000.png"
)


def test_the_classify_page_classifies_a_real_pcle_frame_and_shows_its_cam_without_storing_anything(
    page: Page, live_server: object, app_built: Path, tmp_path: Path
) -> None:
    if not REAL_FRAME.is_file():
        pytest.fail(f"The real pCLE frame is missing: {REAL_FRAME}")
    setup = ai_project(
        tmp_path, ai_assistance=Project.AiAssistance.PREDICTION_AND_CAM, frames=1, scored=False
    )
    base = str(live_server)
    requests = record_requests(page)
    log_in(page, base, "expert", next_path=f"/projects/{setup.project.pk}")

    page.locator("a.classify-link").click()
    expect(page).to_have_url(f"{base}/classify/{setup.project.pk}")
    expect(page.locator("[data-privacy]")).to_contain_text("not stored")
    expect(page.locator("select.classify-task")).to_have_value("diagnosis")
    page.locator("input.classify-file").set_input_files(str(REAL_FRAME))
    expect(page.locator(".classify-view img")).to_be_visible()
    page.locator("button.classify-submit").click()

    result = page.locator(".classify-result [data-state=done]")
    expect(result.locator(".prediction-class")).to_be_visible()
    predicted = result.locator(".prediction-class").get_attribute("data-value")
    assert predicted in LABELS
    expect(result.locator(".prediction-class")).to_contain_text(LABELS[predicted])
    expect(result.locator(".distribution li")).to_have_count(3)
    expect(result.locator(".classify-elapsed")).to_contain_text("576\u00d7592 px")
    # The uploaded frame is a real pCLE sample: masked, so that only generated data reach the docs.
    docs_screenshot(page, "classify", mask=[page.locator(".classify-view img")])
    canvas = page.locator(".classify-view canvas.cam-overlay")
    expect(canvas).to_be_visible()
    image_box = page.locator(".classify-view img").bounding_box()
    canvas_box = canvas.bounding_box()
    assert image_box is not None and canvas_box is not None
    assert (
        abs(image_box["width"] - canvas_box["width"]) < 1
        and abs(image_box["height"] - canvas_box["height"]) < 1
    )

    def alpha() -> int:
        return int(
            page.evaluate(
                """() => {
                    const c = document.querySelector(".classify-view canvas.cam-overlay");
                    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                    let a = 0;
                    for (let i = 3; i < d.length; i += 4) a += d[i];
                    return a;
                }"""
            )
        )

    page.locator(".cam-opacity input").fill("20")
    low = alpha()
    page.locator(".cam-opacity input").fill("100")
    assert alpha() > low * 3 > 0
    page.locator(".cam-opacity input").fill("0")
    expect(canvas).to_be_hidden()

    posts = [r for r in requests if r.startswith("POST") and "/api/" in r and "/auth/" not in r]
    assert posts == [f"POST {base}/api/projects/{setup.project.pk}/classify/"]
    assert not Prediction.objects.exists()  # nothing stored
