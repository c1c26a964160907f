"""Upload-and-classify: POST /api/projects/{id}/classify/ classifies an image and stores nothing."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from PIL import Image

from annotations.models import LabelTask
from inference.ml.cam import cam_image_size
from inference.models import Prediction
from records.models import Project
from tests.factories import ProjectFactory, UserFactory
from tests.inference_app.conftest import PCLE_FRAME, ModelRuns, Register, post_classify, set_gate
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db

LARYNX_RGB = "imesluh_vocalfolds/img/patient1/seq1/0001.png"  # 512x512 colour laryngoscopy


def _files_below(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("spooled_to_disk", [False, True])
def test_a_real_pcle_frame_is_classified_with_its_cam_and_nothing_is_stored(
    spooled_to_disk: bool,
    settings: Any,
    project: Project,
    quality_task: LabelTask,
    register: Register,
    realdata: Path,
    media_root: Path,
) -> None:
    if spooled_to_disk:  # large uploads reach the view as a temporary file, not in memory
        settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    version = register(quality_task)
    media_before = _files_below(media_root)
    assert [path.suffix for path in media_before] == [".safetensors"]
    client = client_for(member_of(project, Role.REVIEWER))

    response = post_classify(client, project, (realdata / PCLE_FRAME).read_bytes())

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["task_key"] == "quality" and body["model_version"] == version.pk
    assert body["model_version_name"] == version.name
    assert (body["width"], body["height"]) == (576, 592)
    assert [p["value"] for p in body["probabilities"]] == ["good", "bad"]
    assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert body["confidence"] == max(p["probability"] for p in body["probabilities"])
    best = max(body["probabilities"], key=lambda p: p["probability"])
    assert body["predicted_value"] == best["value"]
    assert body["gate_passed"] is None and body["gate"] is None
    assert 0 < body["elapsed_ms"] < 10_000
    with Image.open(io.BytesIO(base64.b64decode(body["cam_png_base64"]))) as cam:
        assert cam.format == "PNG" and cam.mode == "L"
        assert cam.size == cam_image_size((576, 592)) == (218, 224)
    assert not Prediction.objects.exists()
    assert _files_below(media_root) == media_before  # the model file only
    assert _files_below(Path(django_settings.CLEAR_UPLOAD_ROOT)) == []


def _truncated_png(realdata: Path) -> bytes:
    data = (realdata / PCLE_FRAME).read_bytes()
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    """A 200-byte PNG that declares 100,000 x 100,000 pixels (ten billion) in its header."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", 100_000, 100_000)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("text", "not an image"),
        ("truncated", "truncated"),
        ("bomb", "too large"),
        ("empty", "empty"),
        ("over_size_limit", "at most 1,000 are accepted"),
        ("gif", "format GIF is not allowed"),
        ("colour_for_a_grayscale_model", "does not suit the model"),
    ],
)
def test_a_bad_upload_is_a_400_saying_why(
    case: str,
    message: str,
    settings: Any,
    project: Project,
    quality_task: LabelTask,
    register: Register,
    realdata: Path,
    model_runs: ModelRuns,
) -> None:
    register(quality_task)
    data = {
        "text": lambda: b"patient,diagnosis\nP1,benign\n",
        "truncated": lambda: _truncated_png(realdata),
        "bomb": _bomb_png,
        "empty": lambda: b"",
        "over_size_limit": lambda: (realdata / PCLE_FRAME).read_bytes(),
        "gif": lambda: _gif(),
        "colour_for_a_grayscale_model": lambda: (realdata / LARYNX_RGB).read_bytes(),
    }[case]()
    if case == "over_size_limit":
        settings.CLEAR_MAX_UPLOAD_BYTES = 1000

    response = post_classify(client_for(member_of(project, Role.COORDINATOR)), project, data)

    assert response.status_code == 400, response.content
    assert message in response.json()["image"][0]
    if case != "colour_for_a_grayscale_model":
        assert model_runs == []  # refused before any model ran


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def test_outsiders_get_404_unknown_tasks_400_and_no_active_version_409(
    project: Project, quality_task: LabelTask, diagnosis_task: LabelTask, register: Register, realdata: Path
) -> None:
    register(quality_task)
    register(diagnosis_task, activate=False)
    data = (realdata / PCLE_FRAME).read_bytes()
    coordinator = client_for(member_of(project, Role.COORDINATOR))

    outsider = post_classify(client_for(UserFactory.create()), project, data)
    foreign = post_classify(client_for(member_of(ProjectFactory.create(), Role.ADMIN)), project, data)
    unknown = post_classify(coordinator, project, data, task="organ")
    inactive = post_classify(coordinator, project, data, task="diagnosis")

    assert outsider.status_code == 404 and foreign.status_code == 404
    assert unknown.status_code == 400 and "'organ'" in unknown.json()["task"][0]
    assert inactive.status_code == 409
    assert inactive.json() == {"detail": "No active model version for task 'diagnosis'."}


@pytest.mark.parametrize("gate_says", ["bad", "good"])
def test_a_gated_task_is_classified_only_when_the_gate_passes_the_image(
    gate_says: str,
    project: Project,
    quality_task: LabelTask,
    diagnosis_task: LabelTask,
    register: Register,
    realdata: Path,
    model_runs: ModelRuns,
) -> None:
    quality = register(quality_task, always=gate_says)
    register(diagnosis_task)
    set_gate(diagnosis_task, quality_task, ["good"])
    client = client_for(member_of(project, Role.COORDINATOR))

    response = post_classify(client, project, (realdata / PCLE_FRAME).read_bytes(), task="diagnosis")

    assert response.status_code == 200, response.content
    body = response.json()
    gate = body["gate"]
    assert gate["task_key"] == "quality" and gate["predicted_value"] == gate_says
    assert gate["model_version"] == quality.pk and gate["diagnostic_values"] == ["good"]
    assert gate["confidence"] > 0.99
    if gate_says == "bad":
        assert body["gate_passed"] is False and model_runs == [(2, 1)]
        assert body["predicted_value"] == "" and body["confidence"] is None
        assert body["probabilities"] == [] and body["cam_png_base64"] is None
    else:
        assert body["gate_passed"] is True and model_runs == [(2, 1), (3, 1)]
        assert body["predicted_value"] in ("healthy", "inflamed", "neoplastic")
        assert len(body["probabilities"]) == 3 and body["cam_png_base64"]
    assert not Prediction.objects.exists()
