"""The re-score job: every frame scored once with its CAM, resumable, never duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction
from inference.services import (
    RESCORE_JOB_KIND,
    model_version_register,
    model_version_score_frames,
    rescore_job_create,
)
from inference.tasks import _run_rescore, rescore_job
from jobs.models import Job
from jobs.services import job_run
from records.models import Frame, Project
from tests.factories import ExaminationFactory, ImageFrameFactory
from tests.inference_app.conftest import MakeModelFile

pytestmark = pytest.mark.django_db

FRAMES = 10


@pytest.fixture
def version(project: Project, quality_task: LabelTask, make_model_file: MakeModelFile) -> ModelVersion:
    return model_version_register(
        project=project, task=quality_task, uploaded_path=make_model_file(), name="v1", created_by=None
    )


@pytest.fixture
def frames(project: Project) -> list[Frame]:
    examination = ExaminationFactory.create(patient__project=project)
    # Half of them with a field-of-view crop box, as an import with cropping records it.
    return [
        ImageFrameFactory.create(examination=examination, crop_box=[4, 4, 44, 36] if i % 2 else None)
        for i in range(FRAMES)
    ]


def _progress_log() -> tuple[list[tuple[int, int | None, str]], object]:
    calls: list[tuple[int, int | None, str]] = []
    return calls, lambda done, total, message: calls.append((done, total, message))


def test_every_frame_is_scored_once_with_a_cam_aligned_to_the_frame(
    version: ModelVersion, frames: list[Frame], media_root: Path
) -> None:
    calls, progress = _progress_log()

    result = model_version_score_frames(model_version=version, batch_size=4, progress=progress)  # type: ignore[arg-type]

    assert result["frames_scored"] == FRAMES and result["frames_skipped"] == 0
    assert "10 frames scored" in result["summary"]
    predictions = Prediction.objects.filter(model_version=version)
    assert sorted(predictions.values_list("frame_id", flat=True)) == sorted(frame.pk for frame in frames)
    for prediction in predictions:
        assert prediction.task_id == version.task_id
        assert len(prediction.probabilities) == 2
        assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert prediction.confidence == max(prediction.probabilities)
        best = prediction.probabilities.index(prediction.confidence)
        assert prediction.predicted_value == ["good", "bad"][best]
        assert prediction.cam_file.startswith("cams/") and prediction.cam_file.endswith(".png")
        with Image.open(media_root / prediction.cam_file) as cam:
            assert cam.format == "PNG" and cam.mode == "L" and cam.size == (48, 40)
    assert calls[-1][:2] == (FRAMES, FRAMES)


def test_the_cam_is_zero_outside_the_crop_box(
    version: ModelVersion, frames: list[Frame], media_root: Path
) -> None:
    model_version_score_frames(model_version=version)
    cropped = Prediction.objects.get(frame=frames[1])

    with Image.open(media_root / cropped.cam_file) as cam:
        pixels = cam.load()
        assert pixels is not None
        assert all(pixels[x, 0] == 0 for x in range(48))  # the top 4 rows are outside the box


def test_a_second_run_scores_nothing_and_duplicates_nothing(
    version: ModelVersion, frames: list[Frame]
) -> None:
    model_version_score_frames(model_version=version, batch_size=3)
    before = list(Prediction.objects.order_by("id").values_list("id", "frame_id", "probabilities"))

    again = model_version_score_frames(model_version=version, batch_size=3)

    assert again["frames_scored"] == 0 and again["frames_skipped"] == FRAMES
    assert list(Prediction.objects.order_by("id").values_list("id", "frame_id", "probabilities")) == before


def test_a_run_after_some_predictions_are_gone_scores_only_those(
    version: ModelVersion, frames: list[Frame]
) -> None:
    model_version_score_frames(model_version=version)
    gone = [frames[0].pk, frames[5].pk, frames[9].pk]
    Prediction.objects.filter(frame_id__in=gone).delete()
    kept = set(Prediction.objects.values_list("id", flat=True))

    result = model_version_score_frames(model_version=version, batch_size=4)

    assert result["frames_scored"] == 3 and result["frames_skipped"] == FRAMES - 3
    assert Prediction.objects.count() == FRAMES
    assert set(Prediction.objects.exclude(id__in=kept).values_list("frame_id", flat=True)) == set(gone)


def test_only_the_frames_of_the_given_examinations_and_project_are_scored(
    project: Project, version: ModelVersion, frames: list[Frame]
) -> None:
    other_examination = ExaminationFactory.create(patient__project=project)
    extra = ImageFrameFactory.create(examination=other_examination)
    ImageFrameFactory.create()  # another project's frame

    result = model_version_score_frames(model_version=version, examination_ids=[other_examination.pk])

    assert result["frames_scored"] == 1
    assert list(Prediction.objects.values_list("frame_id", flat=True)) == [extra.pk]


def test_the_job_is_queued_on_the_gpu_queue_after_commit_and_runs_once(
    version: ModelVersion, frames: list[Frame], django_capture_on_commit_callbacks, monkeypatch
) -> None:
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(rescore_job, "delay", lambda **kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = rescore_job_create(model_version=version, created_by=None)
    assert len(callbacks) == 1 and sent == [{"job_id": job.pk}]
    assert job.kind == RESCORE_JOB_KIND and job.project_id == version.project_id
    assert cast(Any, rescore_job).queue == "gpu"

    assert job_run(job_id=job.pk, work=_run_rescore) is True
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["frames_scored"] == FRAMES and job.progress_done == FRAMES
    # A second delivery of the finished job does nothing.
    assert job_run(job_id=job.pk, work=_run_rescore) is False
    assert Prediction.objects.count() == FRAMES


def test_a_job_taken_over_after_a_lost_worker_scores_only_the_rest(
    version: ModelVersion, frames: list[Frame]
) -> None:
    # The lost worker got through the first batch before it died.
    model_version_score_frames(model_version=version, examination_ids=None, batch_size=4)
    Prediction.objects.filter(frame_id__in=[frame.pk for frame in frames[4:]]).delete()
    job = rescore_job_create(model_version=version, created_by=None)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, heartbeat_at=None)

    assert job_run(job_id=job.pk, work=_run_rescore, redelivered=True) is True

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result == {
        "frames_scored": 6,
        "frames_skipped": 4,
        "summary": "6 frames scored with v1, 4 already scored",
    }
    assert Prediction.objects.count() == FRAMES
