from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inference.ml.data_config import DataConfig
from inference.ml.errors import PreprocessingError
from inference.ml.factory import create_model
from inference.ml.preprocessing import (
    check_crop_box,
    frame_geometry,
    iter_batches,
    model_image,
    prepare_batch,
    prepare_frame,
    view_box,
)

GREY = DataConfig(
    input_size=(1, 16, 16), interpolation="bilinear", mean=(0.5,), std=(0.25,), crop_mode="squash"
)
COLOUR = DataConfig(
    input_size=(3, 16, 16),
    interpolation="bilinear",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    crop_mode="squash",
)


def _noise(width: int, height: int, mode: str = "L", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width) if mode == "L" else (height, width, 3)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def test_grey_frame_for_a_one_channel_model_is_normalised_with_the_config() -> None:
    image = Image.new("L", (16, 16), 128)
    tensor, geometry = prepare_frame(image, GREY)
    assert tensor.shape == (1, 16, 16)
    assert tensor.dtype == torch.float32
    assert torch.allclose(tensor, torch.full_like(tensor, (128 / 255 - 0.5) / 0.25), atol=1e-5)
    assert geometry.region == (0, 0, 16, 16)


def test_grey_frame_for_a_three_channel_model_is_replicated_into_three_equal_channels() -> None:
    image = _noise(20, 20)
    tensor, _ = prepare_frame(image, COLOUR)
    assert tensor.shape == (3, 16, 16)
    mean = torch.tensor(COLOUR.mean).view(3, 1, 1)
    std = torch.tensor(COLOUR.std).view(3, 1, 1)
    pixels = tensor * std + mean
    torch.testing.assert_close(pixels[0], pixels[1])
    torch.testing.assert_close(pixels[0], pixels[2])


def test_rgb_frame_keeps_its_channel_order() -> None:
    image = Image.new("RGB", (16, 16), (255, 0, 0))
    tensor, _ = prepare_frame(image, COLOUR)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    assert tensor[:, 5, 5].tolist() == pytest.approx(expected, abs=1e-5)


def test_rgb_frame_with_identical_channels_is_accepted_by_a_grey_model() -> None:
    grey = _noise(16, 16)
    tensor_rgb, _ = prepare_frame(grey.convert("RGB"), GREY)
    tensor_l, _ = prepare_frame(grey, GREY)
    torch.testing.assert_close(tensor_rgb, tensor_l)


def test_colour_frame_is_never_silently_converted_for_a_grey_model() -> None:
    with pytest.raises(PreprocessingError, match=r"grayscale frames \(1 channel\).*colour"):
        prepare_frame(_noise(16, 16, "RGB"), GREY)


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "1", "CMYK"])
def test_other_modes_are_refused_not_converted(mode: str) -> None:
    image = Image.new(mode, (8, 8))
    with pytest.raises(PreprocessingError, match=f"got mode '{mode}'"):
        model_image(image, 3)


def test_only_one_and_three_channel_models_are_fed() -> None:
    with pytest.raises(PreprocessingError, match="1- or 3-channel"):
        model_image(Image.new("L", (8, 8)), 4)


def test_crop_box_is_cut_out_before_resizing() -> None:
    frame = _noise(100, 80)
    box = [20, 10, 60, 50]
    with_box, geometry = prepare_frame(frame, GREY, box)
    cropped_first, _ = prepare_frame(frame.crop((20, 10, 60, 50)), GREY)
    torch.testing.assert_close(with_box, cropped_first)
    assert geometry.region == (20, 10, 60, 50)
    assert geometry.view == pytest.approx((20, 10, 60, 50))
    assert geometry.frame_size == (100, 80)


def test_full_frame_policy_ignores_the_crop_box() -> None:
    config = DataConfig(
        input_size=(1, 16, 16), interpolation="bilinear", mean=(0.5,), std=(0.25,), crop_policy="full_frame"
    )
    frame = _noise(40, 40)
    with_box, geometry = prepare_frame(frame, config, [5, 5, 20, 20])
    without, _ = prepare_frame(frame, config)
    torch.testing.assert_close(with_box, without)
    assert geometry.region == (0, 0, 40, 40)


@pytest.mark.parametrize(
    "box, message",
    [
        ([0, 0, 50, 10], "inside the 40x30 frame"),
        ([10, 10, 10, 20], "non-empty"),
        ([-1, 0, 10, 10], "inside"),
        ([0, 0, 10], r"\[left, top, right, bottom\]"),
        ([0.5, 0, 10, 10], "whole pixels"),
    ],
)
def test_invalid_crop_boxes_are_refused(box: list[float], message: str) -> None:
    with pytest.raises(PreprocessingError, match=message):
        check_crop_box(box, (40, 30))  # type: ignore[arg-type]


def test_output_has_the_configured_non_square_size() -> None:
    config = GREY.with_input_size((24, 40))
    tensor, geometry = prepare_frame(_noise(50, 70), config)
    assert tensor.shape == (1, 24, 40)
    assert geometry.input_size == (24, 40)


