from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from inference.ml.architectures import ClassifierModel
from inference.ml.cam import (
    CAM_METHODS,
    cam_image_size,
    encode_png,
    predict_frames_with_cam,
    predict_with_cam,
    render_cam,
)
from inference.ml.data_config import DataConfig
from inference.ml.errors import MlError
from inference.ml.factory import create_model
from inference.ml.predict import predict_probabilities
from inference.ml.preprocessing import FrameGeometry, frame_geometry, prepare_batch
from tests.inference.conftest import CPU, ModelCache

# A frame whose class evidence (a bright square) sits in the top-left corner of its crop box, with
# a decoy bright square outside the crop box (on the black border, like a burned-in overlay).
FRAME_SIZE = (120, 90)
CROP_BOX = [20, 10, 100, 74]  # 80 x 64
EVIDENCE = (24, 14, 36, 26)  # left, top, right, bottom in frame pixels
DECOY = (104, 76, 118, 88)


def _corner_frame() -> Image.Image:
    pixels = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0]), dtype=np.uint8)
    left, top, right, bottom = CROP_BOX
    pixels[top:bottom, left:right] = 20  # dim tissue inside the field of view
    pixels[EVIDENCE[1] : EVIDENCE[3], EVIDENCE[0] : EVIDENCE[2]] = 255
    pixels[DECOY[1] : DECOY[3], DECOY[0] : DECOY[2]] = 255
    return Image.fromarray(pixels, mode="L")


def _brightness_model() -> ClassifierModel:
    """A CNN whose target activation is the frame's brightness and whose class 1 is "bright".

    Class 1's logit is the mean activation, so its Grad-CAM is the activation map itself: the
    CAM's maximum is wherever the frame is brightest.
    """
    conv = nn.Conv2d(1, 1, kernel_size=1)
    head = nn.Linear(1, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()  # type: ignore[union-attr]  # Conv2d has a bias unless bias=False
        head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        head.bias.zero_()
    module = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    config = DataConfig(
        input_size=(1, 32, 32), interpolation="bilinear", mean=(0.0,), std=(1.0,), crop_mode="squash"
    )
    return ClassifierModel(
        architecture="brightness",
        module=module,
        num_classes=2,
        in_chans=1,
        data_config=config,
        cam_layer_names=("1",),
        classifier_names=("4",),
        first_conv="0",
        channels_last=False,
    )


def _inside(point: tuple[int, int], box: tuple[float, float, float, float]) -> bool:
    x, y = point
    return box[0] <= x < box[2] and box[1] <= y < box[3]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_maximum_falls_on_the_evidence_inside_the_crop_box(method: str) -> None:
    model = _brightness_model()
    batch = prepare_batch([_corner_frame()], model.data_config, [CROP_BOX])
    (result,) = predict_with_cam(model, batch, method=method, target_classes=[1], device=CPU)
    assert result.cam.shape == (32, 32)
    assert result.cam.min() >= 0.0 and result.cam.max() == pytest.approx(1.0)

    image = render_cam(result.cam, result.geometry, max_side=120)  # full resolution: 120 x 90
    assert image.shape == (90, 120) and image.dtype == np.uint8
    row, column = np.unravel_index(int(image.argmax()), image.shape)
    assert _inside((int(column), int(row)), EVIDENCE)
    # Nothing outside the crop box, the bright decoy on the border included.
    left, top, right, bottom = CROP_BOX
    outside = np.ones_like(image, dtype=bool)
    outside[top:bottom, left:right] = False
    assert image[outside].max() == 0
    assert image[DECOY[1] : DECOY[3], DECOY[0] : DECOY[2]].max() == 0

    small = render_cam(result.cam, result.geometry, max_side=60)  # half size: 60 x 45
    assert small.shape == (45, 60)
    row, column = np.unravel_index(int(small.argmax()), small.shape)
    assert _inside(
        (int(column) * 2, int(row) * 2), (EVIDENCE[0] - 2, EVIDENCE[1] - 2, EVIDENCE[2], EVIDENCE[3])
    )


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_every_cam_method_gives_one_map_per_frame_in_the_unit_range(
    built_model: ModelCache, method: str
) -> None:
    model = built_model("efficientnet_lite0", 1)
    frames = [_corner_frame(), _corner_frame().transpose(Image.Transpose.FLIP_LEFT_RIGHT), _corner_frame()]
    batch = prepare_batch(frames, model.data_config, [CROP_BOX, None, None])
    results = predict_with_cam(model, batch, method=method, device=CPU)
    assert len(results) == 3
    for result in results:
        assert result.cam.shape == (64, 64) and result.cam.dtype == np.float32
        assert result.cam.min() >= 0.0 and result.cam.max() <= 1.0 + 1e-6


def test_probabilities_come_from_the_cam_forward_and_match_plain_prediction(built_model: ModelCache) -> None:
    model = built_model("efficientnet_b0", 3)
    batch = prepare_batch([_corner_frame(), _corner_frame().rotate(90)], model.data_config)
    results = predict_with_cam(model, batch, device=CPU)
    plain = predict_probabilities(model, batch, device=CPU)
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), plain, atol=1e-5)
    assert [r.predicted_class for r in results] == list(plain.argmax(axis=1))
    assert [r.target_class for r in results] == [r.predicted_class for r in results]


