"""The model training pages end to end: headless Chromium, the live server and PostgreSQL.

A coordinator follows "Model training" from the project page and fills the form with tiny settings
(a CNN-LSTM on 32 px frames, two epochs) for three patients whose frames show their class in their
texture. A k-fold split with more folds than patients is refused first: the API's message shows
beside the form and nothing is stored. Leave-one-patient-out is accepted and opens the run page,
queued. The job then runs here, in the test's process (as a gpu worker would run it); the page, by
its polling, shows it succeeded, the fold table with the numbers stored on the run, the plots drawn
from them, and promotes the candidate with a re-score. A reader is refused the page.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from inference.models import ModelVersion, TrainingRun
from inference.tasks import _run_training
from inference.training import training_run_create
from jobs.models import Job
from jobs.services import job_run
from records.models import Frame
from tests.browser.labelling import PASSWORD, log_in
from tests.factories import LabelChoiceFactory, MembershipFactory, UserFactory
from tests.inference_app.training_support import diagnosis_task, texture_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EN_DASH = "\u2013"


def as_page_writes(value: float | None) -> str:
    """A number as the page writes it (studyformat.formatNumber: two decimals, halves away from zero,
    as JavaScript's toFixed rounds the exact binary value); a dash where it is missing."""
    if value is None:
        return "\u2014"
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def estimate_text(entry: dict[str, Any]) -> str:
    value, low, high = entry["value"], entry["ci_low"], entry["ci_high"]
    if low is None or high is None:
        return as_page_writes(value)
    return f"{as_page_writes(value)} ({as_page_writes(low)}{EN_DASH}{as_page_writes(high)})"


def test_coordinator_trains_follows_and_promotes_a_model(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    coordinator = UserFactory.create(username="coord", password=PASSWORD)
    project = MembershipFactory.create(
        user=coordinator, role="coordinator", project__name="CLE training"
    ).project
    reader = UserFactory.create(username="reader", password=PASSWORD)
    MembershipFactory.create(user=reader, project=project, role="reader")
    task = diagnosis_task(project)
    texture_dataset(project, patients=3, per_class=1)

    log_in(page, base, "coord", next_path=f"/projects/{project.pk}")
    page.click("a.training-link")
    expect(page).to_have_url(f"{base}/training/{project.pk}")
    expect(page.locator(".runs-empty")).to_be_visible()
    form = page.locator("form.training-form")
    expect(form.locator("[name=task]")).to_have_value(str(task.pk))
    form.locator("[name=name]").fill("texture lopo")
    form.locator("[name=label_source]").select_option("reference")
    form.locator("[name=architecture]").fill("cnn_lstm")
    form.locator("[name=input_size]").fill("32")
    form.locator("[name=epochs]").fill("2")
    form.locator("[name=batch_size]").fill("8")
    # The positive class defaults to the second of two choices, as the API does.
    expect(form.locator("[name=positive] option").first).to_have_text("default (neoplastic)")

    # An export to learn from is offered once chosen as the source; none is ready, and the API says
    # what is missing.
    expect(form.locator("[name=export]")).to_be_hidden()
    form.locator("[name=label_source]").select_option("export")
    expect(form.locator("[name=export] option")).to_have_text(["no ready export of this task"])
    form.locator("button.start-training").click()
    expect(form.locator('[data-error-for="label_source"]')).to_contain_text(
        "Give a label source, or an export"
    )
    form.locator("[name=label_source]").select_option("reference")
    expect(form.locator("[name=export]")).to_be_hidden()

    # Five folds of three patients: refused, with the API's message beside the evaluation settings.
    form.locator("[name=scheme]").select_option("kfold")
    form.locator("[name=k]").fill("5")
    form.locator("button.start-training").click()
    refusal = form.locator('[data-error-for="evaluation"]')
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("5")
    expect(form.locator('[data-error-for="label_source"]')).to_be_hidden()
    expect(form.locator(".training-errors")).to_contain_text("nothing was stored")
    expect(form.locator(".training-errors li")).to_have_count(1)
    expect(page).to_have_url(f"{base}/training/{project.pk}")
    assert TrainingRun.objects.count() == 0 and Job.objects.count() == 0

    # Leave one patient out: accepted, and the run's page opens, queued.
    form.locator("[name=scheme]").select_option("lopo")
    expect(form.locator("[name=k]")).to_be_hidden()
    form.locator("button.start-training").click()
    expect(page).to_have_url(re.compile(rf"{base}/training/{project.pk}/\d+$"))
    run = TrainingRun.objects.get()
    assert page.url.endswith(f"/training/{project.pk}/{run.pk}")
    assert run.config["architecture"] == "cnn_lstm" and run.config["epochs"] == 2
    assert run.evaluation["scheme"] == "lopo" and run.label_source == "reference"
    badge = page.locator(".run-title .job-status")
    expect(badge).to_have_attribute("data-status", "queued")
    expect(page.locator(".job-progress")).to_have_text("Waiting for a GPU worker")
    expect(page.locator(".run-dataset [data-frames]")).to_have_text("6")
    expect(page.locator(".run-dataset .snapshot-id")).to_have_text(run.dataset_snapshot_id)
    expect(page.locator(".run-settings [data-term=Evaluation]")).to_contain_text("Leave one patient out")
    expect(page.locator(".no-folds")).to_be_visible()

    # The job runs here, as a gpu worker would run it; the page finds out by polling.
    assert job_run(job_id=run.job_id, work=_run_training) is True
    run.refresh_from_db()
    assert Job.objects.get(pk=run.job_id).status == Job.Status.SUCCEEDED
    expect(badge).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(page.locator(".job-progress")).to_have_text("8 / 8 epochs (100 %)")
    expect(page.locator(".stop-run")).to_have_count(0)

    # The fold table: three folds (one patient each) and the summary, with the stored numbers.
    rows = page.locator(".fold-table tbody tr:not(.pooled)")
    expect(rows).to_have_count(3)
    assert len(run.folds) == 3
    first = run.folds[0]
    row = page.locator(f'.fold-table tr[data-fold="{first["name"]}"]')
    expect(row.locator('[data-measure="n_test"]')).to_have_text(str(first["n_test"]))
    expect(row.locator('[data-measure="test_patients"]')).to_have_text("1")
    expect(row.locator('[data-measure="accuracy"]')).to_have_text(estimate_text(first["metrics"]["accuracy"]))
    expect(row.locator('[data-measure="brier"]')).to_have_text(as_page_writes(first["metrics"]["brier"]))
    summary = page.locator('.fold-table tr[data-fold="summary"]')
    accuracy = run.summary["accuracy"]
    mean_sd = as_page_writes(accuracy["mean"]) + (
        f" ± {as_page_writes(accuracy['std'])}" if accuracy["std"] is not None else ""
    )
    expect(summary.locator('[data-measure="accuracy"]')).to_have_text(mean_sd)

    # The plots: a ROC path per fold that has one, training curves per fold and for the final model,
    # the pooled reliability diagram, the summed confusion matrix, a dot per patient, the histogram.
    with_roc = [fold for fold in run.folds if fold["metrics"]["roc_curve"]]
    assert with_roc, "every held-out patient has a frame of each class"
    expect(page.locator("svg[data-plot=roc] path.roc-curve")).to_have_count(len(with_roc))
    expect(page.locator("svg[data-plot=loss] path.curve")).to_have_count(4)
    expect(page.locator("svg[data-plot=accuracy] path.curve")).to_have_count(4)
    assert page.locator("svg[data-plot=loss] path.curve").first.get_attribute("d")
    expect(page.locator("svg[data-plot=calibration] path.calibration-line")).to_have_count(1)
    expect(page.locator("svg[data-plot=per-patient] circle.patient-dot")).to_have_count(3)
    total = sum(sum(row) for fold in run.folds for row in fold["metrics"]["confusion_matrix"])
    counts = page.locator("table.confusion td[data-count]").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.count))"
    )
    assert sum(counts) == total == 6
    bars = page.locator("svg[data-plot=confidence] rect.hist-bar").evaluate_all(
        "bars => bars.map(b => Number(b.dataset.count))"
    )
    assert sum(bars) == 6

    # Promotion with a re-score: the version becomes active and its re-score job shows.
    version = run.model_version
    assert version is not None and version.status == ModelVersion.Status.CANDIDATE
    expect(page.locator(".model-version")).to_have_attribute("data-status", "candidate")
    expect(page.locator(".rescore-all")).to_be_checked()
    page.click("button.promote")
    expect(page.locator(".model-version")).to_have_attribute("data-status", "active")
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.ACTIVE
    rescore = Job.objects.get(kind="inference.rescore")
    expect(page.locator(".rescore-job")).to_have_attribute("data-job", str(rescore.pk))
    expect(page.locator(".rescore-job")).to_contain_text(f"Re-score job #{rescore.pk}")

    # The list shows the run; leaving the page stops its polling (the next page's requests only).
    page.click("a.back-to-training")
    expect(page.locator(f'.runs-table tr[data-run="{run.pk}"] .job-status')).to_have_attribute(
        "data-status", "succeeded"
    )
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.wait_for_timeout(2500)
    assert not [url for url in requests if "/api/jobs/" in url or f"/api/training-runs/{run.pk}/" in url]

    # A reader: no link on the project page, and not allowed on the training page.
    page.context.clear_cookies()
    log_in(page, base, "reader", next_path=f"/projects/{project.pk}")
    expect(page.locator("h1")).to_contain_text("CLE training")
    expect(page.locator("a.training-link")).to_have_count(0)
    page.goto(f"{base}/training/{project.pk}")
    expect(page.locator("[data-state=not-allowed]")).to_be_visible()
    page.goto(f"{base}/training/{project.pk}/{run.pk}")
    expect(page.locator("[data-state=not-allowed]")).to_be_visible()