def test_normalisation_uses_the_timm_config_of_the_model() -> None:
    model = create_model("efficientnet_lite0", num_classes=2, input_size=32)
    tensor, _ = prepare_frame(Image.new("RGB", (40, 40), (128, 128, 128)), model.data_config)
    expected = [
        (128 / 255 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)
    ]
    assert tensor[:, 16, 16].tolist() == pytest.approx(expected, abs=1e-5)


def test_centre_crop_matches_timm_eval_geometry() -> None:
    config = DataConfig(
        input_size=(1, 224, 224),
        interpolation="bicubic",
        mean=(0.5,),
        std=(0.5,),
        crop_pct=0.875,
        crop_mode="center",
    )
    # timm: resize the shorter side to floor(224 / 0.875) = 256, centre-crop 224: 7/8 of the side.
    assert view_box((0, 0, 512, 512), config) == pytest.approx((32, 32, 480, 480))
    # Non-square region: the shorter side decides; the view is square and centred.
    wide = DataConfig(
        input_size=(1, 100, 100), interpolation="bilinear", mean=(0.5,), std=(0.5,), crop_mode="center"
    )
    assert view_box((0, 0, 400, 200), wide) == pytest.approx((100, 0, 300, 200))
    squash = DataConfig(
        input_size=(1, 100, 100), interpolation="bilinear", mean=(0.5,), std=(0.5,), crop_mode="squash"
    )
    assert view_box((10, 20, 410, 220), squash) == pytest.approx((10, 20, 410, 220))


def test_centre_crop_output_is_close_to_timms_own_transform() -> None:
    from timm.data import create_transform

    config = DataConfig(
        input_size=(3, 64, 64),
        interpolation="bicubic",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        crop_pct=0.875,
        crop_mode="center",
    )
    x, y = np.meshgrid(np.linspace(0, 1, 150), np.linspace(0, 1, 100))
    smooth = np.stack([x, y, (x + y) / 2], axis=-1) * 255
    image = Image.fromarray(smooth.astype(np.uint8), mode="RGB")
    ours, _ = prepare_frame(image, config)
    timm_transform = create_transform(
        input_size=config.input_size,
        interpolation="bicubic",
        mean=config.mean,
        std=config.std,
        crop_pct=0.875,
        crop_mode="center",
    )
    theirs = timm_transform(image)
    assert ours.shape == theirs.shape
    # Same geometry up to torchvision's whole-pixel rounding of the resize and crop.
    assert float((ours - theirs).abs().mean()) < 0.05


def test_border_mode_pads_with_the_mean_colour() -> None:
    config = DataConfig(
        input_size=(1, 20, 20),
        interpolation="bilinear",
        mean=(0.4,),
        std=(0.2,),
        crop_pct=1.0,
        crop_mode="border",
    )
    frame = Image.new("L", (40, 20), 255)  # a wide frame fits as 20 x 10 inside a 20 x 20 input
    tensor, geometry = prepare_frame(frame, config)
    assert geometry.view == pytest.approx((0, -10, 40, 30))
    padding = (round(255 * 0.4) / 255 - 0.4) / 0.2
    assert torch.allclose(tensor[0, :5], torch.full((5, 20), padding), atol=1e-5)
    assert torch.allclose(tensor[0, 5:15], torch.full((10, 20), (1 - 0.4) / 0.2), atol=1e-5)
    assert torch.allclose(tensor[0, 15:], torch.full((5, 20), padding), atol=1e-5)


def test_batch_stacks_frames_with_their_own_crop_boxes() -> None:
    frames = [_noise(30, 30, seed=i) for i in range(3)]
    batch = prepare_batch(frames, GREY, [None, [5, 5, 25, 25], None])
    assert batch.tensor.shape == (3, 1, 16, 16)
    assert len(batch) == 3
    assert [g.region for g in batch.geometries] == [(0, 0, 30, 30), (5, 5, 25, 25), (0, 0, 30, 30)]
    single, _ = prepare_frame(frames[1], GREY, [5, 5, 25, 25])
    torch.testing.assert_close(batch.tensor[1], single)
    with pytest.raises(PreprocessingError, match="3 frames but 2 crop boxes"):
        prepare_batch(frames, GREY, [None, None])


def test_iter_batches_slices_in_order() -> None:
    assert [list(b) for b in iter_batches(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        list(iter_batches([1], 0))


def test_geometry_of_a_frame_without_crop_box_is_the_whole_frame() -> None:
    geometry = frame_geometry((64, 48), GREY)
    assert geometry.region == (0, 0, 64, 48)
    assert geometry.view == pytest.approx((0, 0, 64, 48))


def test_invalid_data_configs_are_refused() -> None:
    with pytest.raises(PreprocessingError, match="mean and std need 3 values"):
        DataConfig(input_size=(3, 8, 8), interpolation="bilinear", mean=(0.5,), std=(0.5,))
    with pytest.raises(PreprocessingError, match="interpolation"):
        DataConfig(input_size=(1, 8, 8), interpolation="random", mean=(0.5,), std=(0.5,))
    with pytest.raises(PreprocessingError, match="std values must be positive"):
        DataConfig(input_size=(1, 8, 8), interpolation="bilinear", mean=(0.5,), std=(0.0,))
    assert DataConfig.from_dict(GREY.to_dict()) == GREY