def test_target_class_can_be_chosen_per_frame(built_model: ModelCache) -> None:
    model = built_model("cnn_lstm", 1)
    batch = prepare_batch([_corner_frame()] * 3, model.data_config)
    results = predict_with_cam(model, batch, target_classes=[0, None, 2], device=CPU)
    assert [r.target_class for r in results] == [0, results[1].predicted_class, 2]
    with pytest.raises(MlError, match="target class 3 is not one of the model's 3 classes"):
        predict_with_cam(model, batch, target_classes=[3, None, None], device=CPU)
    with pytest.raises(MlError, match="3 frames but 1 target classes"):
        predict_with_cam(model, batch, target_classes=[0], device=CPU)
    with pytest.raises(MlError, match=r"unknown CAM method 'gradcam\+\+\+'"):
        predict_with_cam(model, batch, method="gradcam+++", device=CPU)


@pytest.mark.parametrize("name, in_chans", [("efficientnet_b0", 3), ("cnn_lstm", 1), ("resnet34", 1)])
def test_head_only_backward_gives_the_librarys_own_cam(
    built_model: ModelCache, name: str, in_chans: int
) -> None:
    model = built_model(name, in_chans)
    frames = [_corner_frame(), _corner_frame().rotate(180)]
    batch = prepare_batch(frames, model.data_config, [CROP_BOX, None])
    results = predict_with_cam(model, batch, device=CPU)

    reference = GradCAM(model=model.module, target_layers=model.target_layers())
    try:
        expected = reference(
            input_tensor=batch.tensor, targets=[ClassifierOutputTarget(r.predicted_class) for r in results]
        )
    finally:
        reference.activations_and_grads.release()
    for result, cam in zip(results, expected, strict=True):
        np.testing.assert_allclose(result.cam, cam, atol=1e-5)
    # The model is left as it was found: trainable parameters, no stray gradients.
    assert all(p.requires_grad for p in model.module.parameters())
    model.module.zero_grad(set_to_none=True)


def test_cam_leaves_no_gradients_on_the_parameters(built_model: ModelCache) -> None:
    model = built_model("cnn_lstm", 1)
    model.module.zero_grad(set_to_none=True)
    predict_with_cam(model, prepare_batch([_corner_frame()], model.data_config), device=CPU)
    assert all(p.grad is None for p in model.module.parameters())
    assert all(p.requires_grad for p in model.module.parameters())


def test_cam_image_size_keeps_the_frame_aspect_and_never_enlarges() -> None:
    assert cam_image_size((1024, 768), 224) == (224, 168)
    assert cam_image_size((576, 592), 224) == (218, 224)
    assert cam_image_size((100, 80), 224) == (100, 80)
    assert cam_image_size((2000, 3), 224) == (224, 1)


def _geometry(
    frame: tuple[int, int], view: tuple[float, float, float, float], region: tuple[int, int, int, int]
) -> FrameGeometry:
    return FrameGeometry(frame_size=frame, region=region, view=view, input_size=(8, 8))


