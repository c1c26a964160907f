"""The CNN-LSTM of the Crohn's disease CLE study, registered as the custom architecture "cnn_lstm".

Four 3x3 convolutions with 32, 32, 64 and 128 filters (ReLU, "same" padding), a 2x2 max-pool after
the second and the fourth, then the final feature map is read as a sequence of rows: each row (its
128 channels x W/4 columns, flattened) goes through a dense layer of 128 units (ReLU), an LSTM of
100 units runs over the H/4 rows from top to bottom, and its last output goes through a dense layer
of 50 (ReLU) and the output layer. Because the row dense layer sees a whole flattened row, the
input width is part of the weights: the model is built for one input size.

Defaults: one grey channel, 300 x 300 (the study cropped the 1024 px frames to 300 px), scaled to
[0, 1] as in Keras (mean 0, std 1), the field of view squashed into the input.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from inference.ml.architectures import register_architecture

ROW_FEATURES = 128
LSTM_UNITS = 100
DENSE_UNITS = 50


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    # Conv + ReLU as one named block, so that the block's output is the activated map a Keras
    # Conv2D(activation="relu") produces, and so that a Grad-CAM hook never sees an in-place change.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU())


class CnnLstm(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int = 1,
        input_size: tuple[int, int] = (300, 300),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        height, width = input_size
        if height < 4 or width < 4:
            raise ValueError(f"cnn_lstm needs an input of at least 4 x 4 pixels, not {height} x {width}")
        self.rows = height // 4
        self.columns = width // 4
        self.features = nn.Sequential(
            OrderedDict(
                conv1=_conv(in_chans, 32),
                conv2=_conv(32, 32),
                pool1=nn.MaxPool2d(2),
                conv3=_conv(32, 64),
                conv4=_conv(64, 128),
                pool2=nn.MaxPool2d(2),
            )
        )
        self.row_dense = nn.Linear(128 * self.columns, ROW_FEATURES)
        self.lstm = nn.LSTM(ROW_FEATURES, LSTM_UNITS, batch_first=True)
        self.dense = nn.Linear(LSTM_UNITS, DENSE_UNITS)
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(DENSE_UNITS, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def rows_of(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, H', W') feature map -> (N, H', C * W') sequence: one time step per row."""
        if features.shape[-1] != self.columns:
            raise ValueError(
                f"cnn_lstm was built for feature rows of {self.columns} columns (input width "
                f"{self.columns * 4}); got {features.shape[-1]}: resize frames to the model's input size"
            )
        return features.permute(0, 2, 1, 3).flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = torch.relu(self.row_dense(self.rows_of(self.forward_features(x))))
        outputs, _ = self.lstm(sequence)
        last = outputs[:, -1]
        hidden = torch.relu(self.dense(self.drop(last)))
        return self.classifier(self.drop(hidden))


@register_architecture(
    "cnn_lstm",
    in_chans=1,
    input_size=(300, 300),
    mean=(0.0,),
    std=(1.0,),
    interpolation="bilinear",
    crop_pct=1.0,
    crop_mode="squash",
    cam_layers=("features.conv4",),
    classifier=("classifier",),
    first_conv="features.conv1.0",
    channels_last=True,
    input_size_in_weights=True,
)
def build_cnn_lstm(
    *, num_classes: int, in_chans: int, input_size: tuple[int, int], drop_rate: float
) -> nn.Module:
    return CnnLstm(num_classes=num_classes, in_chans=in_chans, input_size=input_size, drop_rate=drop_rate)
