from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from inference.ml.architectures import ClassifierModel
from inference.ml.errors import ModelFileError
from inference.ml.factory import create_model
from inference.ml.model_files import (
    FORMAT_VERSION,
    ModelMetadata,
    load_model_file,
    save_model_file,
    validate_model_file,
)
from inference.ml.predict import predict_frames
from tests.inference.conftest import CPU

TASKS = {"quality": ["good", "bad"]}


def _model(arch: str = "cnn_lstm", **kwargs: object) -> ClassifierModel:
    torch.manual_seed(0)
    options: dict[str, object] = {"num_classes": 2, "input_size": 32 if arch == "cnn_lstm" else 64}
    options.update(kwargs)
    return create_model(arch, **options)  # type: ignore[arg-type]


def _metadata(model: ClassifierModel, **overrides: object) -> ModelMetadata:
    metadata = ModelMetadata.for_model(
        model,
        tasks=TASKS,
        training_config={"epochs": 3, "loss": "focal", "label_smoothing": 0.1},
        dataset_snapshot_id="snap-42",
    )
    return dataclasses.replace(metadata, **overrides)  # type: ignore[arg-type]


def _header(model: ClassifierModel, **changes: str | None) -> dict[str, str]:
    header = _metadata(model).to_header()
    for key, value in changes.items():
        if value is None:
            header.pop(key)
        else:
            header[key] = value
    return header


def _write(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str] | None) -> Path:
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=header)
    return path


def _expect(path: Path, code: str, message: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=message) as validated:
        validate_model_file(path)
    assert validated.value.code == code
    with pytest.raises(ModelFileError, match=message) as loaded:
        load_model_file(path, device=CPU)
    assert loaded.value.code == code
    return validated.value


def test_round_trip_keeps_metadata_weights_and_predictions(tmp_path: Path) -> None:
    model = _model("cnn_lstm")
    metadata = _metadata(model)
    info = save_model_file(tmp_path / "m.safetensors", model, metadata)
    assert info.sha256 == hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest()
    assert info.size == (tmp_path / "m.safetensors").stat().st_size

    loaded = load_model_file(tmp_path / "m.safetensors", device=CPU)
    assert loaded.metadata == metadata
    assert loaded.sha256 == info.sha256
    assert loaded.metadata.task == "quality" and loaded.metadata.labels == ["good", "bad"]
    assert loaded.metadata.format_version == FORMAT_VERSION
    assert loaded.model.data_config == model.data_config
    assert not loaded.model.module.training
    original = model.module.state_dict()
    restored = loaded.model.module.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        torch.testing.assert_close(restored[name], original[name], rtol=0, atol=0)
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8))
    np.testing.assert_array_equal(
        predict_frames(loaded.model, [frame], device=CPU)[0].probabilities,
        predict_frames(model, [frame], device=CPU)[0].probabilities,
    )
    assert validate_model_file(tmp_path / "m.safetensors").sha256 == info.sha256