def test_rendered_cam_covers_exactly_the_view_of_a_centre_crop() -> None:
    config = DataConfig(
        input_size=(1, 8, 8),
        interpolation="bilinear",
        mean=(0.0,),
        std=(1.0,),
        crop_pct=0.5,
        crop_mode="center",
    )
    geometry = frame_geometry((40, 40), config, [0, 0, 40, 40])
    assert geometry.view == pytest.approx((10, 10, 30, 30))  # the centre half of each side
    image = render_cam(np.ones((8, 8), dtype=np.float32), geometry, max_side=40)
    expected = np.zeros((40, 40), dtype=np.uint8)
    expected[10:30, 10:30] = 255
    np.testing.assert_array_equal(image, expected)


def test_rendered_cam_is_sampled_at_pixel_centres_across_the_view() -> None:
    # A CAM rising left to right across its 8 input columns, view = the right half of the frame.
    cam = np.tile(np.arange(8, dtype=np.float32) / np.float32(7), (8, 1)).astype(np.float32)
    geometry = _geometry((32, 16), (16, 0, 32, 16), (16, 0, 32, 16))
    image = render_cam(cam, geometry, max_side=32)
    assert (image[:, :16] == 0).all()
    # Frame column 16 + 2k + 1 (the centre 2k + 1.5 px into the view, i.e. input column k + 0.25
    # from the first input column's centre) interpolates between input columns k and k + 1.
    row = image[0, 16:].astype(float) / 255
    assert row[1] == pytest.approx(0.25 / 7 * 1 + 0 * 0.75, abs=1 / 255)
    assert np.all(np.diff(row) >= 0)
    assert row[-1] == pytest.approx(1.0, abs=1 / 255)


def test_jet_colour_map_is_transparent_where_the_model_did_not_look() -> None:
    geometry = _geometry((20, 10), (5, 0, 15, 10), (5, 0, 15, 10))
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[4, 4] = 1.0
    rgba = render_cam(cam, geometry, max_side=20, colormap="jet")
    assert rgba.shape == (10, 20, 4)
    assert (rgba[:, :5, 3] == 0).all() and (rgba[:, 15:, 3] == 0).all()
    assert (rgba[:, 5:15, 3] == 255).all()
    with pytest.raises(MlError, match="unknown colour map"):
        render_cam(cam, geometry, colormap="viridis")


def test_png_encoding_round_trips() -> None:
    geometry = _geometry((20, 10), (0, 0, 20, 10), (0, 0, 20, 10))
    cam = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    gray = render_cam(cam, geometry)
    rgba = render_cam(cam, geometry, colormap="jet")
    for image, mode in ((gray, "L"), (rgba, "RGBA")):
        decoded = Image.open(BytesIO(encode_png(image)))
        assert decoded.mode == mode
        np.testing.assert_array_equal(np.asarray(decoded), image)


def test_frames_with_cam_end_to_end(built_model: ModelCache) -> None:
    model = built_model("cnn_lstm", 1)
    frames = [_corner_frame(), Image.new("L", (300, 200), 30), _corner_frame()]
    results = predict_frames_with_cam(
        model, frames, crop_boxes=[CROP_BOX, None, CROP_BOX], batch_size=2, max_side=100, device=CPU
    )
    assert [r.image.shape for r in results] == [(75, 100), (67, 100), (75, 100)]
    for result in results:
        assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert result.target_class == result.predicted_class
    # The crop box's outside stays zero at any size.
    assert results[0].image[:, :16].max() == 0


def test_non_square_inputs_give_cams_on_the_input_grid() -> None:
    torch.manual_seed(0)
    model = create_model("cnn_lstm", num_classes=2, input_size=(24, 40))
    batch = prepare_batch([_corner_frame()], model.data_config, [CROP_BOX])
    (result,) = predict_with_cam(model, batch, method="gradcam++", device=CPU)
    assert result.cam.shape == (24, 40)
    assert render_cam(result.cam, result.geometry, max_side=60).shape == (45, 60)
