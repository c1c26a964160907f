from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inference.ml.errors import MlError
from inference.ml.predict import predict_frames, predict_probabilities, prepare_for_inference, select_device
from inference.ml.preprocessing import prepare_batch
from tests.inference.conftest import CPU, ModelCache


def _frames(count: int, size: tuple[int, int] = (60, 50), mode: str = "L") -> list[Image.Image]:
    rng = np.random.default_rng(1)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode) for _ in range(count)]


def test_select_device_prefers_cuda_and_falls_back_to_the_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_asking_for_cuda_without_it_is_an_error() -> None:
    with pytest.raises(MlError, match="CUDA is not available"):
        select_device("cuda")


@pytest.mark.parametrize("name, in_chans", [("cnn_lstm", 1), ("efficientnet_b0", 3), ("resnet34", 1)])
def test_batched_prediction_equals_frame_by_frame(built_model: ModelCache, name: str, in_chans: int) -> None:
    model = built_model(name, in_chans)
    frames = _frames(3, mode="L")
    boxes = [None, [5, 5, 55, 45], [0, 10, 60, 50]]
    batched = predict_frames(model, frames, crop_boxes=boxes, batch_size=2, device=CPU)
    single = [
        predict_frames(model, [f], crop_boxes=[b], batch_size=1, device=CPU)[0]
        for f, b in zip(frames, boxes, strict=True)
    ]
    assert len(batched) == 3
    for one, many in zip(single, batched, strict=True):
        np.testing.assert_allclose(many.probabilities, one.probabilities, atol=1e-5)
        assert many.predicted_class == one.predicted_class


def test_probabilities_are_a_softmax_per_frame(built_model: ModelCache) -> None:
    model = built_model("efficientnet_lite0", 3)
    batch = prepare_batch(_frames(3, mode="RGB"), model.data_config)
    probabilities = predict_probabilities(model, batch, device=CPU)
    assert probabilities.shape == (3, 3)
    assert probabilities.dtype == np.float32
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    predictions = predict_frames(model, _frames(3, mode="RGB"), device=CPU)
    assert [p.predicted_class for p in predictions] == list(probabilities.argmax(axis=1))


def test_prediction_runs_in_eval_mode_without_autograd(built_model: ModelCache) -> None:
    model = built_model("cnn_lstm", 1)
    model.module.train()
    batch = prepare_batch(_frames(2), model.data_config)
    seen: list[bool] = []
    handle = model.module.register_forward_hook(
        lambda module, _args, out: seen.extend(
            [module.training, torch.is_inference_mode_enabled(), out.requires_grad]
        )
    )
    try:
        predict_probabilities(model, batch.tensor, device=CPU)
    finally:
        handle.remove()
    assert seen == [False, True, False]


def test_prepare_for_inference_puts_a_cnn_in_channels_last(built_model: ModelCache) -> None:
    model = built_model("efficientnet_lite0", 3)
    model.module.train()
    device = prepare_for_inference(model, CPU)
    assert device == CPU
    assert not model.module.training
    stem = model.module.get_submodule("conv_stem")
    assert isinstance(stem, torch.nn.Conv2d)
    assert stem.weight.is_contiguous(memory_format=torch.channels_last)


def test_mismatched_crop_boxes_are_an_error(built_model: ModelCache) -> None:
    with pytest.raises(MlError, match="2 frames but 1 crop boxes"):
        predict_frames(built_model("cnn_lstm", 1), _frames(2), crop_boxes=[None], device=CPU)