def test_round_trip_of_a_timm_model_with_a_custom_input_config(tmp_path: Path) -> None:
    model = _model("efficientnet_lite0", in_chans=1)
    info = save_model_file(tmp_path / "lite.safetensors", model, _metadata(model))
    loaded = load_model_file(info.path, device=CPU)
    assert loaded.model.data_config.input_size == (1, 64, 64)  # from the file, not timm's 224
    assert loaded.model.target_layer_names() == ("bn2",)
    for name, tensor in model.module.state_dict().items():
        torch.testing.assert_close(loaded.model.module.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_model_prepared_for_inference_saves_in_the_standard_layout(tmp_path: Path) -> None:
    model = _model("efficientnet_lite0")
    frame = Image.new("RGB", (64, 64), (90, 40, 200))
    before = predict_frames(model, [frame], device=CPU)[0].probabilities  # now channels_last
    info = save_model_file(tmp_path / "m.safetensors", model, _metadata(model))
    loaded = load_model_file(info.path, device=CPU)
    after = predict_frames(loaded.model, [frame], device=CPU)[0].probabilities
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_header_holds_plain_strings_only(tmp_path: Path) -> None:
    model = _model()
    save_model_file(tmp_path / "m.safetensors", model, _metadata(model))
    raw = (tmp_path / "m.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    assert set(header) == {
        "format", "format_version", "architecture", "num_classes", "in_chans", "tasks", "input_size", "mean",
        "std", "interpolation", "crop_pct", "crop_mode", "crop_policy", "training_config",
        "dataset_snapshot_id", "created_at",
    }  # fmt: skip
    assert header["format"] == "clear-model"
    assert json.loads(header["tasks"]) == TASKS
    assert json.loads(header["training_config"])["loss"] == "focal"
    assert header["dataset_snapshot_id"] == "snap-42"


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    model = _model()
    target = tmp_path / "models" / "m.safetensors"
    first = save_model_file(target, model, _metadata(model))
    with torch.no_grad():
        next(model.module.parameters()).add_(1.0)
    second = save_model_file(target, model, _metadata(model))
    assert first.sha256 != second.sha256
    assert [p.name for p in target.parent.iterdir()] == ["m.safetensors"]
    assert validate_model_file(target).sha256 == second.sha256
    # A refused save leaves the existing file untouched.
    with pytest.raises(ModelFileError):
        save_model_file(target, model, _metadata(model, num_classes=3, tasks={"q": ["a", "b", "c"]}))
    assert validate_model_file(target).sha256 == second.sha256
    assert [p.name for p in target.parent.iterdir()] == ["m.safetensors"]


def test_save_refuses_metadata_that_does_not_describe_the_model(tmp_path: Path) -> None:
    model = _model()
    with pytest.raises(
        ModelFileError, match="architecture 'resnet34' in the metadata but 'cnn_lstm'"
    ) as error:
        save_model_file(tmp_path / "m.safetensors", model, _metadata(model, architecture="resnet34"))
    assert error.value.code == "model"
    bigger = _metadata(model, data_config=model.data_config.with_input_size(64))
    with pytest.raises(ModelFileError, match=r"built for \[1, 32, 32\]"):
        save_model_file(tmp_path / "m.safetensors", model, bigger)
    with pytest.raises(ModelFileError, match="task 'quality' has 2 labels but the model 3 outputs"):
        save_model_file(tmp_path / "m.safetensors", model, _metadata(model, num_classes=3))


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.safetensors", "missing", "does not exist")


def test_a_pickle_pth_is_refused_without_being_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "legacy.pth"
    torch.save(_model().module.state_dict(), path)

    def no_unpickling(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model file must never reach torch.load or pickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    error = _expect(path, "pickle", "pickle is refused")
    assert "safetensors" in error.message


def test_a_raw_pickle_stream_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    _expect(path, "pickle", "pickle is refused")


def test_something_else_is_not_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("not weights at all, just some text that is long enough")
    _expect(path, "not_safetensors", "is not a safetensors file")


def test_a_truncated_file_is_damaged(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.safetensors"
    save_model_file(path, model, _metadata(model))
    path.write_bytes(path.read_bytes()[:-100])
    _expect(path, "damaged", "damaged safetensors file: the file is cut off")


def test_a_header_nested_too_deeply_is_damaged_not_a_crash(tmp_path: Path) -> None:
    nested = ("[" * 100_000 + "]" * 100_000).encode()
    body = b'{"w": ' + nested + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    _expect(path, "damaged", "nests too deeply")


def test_plain_safetensors_without_clear_metadata(tmp_path: Path) -> None:
    path = _write(tmp_path / "plain.safetensors", _model().module.state_dict(), None)
    _expect(path, "metadata", "has no CLEAR model metadata")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"tasks": "{not json"}, "its metadata 'tasks' is invalid"),
        ({"num_classes": None}, "its metadata lacks 'num_classes'"),
        ({"num_classes": "two"}, "its metadata 'num_classes' is invalid"),
        ({"format_version": "99"}, "format version 99 is not supported"),
        (
            {"tasks": json.dumps({"quality": ["good", "bad", "ugly"]})},
            "task 'quality' has 3 labels but the model 2",
        ),
        ({"tasks": json.dumps({"a": ["x", "y"], "b": ["x", "y"]})}, "exactly one task"),
        ({"tasks": json.dumps({"quality": ["good", "good"]})}, "repeat"),
        ({"created_at": "2024-05-01T10:00:00"}, "has no time zone"),
        ({"created_at": "yesterday"}, "not an ISO 8601"),
        ({"mean": "[0.1, 0.2]"}, "mean and std need 1 values"),
        ({"interpolation": "magic"}, "interpolation 'magic'"),
        ({"crop_policy": "sometimes"}, "crop_policy 'sometimes'"),
        ({"training_config": "[1, 2]"}, "training_config must be a JSON object"),
        ({"in_chans": "3"}, "input_size has 1 channels but in_chans is 3"),
        ({"training_config": "[" * 100_000 + "]" * 100_000}, "its metadata 'training_config' is invalid"),
    ],
)
def test_invalid_metadata_is_named(tmp_path: Path, changes: dict[str, str | None], message: str) -> None:
    model = _model()
    path = _write(tmp_path / "m.safetensors", model.module.state_dict(), _header(model, **changes))
    _expect(path, "metadata", message)


