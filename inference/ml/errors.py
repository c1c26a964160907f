"""Errors raised by inference/ml, each carrying a message meant for a person (shown in the UI/job log)."""

from __future__ import annotations


class MlError(Exception):
    """Base of every error this package raises on purpose: `str(error)` is the human message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArchitectureError(MlError):
    """An unknown or mis-registered architecture, or one without a Grad-CAM target."""


class PreprocessingError(MlError):
    """A frame that cannot be turned into a model input as the model's config asks."""


class PretrainedWeightsError(MlError):
    """A local pretrained weights file that cannot be read or mapped onto the model."""


class ModelFileError(MlError):
    """A CLEAR model file that is missing, not safetensors, or does not describe its weights.

    `code` says which check failed, so that callers can react without parsing the message:
    missing, pickle, not_safetensors, damaged, metadata, architecture, keys, shapes, dtype, model.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
