"""Training runs: a small model learns a class-dependent texture and is judged on patients it never
saw (issue 7 item 7), every split keeps patients on one side, the run freezes its dataset and
registers one self-describing candidate, synthetic bad-quality frames teach a quality model, bad
settings are refused whole, and a run can be stopped or taken over after a lost worker."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from annotations.splits import SplitItem
from inference.ml.model_files import load_model_file
from inference.ml.training import degrade
from inference.models import ModelVersion, TrainingRun
from inference.tasks import _run_training
from inference.training import TrainingRejected, _split_items, evaluation_plan, training_run_create
from jobs.models import Job
from jobs.services import job_cancel, job_run
from records import media
from records.models import Frame, Project
from tests.factories import LabelChoiceFactory, LabelTaskFactory, ProjectFactory
from tests.inference_app.training_support import diagnosis_task, texture_dataset
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db

SMALL = {
    "architecture": "cnn_lstm",
    "input_size": 32,
    "epochs": 25,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "seed": 1,
    "augmentation": {"horizontal_flip": True, "vertical_flip": True, "rotation_degrees": 10},
}


def run_job(run: TrainingRun, **kwargs: Any) -> Job:
    assert job_run(job_id=run.job_id, work=_run_training, **kwargs) is True
    job = Job.objects.get(pk=run.job_id)
    run.refresh_from_db()
    return job


def test_a_small_model_learns_the_texture_and_is_judged_on_held_out_patients(
    django_capture_on_commit_callbacks: Any,
) -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=8, per_class=6)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = training_run_create(
            project=project,
            task=task,
            name="texture-cv",
            label_source="reference",
            config=SMALL,
            evaluation={"scheme": "kfold", "k": 4, "seed": 0},
            created_by=None,
        )
    assert len(queued) == 1  # enqueued after commit
    assert run.labels == ["healthy", "neoplastic"] and run.positive == "neoplastic"
    assert run.dataset_summary["frames"] == 96 and run.dataset_summary["patients"] == 8

    job = run_job(run)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == 25 * 5  # four folds and the final model
    assert [fold["name"] for fold in run.folds] == ["fold_0", "fold_1", "fold_2", "fold_3"]
    held_out = [patient for fold in run.folds for patient in fold["test_patients"]]
    assert len(held_out) == len(set(held_out)) == 8  # each patient held out exactly once
    for fold in run.folds:
        metrics = fold["metrics"]
        assert metrics["n_frames"] == 24 and metrics["n_patients"] == 2
        assert {
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "f1",
            "auroc",
            "pr_auc",
            "brier",
            "calibration",
        } <= set(metrics)
        assert np.array(metrics["confusion_matrix"]).sum() == 24
        assert (
            sum(metrics["confidence_histogram"]["correct"]) + sum(metrics["confidence_histogram"]["wrong"])
            == 24
        )
        assert (
            len(fold["history"]) == 25
            and fold["history"][0]["train_loss"] > fold["history"][-1]["train_loss"]
        )
    # The learning itself: held-out patients' frames are told apart.
    assert run.summary["auroc"]["mean"] > 0.9, run.summary
    assert run.summary["auroc"]["n_folds"] == 4 and run.summary["auroc"]["std"] is not None
    assert len(run.summary["per_patient_accuracy"]["patients"]) == 8

    version = run.model_version
    assert version is not None and version.status == ModelVersion.Status.CANDIDATE
    assert ModelVersion.objects.filter(project=project).count() == 1
    loaded = load_model_file(media.cached_local_path(version.file))
    assert loaded.metadata.dataset_snapshot_id == run.dataset_snapshot_id
    assert loaded.metadata.training_config["training_run"] == run.pk
    assert loaded.metadata.training_config["evaluation"]["scheme"] == "kfold"
    assert loaded.metadata.labels == ["healthy", "neoplastic"]
    # A second delivery of the finished job changes nothing.
    assert job_run(job_id=run.job_id, work=_run_training) is False
    assert ModelVersion.objects.filter(project=project).count() == 1


@pytest.mark.parametrize(
    "evaluation",
    [
        {"scheme": "kfold", "k": 3, "seed": 5},
        {"scheme": "lopo"},
        {"scheme": "ratio", "train": 0.5, "val": 0.25, "test": 0.25, "seed": 2},
        {"scheme": "external", "field": "site", "values": ["ileum"]},
    ],
)
@pytest.mark.parametrize("early_stopping", [0, 3])
def test_no_patient_is_on_two_sides_of_any_split(evaluation: dict[str, Any], early_stopping: int) -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=8, per_class=1)
    run = training_run_create(
        project=project,
        task=task,
        name="splits",
        label_source="reference",
        config={**SMALL, "early_stopping_patience": early_stopping},
        evaluation=evaluation,
        created_by=None,
    )
    items: list[SplitItem] = _split_items([_row(pair) for pair in run.dataset])
    folds, final = evaluation_plan(run, items)
    for fold in [*folds, final]:
        sides = {name: {items[i].group for i in getattr(fold, name)} for name in ("train", "val", "test")}
        assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        assert sides["train"], fold
        assert bool(sides["val"]) == bool(early_stopping) or evaluation["scheme"] == "ratio"
    tested = [items[i].group for fold in folds for i in fold.test]
    if evaluation["scheme"] in ("kfold", "lopo"):
        assert set(tested) == {item.group for item in items}  # every patient held out once
    if evaluation["scheme"] == "external":
        assert {items[i].attributes["site"] for fold in folds for i in fold.test} == {"ileum"}
        assert {items[i].attributes["site"] for i in final.train + final.val} == {"colon"}


def _row(pair: list[Any]) -> Any:
    from inference.training import DatasetRow

    return DatasetRow(pair[0], pair[1])


def test_synthetic_bad_quality_frames_teach_a_quality_model_and_stay_out_of_the_test_folds() -> None:
    project: Project = ProjectFactory.create()
    task = LabelTaskFactory.create(project=project, key="quality", name="Quality")
    LabelChoiceFactory.create(task=task, value="good", order=0)
    LabelChoiceFactory.create(task=task, value="bad", order=1)
    # Sharp frames only (the striped texture): a blurred smooth frame would still be a good one.
    frames = [
        frame
        for frame in texture_dataset(project, patients=6, per_class=5)
        if frame.reference_label != "healthy"
    ]
    Frame.objects.filter(reference_label="healthy").delete()
    Frame.objects.update(reference_label="good")
    run = training_run_create(
        project=project,
        task=task,
        name="quality",
        label_source="reference",
        # A small CNN: the CNN-LSTM hardly sees a change of brightness (its loss stays near ln 2 here).
        config={**SMALL, "architecture": "resnet10t", "epochs": 20, "batch_size": 8, "augmentation": {}},
        evaluation={"scheme": "ratio", "train": 0.67, "val": 0.0, "test": 0.33, "seed": 0},
        synthetic={"good": "good", "bad": "bad", "kinds": ["blur", "brightness"], "per_good_frame": 1},
        created_by=None,
    )
    assert run.labels == ["good", "bad"] and run.dataset_summary["per_class"] == {"good": 30}

    job = run_job(run)

    assert job.status == Job.Status.SUCCEEDED, job.error
    (fold,) = run.folds
    assert fold["n_synthetic"] == fold["n_train"] > 0
    # The test frames are real ones only: all good.
    assert fold["metrics"]["class_counts"] == [fold["n_test"], 0]
    # The model flags degraded versions of the held-out patients' frames and passes the originals.
    loaded = load_model_file(media.cached_local_path(run.model_version.file))  # type: ignore[union-attr]
    from inference.ml.predict import predict_frames

    test_frames = [f for f in frames if f.examination.patient.pseudonym in fold["test_patients"]]
    originals = [Image.open(media.open_file(f.file)) for f in test_frames]
    rng = random.Random(7)
    degraded = [
        degrade(image, kind, rng) for image, kind in zip(originals, ["blur", "brightness"] * 20, strict=False)
    ]
    bad_index = loaded.metadata.labels.index("bad")
    said_bad = [p.predicted_class == bad_index for p in predict_frames(loaded.model, degraded)]
    said_good = [p.predicted_class != bad_index for p in predict_frames(loaded.model, originals)]
    assert np.mean(said_bad) >= 0.75 and np.mean(said_good) >= 0.75, (
        said_bad,
        said_good,
        fold["history"][-3:],
    )


def test_bad_settings_are_refused_whole_and_nothing_is_stored() -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=3, per_class=1)
    coordinator = client_for(member_of(project, Role.COORDINATOR))
    body = {
        "project": project.pk,
        "task": task.pk,
        "name": "bad",
        "label_source": "reference",
        "config": SMALL,
        "evaluation": {"scheme": "kfold", "k": 3},
    }
    refusals: dict[str, dict[str, Any]] = {
        "architecture": {"config": {**SMALL, "architecture": "no_such_net"}},
        "optimizer": {"config": {**SMALL, "optimizer": "lbfgs"}},
        "unknown setting": {"config": {**SMALL, "momentum": 0.9}},
        "weights file": {"config": {**SMALL, "pretrained_file": "../../etc/passwd"}},
        "scheme": {"evaluation": {"scheme": "random_frames"}},
        "more folds than patients": {"evaluation": {"scheme": "kfold", "k": 5}},
        "label source": {"label_source": "ai"},
        "positive": {"positive": "inflamed"},
        "synthetic": {"synthetic": {"good": "healthy", "bad": "healthy"}},
    }
    for name, change in refusals.items():
        response = coordinator.post("/api/training-runs/", {**body, **change}, format="json")
        assert response.status_code == 400, (name, response.content)
    assert TrainingRun.objects.count() == 0 and Job.objects.count() == 0

    reader = client_for(member_of(project, Role.READER))
    assert reader.post("/api/training-runs/", body, format="json").status_code == 403
    stranger = client_for(member_of(ProjectFactory.create(), Role.COORDINATOR))
    assert stranger.post("/api/training-runs/", body, format="json").status_code == 404
    accepted = coordinator.post("/api/training-runs/", body, format="json")
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["job"]["status"] == "queued"
    assert reader.get(f"/api/training-runs/{accepted.json()['id']}/").status_code == 404
    assert "efficientnet_lite0-imagenet" in coordinator.get("/api/pretrained-weights/").json()


def test_a_run_stops_when_cancelled_and_registers_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=4, per_class=2)
    kwargs: dict[str, Any] = {
        "project": project,
        "task": task,
        "label_source": "reference",
        "config": SMALL,
        "evaluation": {"scheme": "kfold", "k": 2},
        "created_by": None,
    }
    queued = training_run_create(name="queued", **kwargs)
    job_cancel(job_id=queued.job_id)
    assert Job.objects.get(pk=queued.job_id).status == Job.Status.CANCELLED
    assert job_run(job_id=queued.job_id, work=_run_training) is False  # the message comes later

    running = training_run_create(name="running", **kwargs)
    monkeypatch.setattr("jobs.services.CancelCheck.__init__", _check_every_call)
    Job.objects.filter(pk=running.job_id).update(cancel_requested_at="2026-12-04T10:00:00Z")
    job = run_job(running)
    assert job.status == Job.Status.CANCELLED and job.message == "Cancelled by a user."
    assert running.model_version is None and running.folds == []
    assert ModelVersion.objects.count() == 0


def _check_every_call(self: Any, job_id: int, *, interval: float = 2.0) -> None:
    self.job_id, self.interval, self._last = job_id, 0.0, 0.0


def test_a_run_taken_over_after_a_lost_worker_goes_on_after_its_last_saved_fold() -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=4, per_class=2)
    run = training_run_create(
        project=project,
        task=task,
        name="resumed",
        label_source="reference",
        config={**SMALL, "epochs": 3},
        evaluation={"scheme": "kfold", "k": 2},
        created_by=None,
    )
    # The lost worker finished fold 0 (saved on the run) and died training fold 1.
    first = run_job(run)
    assert first.status == Job.Status.SUCCEEDED
    fold_0 = {**run.folds[0], "marker": "from the lost worker"}
    ModelVersion.objects.all().delete()
    TrainingRun.objects.filter(pk=run.pk).update(folds=[fold_0], summary={}, history=[])
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.RUNNING, heartbeat_at=None)

    job = run_job(run, redelivered=True)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert [fold["name"] for fold in run.folds] == ["fold_0", "fold_1"]
    assert run.folds[0]["marker"] == "from the lost worker"  # not trained again
    assert job.progress_done == job.progress_total == 3 * 3
    assert ModelVersion.objects.count() == 1 and run.model_version is not None


def test_promoting_a_candidate_can_queue_a_rescore(django_capture_on_commit_callbacks: Any) -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=3, per_class=1)
    run = training_run_create(
        project=project,
        task=task,
        name="to promote",
        label_source="reference",
        config={**SMALL, "epochs": 1},
        evaluation={"scheme": "lopo"},
        created_by=None,
    )
    run_job(run)
    assert run.model_version is not None
    coordinator: APIClient = client_for(member_of(project, Role.COORDINATOR))
    with django_capture_on_commit_callbacks(execute=False):
        response = coordinator.post(
            f"/api/model-versions/{run.model_version.pk}/activate/", {"rescore": True}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "active" and body["rescore_job"]["kind"] == "inference.rescore"
    detail = coordinator.get(f"/api/training-runs/{run.pk}/").json()
    assert detail["model_version"] == run.model_version.pk and len(detail["folds"]) == 3
    assert detail["job"]["status"] == "succeeded"


@pytest.mark.parametrize("fmt", ["imagefolder", "csv"])
def test_a_run_learns_from_an_export_snapshot_and_records_its_hash(fmt: str) -> None:
    from annotations.datasets import LabelSource
    from annotations.splits import KFoldSplit
    from tests.exports.support import build_export, export_params

    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    texture_dataset(project, patients=6, per_class=2)
    holder = type("Holder", (), {"project": project, "task": task})()
    export = build_export(
        export_params(holder, format=fmt, label_source=LabelSource.REFERENCE, split=KFoldSplit(k=3, seed=4))
    )
    assert export.status == "ready", export.error

    run = training_run_create(
        project=project,
        task=task,
        name="from the export",
        label_source="",
        export=export,
        config={**SMALL, "epochs": 2},
        evaluation={"scheme": "export"},
        created_by=None,
    )
    assert run.label_source == "export" and run.export_snapshot_id == export.pk
    assert run.dataset_snapshot_id == export.snapshot_hash  # the snapshot id the run records
    assert run.dataset_summary["frames"] == 24 and run.dataset_summary["missing_frames"] == 0
    assert {row[2] for row in run.dataset} == {"fold_0", "fold_1", "fold_2"}

    job = run_job(run)
    assert job.status == Job.Status.SUCCEEDED, job.error
    # Evaluated on the export's own folds: the same patients held out as the export put them.
    frames = {frame.pk: frame for frame in Frame.objects.select_related("examination__patient")}
    for fold in run.folds:
        exported = {
            frames[row[0]].examination.patient.pseudonym for row in run.dataset if row[2] == fold["name"]
        }
        assert set(fold["test_patients"]) == exported
    loaded = load_model_file(media.cached_local_path(run.model_version.file))  # type: ignore[union-attr]
    assert loaded.metadata.dataset_snapshot_id == export.snapshot_hash

    # Through the API too (and only with an export the caller may see).
    coordinator = client_for(member_of(project, Role.COORDINATOR))
    body = {
        "project": project.pk,
        "task": task.pk,
        "name": "api",
        "config": SMALL,
        "evaluation": {"scheme": "export"},
    }
    accepted = coordinator.post("/api/training-runs/", {**body, "export": export.pk}, format="json")
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["export_snapshot"] == export.pk
    assert (
        coordinator.post(
            "/api/training-runs/", {**body, "export": export.pk + 999}, format="json"
        ).status_code
        == 400
    )
    assert coordinator.post("/api/training-runs/", body, format="json").status_code == 400  # neither source

    # The export's split is only for runs that learn from an export; an export of another task is refused.
    with pytest.raises(TrainingRejected):
        training_run_create(
            project=project, task=task, name="x", label_source="reference", config=SMALL,
            evaluation={"scheme": "export"}, created_by=None,
        )  # fmt: skip
    other = LabelTaskFactory.create(project=project, key="quality")
    LabelChoiceFactory.create(task=other, value="good")
    LabelChoiceFactory.create(task=other, value="bad")
    with pytest.raises(TrainingRejected, match="not 'quality'"):
        training_run_create(
            project=project, task=other, name="x", label_source="", export=export, config=SMALL,
            evaluation={"scheme": "export"}, created_by=None,
        )  # fmt: skip