def test_unknown_architecture(tmp_path: Path) -> None:
    model = _model()
    path = _write(
        tmp_path / "m.safetensors", model.module.state_dict(), _header(model, architecture="cnn_gru")
    )
    _expect(path, "architecture", "architecture 'cnn_gru' is unknown here")


def test_missing_and_unexpected_tensors_are_named(tmp_path: Path) -> None:
    model = _model()
    tensors = dict(model.module.state_dict())
    del tensors["lstm.weight_hh_l0"]
    tensors["extra.weight"] = torch.zeros(3)
    path = _write(tmp_path / "m.safetensors", tensors, _header(model))
    error = _expect(path, "keys", r"1 missing \(lstm.weight_hh_l0\) and 1 unexpected \(extra.weight\)")
    assert "cnn_lstm (num_classes=2, in_chans=1, input [1, 32, 32])" in error.message


def test_shape_mismatches_name_the_first_few(tmp_path: Path) -> None:
    three = _model(num_classes=3)
    two = _model()
    path = _write(tmp_path / "m.safetensors", three.module.state_dict(), _header(two))
    _expect(
        path,
        "shapes",
        r"2 tensor shapes.*classifier.weight is \[3, 50\] in the file but \[2, 50\] in the model",
    )


def test_many_shape_mismatches_are_summarised(tmp_path: Path) -> None:
    colour = _model(in_chans=3)
    grey = _model()
    wide = _model(input_size=(32, 64))
    tensors = dict(wide.module.state_dict())
    tensors.update({k: v for k, v in colour.module.state_dict().items() if k.startswith("features.conv1")})
    path = _write(tmp_path / "m.safetensors", tensors, _header(grey))
    error = _expect(path, "shapes", "features.conv1.0.weight is")
    assert "row_dense.weight is [128, 2048] in the file but [128, 1024]" in error.message


def test_wrong_dtype(tmp_path: Path) -> None:
    model = _model()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.module.state_dict().items()}
    path = _write(tmp_path / "m.safetensors", half, _header(model))
    _expect(path, "dtype", "features.conv1.0.weight is F16 in the file but F32 in the model")


def test_validate_reads_no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    save_model_file(tmp_path / "m.safetensors", model, _metadata(model))

    def no_loading(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("validation must not load tensors")

    monkeypatch.setattr(safetensors.torch, "load", no_loading)
    monkeypatch.setattr(safetensors.torch, "load_file", no_loading)
    assert validate_model_file(tmp_path / "m.safetensors").metadata.architecture == "cnn_lstm"