def test_a_multi_class_run_shows_recall_per_class_and_a_queued_run_is_stopped(
    page: Page, live_server: object, app_built: Path
) -> None:
    base = str(live_server)
    coordinator = UserFactory.create(username="coord", password=PASSWORD)
    project = MembershipFactory.create(user=coordinator, role="coordinator").project
    task = diagnosis_task(project)
    LabelChoiceFactory.create(task=task, value="unclear", order=2)
    frames = texture_dataset(project, patients=3, per_class=1)
    # The first patient's smooth frame becomes "unclear": three classes present, none positive.
    Frame.objects.filter(pk=frames[0].pk).update(reference_label="unclear")
    settings = {"architecture": "cnn_lstm", "input_size": 32, "epochs": 1, "batch_size": 8}
    multi = training_run_create(
        project=project,
        task=task,
        name="three classes",
        label_source="reference",
        config=settings,
        evaluation={"scheme": "lopo"},
        created_by=None,
    )
    assert multi.positive == "" and multi.labels == ["healthy", "neoplastic", "unclear"]
    assert job_run(job_id=multi.job_id, work=_run_training) is True
    queued = training_run_create(
        project=project,
        task=task,
        name="to stop",
        label_source="reference",
        config=settings,
        evaluation={"scheme": "lopo"},
        created_by=None,
    )

    log_in(page, base, "coord", next_path=f"/training/{project.pk}/{multi.pk}")
    expect(page.locator(".run-title .job-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".fold-table tbody tr:not(.pooled)")).to_have_count(3)
    expect(page.locator(".fold-table thead th")).to_contain_text(["Recall healthy", "Recall unclear"])
    expect(page.locator('.fold-table [data-measure="sensitivity"]')).to_have_count(0)
    expect(page.locator("svg[data-plot=roc]")).to_have_count(0)
    expect(page.locator("table.confusion tbody tr")).to_have_count(3)
    expect(page.locator("svg[data-plot=per-patient] circle.patient-dot")).to_have_count(3)

    # The queued run: Stop cancels its job, and the page says so without polling on.
    page.goto(f"{base}/training/{project.pk}/{queued.pk}")
    badge = page.locator(".run-title .job-status")
    expect(badge).to_have_attribute("data-status", "queued")
    page.click("button.stop-run")
    expect(badge).to_have_attribute("data-status", "cancelled")
    expect(page.locator(".stop-run")).to_have_count(0)
    expect(page.locator(".no-model")).to_have_text("No model: the run did not finish.")
    assert Job.objects.get(pk=queued.job_id).status == Job.Status.CANCELLED
    assert not ModelVersion.objects.filter(name="to stop").exists()
