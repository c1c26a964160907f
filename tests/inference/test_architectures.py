from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from inference.ml.architectures import (
    ClassifierModel,
    custom_architecture,
    custom_architectures,
    register_architecture,
    trace_cam_layer,
    unregister_architecture,
)
from inference.ml.cnn_lstm import CnnLstm
from inference.ml.errors import ArchitectureError
from inference.ml.factory import check_architecture, create_model
from tests.inference.conftest import LISTED_TIMM, TINY_INPUT, ModelCache

EXPECTED_CAM_LAYERS = {
    "efficientnet_b0": ("bn2",),
    "tf_efficientnetv2_s": ("bn2",),
    "efficientnet_lite0": ("bn2",),
    "resnet34": ("layer4",),
    "inception_v3": ("Mixed_7c",),
}


# Both channel counts where a build is cheap; the two slow builds once each (the other tests share them).
BUILDS = [(name, chans) for name in LISTED_TIMM for chans in (1, 3)]
BUILDS.remove(("tf_efficientnetv2_s", 3))
BUILDS.remove(("inception_v3", 1))


@pytest.mark.parametrize("name, in_chans", BUILDS)
def test_listed_timm_architecture_builds_for_classes_and_channels(
    built_model: ModelCache, name: str, in_chans: int
) -> None:
    model = built_model(name, in_chans)
    size = TINY_INPUT.get(name, 64)
    model.module.eval()
    with torch.inference_mode():
        out = model.module(torch.randn(1, in_chans, size, size))
    assert out.shape == (1, 3)
    assert model.num_classes == 3
    assert model.in_chans == in_chans
    assert model.data_config.input_size == (in_chans, size, size)
    assert len(model.data_config.mean) == len(model.data_config.std) == in_chans
    assert model.target_layer_names() == EXPECTED_CAM_LAYERS[name]
    assert all(isinstance(layer, nn.Module) for layer in model.target_layers())


def test_timm_data_config_comes_from_the_pretrained_cfg() -> None:
    b0 = create_model("efficientnet_b0", num_classes=2).data_config
    assert b0.input_size == (3, 224, 224)
    assert b0.interpolation == "bicubic"
    assert b0.mean == pytest.approx((0.485, 0.456, 0.406))
    assert b0.std == pytest.approx((0.229, 0.224, 0.225))
    assert (b0.crop_pct, b0.crop_mode, b0.crop_policy) == (0.875, "center", "crop_box")

    v2 = create_model("tf_efficientnetv2_s", num_classes=2).data_config
    assert v2.input_size == (3, 300, 300)
    assert v2.mean == (0.5, 0.5, 0.5) and v2.crop_pct == 1.0


def test_grey_timm_model_averages_the_rgb_statistics(built_model: ModelCache) -> None:
    grey = built_model("resnet34", 1).data_config
    assert grey.mean == pytest.approx(((0.485 + 0.456 + 0.406) / 3,))
    assert grey.std == pytest.approx(((0.229 + 0.224 + 0.225) / 3,))
    assert built_model("tf_efficientnetv2_s", 1).data_config.mean == (0.5,)  # timm's 0.5 for this one


def test_input_size_overrides_the_default_and_drop_rate_reaches_the_model() -> None:
    model = create_model("efficientnet_lite0", num_classes=2, input_size=(48, 64), drop_rate=0.3)
    assert model.data_config.input_size == (3, 48, 64)
    assert model.module.drop_rate == 0.3
    lstm = create_model("cnn_lstm", num_classes=2, input_size=32, drop_rate=0.25)
    assert isinstance(lstm.module, CnnLstm)
    assert lstm.module.drop.p == 0.25


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnet34", "inception_v3"])
def test_traced_feature_map_layer_agrees_with_the_declared_family_target(
    built_model: ModelCache, name: str
) -> None:
    model = built_model(name, 3)
    assert trace_cam_layer(model.module, model.data_config) == EXPECTED_CAM_LAYERS[name][0]


def test_other_timm_cnns_get_their_target_traced_on_first_use() -> None:
    model = create_model("convnext_atto", num_classes=2, input_size=64)
    assert model.cam_layer_names is None
    names = model.target_layer_names()
    assert names[0] in ("stages", "stages.3")
    assert model.cam_layer_names == names
    mobile = create_model("mobilenetv3_small_050", num_classes=2)
    assert mobile.target_layer_names() == ("blocks.5",)


def test_a_transformer_has_no_grad_cam_target() -> None:
    model = create_model("vit_tiny_patch16_224", num_classes=2)
    with pytest.raises(ArchitectureError, match="CAMs need a CNN"):
        model.target_layers()


def test_unknown_architecture_is_refused_with_close_names() -> None:
    with pytest.raises(
        ArchitectureError, match=r"unknown architecture 'efficientnet_b00'.*did you mean.*efficientnet_b0"
    ):
        create_model("efficientnet_b00", num_classes=2)
    with pytest.raises(ArchitectureError, match="cnn_lstm"):
        check_architecture("no_such_net")


@pytest.fixture
def tiny_registered() -> Iterator[str]:
    name = "tiny_test_net"

    @register_architecture(
        name,
        in_chans=1,
        input_size=(16, 16),
        mean=(0.5,),
        std=(0.25,),
        cam_layers=("body.0",),
        classifier=("head",),
        first_conv="body.0",
    )
    def build(*, num_classes: int, in_chans: int, input_size: tuple[int, int], drop_rate: float) -> nn.Module:
        return nn.Sequential(
            nn.Sequential(nn.Conv2d(in_chans, 4, 3, padding=1), nn.ReLU()),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(drop_rate),
            nn.Linear(4, num_classes),
        )

    yield name
    unregister_architecture(name)


def test_register_architecture_decorator_makes_a_name_buildable(tiny_registered: str) -> None:
    assert tiny_registered in custom_architectures()
    model = create_model(tiny_registered, num_classes=4)
    assert isinstance(model, ClassifierModel)
    assert model.in_chans == 1
    assert model.data_config.input_size == (1, 16, 16)
    assert model.data_config.mean == (0.5,) and model.data_config.std == (0.25,)
    assert model.target_layer_names() == ("body.0",)
    assert model.module(torch.zeros(1, 1, 16, 16)).shape == (1, 4)
    colour = create_model(tiny_registered, num_classes=2, in_chans=3)
    assert colour.data_config.mean == (0.5, 0.5, 0.5)


def test_register_architecture_refuses_clashes_and_bad_names(tiny_registered: str) -> None:
    def build(**_: object) -> nn.Module:
        return nn.Identity()

    common = {
        "in_chans": 1,
        "input_size": (8, 8),
        "mean": (0.0,),
        "std": (1.0,),
        "cam_layers": ("x",),
        "classifier": ("y",),
    }
    with pytest.raises(ArchitectureError, match="already registered"):
        register_architecture(tiny_registered, **common)(build)  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="timm model name"):
        register_architecture("resnet34", **common)(build)  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="lower-case"):
        register_architecture("My Net", **common)(build)  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="Grad-CAM target"):
        register_architecture("no_cam_net", **{**common, "cam_layers": ()})(build)  # type: ignore[arg-type]


def test_cnn_lstm_is_the_first_custom_architecture_with_the_study_defaults() -> None:
    spec = custom_architecture("cnn_lstm")
    assert spec is not None
    assert spec.default_config.input_size == (1, 300, 300)
    assert spec.default_config.mean == (0.0,) and spec.default_config.std == (1.0,)
    assert spec.cam_layers == ("features.conv4",)
    assert spec.input_size_in_weights


def test_cnn_lstm_has_the_layers_of_the_study() -> None:
    module = create_model("cnn_lstm", num_classes=2, input_size=32).module
    assert isinstance(module, CnnLstm)
    convs = [m for m in module.features.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    pools = [m for m in module.features.modules() if isinstance(m, nn.MaxPool2d)]
    assert [p.kernel_size for p in pools] == [2, 2]
    assert sum(isinstance(m, nn.ReLU) for m in module.features.modules()) == 4
    assert module.row_dense.out_features == 128
    assert module.lstm.hidden_size == 100
    assert module.dense.out_features == 50
    assert module.classifier.out_features == 2


def test_cnn_lstm_runs_its_lstm_over_the_rows_of_the_feature_map() -> None:
    torch.manual_seed(0)
    model = create_model("cnn_lstm", num_classes=3, input_size=(32, 48))  # 8 rows x 12 columns
    module = model.module
    assert isinstance(module, CnnLstm)
    module.eval()
    captured: dict[str, torch.Tensor] = {}
    handles = [
        module.features.register_forward_hook(lambda _m, _a, out: captured.__setitem__("features", out)),
        module.lstm.register_forward_hook(lambda _m, args, _o: captured.__setitem__("sequence", args[0])),
    ]
    x = torch.randn(2, 1, 32, 48)
    with torch.inference_mode():
        out = module(x)
    for handle in handles:
        handle.remove()

    features = captured["features"]
    assert features.shape == (2, 128, 8, 12)
    sequence = captured["sequence"]
    assert sequence.shape == (2, 8, 128)  # one time step per row, not per column (12)
    for row in range(8):
        expected = torch.relu(module.row_dense(features[:, :, row, :].flatten(1)))
        torch.testing.assert_close(sequence[:, row], expected)
    with torch.inference_mode():
        outputs, _ = module.lstm(sequence)
        manual = module.classifier(torch.relu(module.dense(outputs[:, -1])))
    torch.testing.assert_close(out, manual)


def test_cnn_lstm_refuses_an_input_of_another_width() -> None:
    module = create_model("cnn_lstm", num_classes=2, input_size=32).module
    with pytest.raises(ValueError, match="resize frames to the model's input size"):
        module(torch.zeros(1, 1, 32, 40))
